"""The role → lane map: which lane serves each role, and a promotion moving it."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import Static

from qwen_tui.history import STALE_STYLE
from qwen_tui.promotion import Promotions
from qwen_tui.rows import STATE_STYLES, role_lines
from qwend.api.stats import StatsFrame


class RoleMap(Static):
    """``role → lane (state)``; a role being promoted shows ``⇢ candidate [step, elapsed]``."""

    DEFAULT_CSS = Path(__file__).with_name("roles.tcss").read_text(encoding="utf-8")
    _shown: Text | None = None

    def show(self, frame: StatsFrame, promotions: Promotions, stale: bool = False) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, line in enumerate(role_lines(frame)):
            if i:
                text.append("   ")
            text.append(f"{line.role} → ", style="bold")
            text.append(line.lane or "none", style=STATE_STYLES.get(line.state, "bold red"))
            if line.promotion is None:
                continue
            progress = promotions.get(line.promotion.id)
            step = progress.steps[-1].step if progress and progress.steps else "accepted"
            elapsed = progress.elapsed(frame.at) if progress else 0.0
            mode = line.promotion.mode.value.replace("_", " ")
            text.append(
                f" ⇢ {line.promotion.to_lane} [{mode}: {step}, {elapsed:.0f}s]",
                style="bold reverse yellow",
            )
        shown = Text(text.plain, style=STALE_STYLE) if stale else text
        if shown != self._shown:  # most ticks change no role: skip the relayout
            self._shown = shown
            self.update(shown, layout=False)
