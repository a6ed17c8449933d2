"""NPU bars: HBM and AICore per chip, coloured at warning/critical, with a short history."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.text import Text

from qwen_tui.history import bar, level_style, sparkline
from qwen_tui.widgets.frameview import FrameView


class NpuBars(FrameView):
    """One line per chip; narrow terminals get compact bars without history."""

    DEFAULT_CSS = Path(__file__).with_name("npus.tcss").read_text(encoding="utf-8")

    def _draw(self) -> Text:
        if self._data is None:
            return Text("")
        frame, history = self._data
        if not frame.npus:
            return Text(frame.npu_note or "no NPUs reported", style="dim")
        width = self.content_size.width or self.size.width or 80
        compact = width < 100
        bar_w = 8 if compact else 16
        hist_w = 0 if compact else 12
        text = Text(no_wrap=True, overflow="ellipsis")
        for chip in frame.npus:
            owner = f"npu:{chip.key}"
            hbm = history.latest(owner, "hbm_pct")
            aic = history.latest(owner, "aicore_pct")
            health_style = "green" if chip.health.upper() == "OK" else "bold red"
            text.append(f"NPU {chip.key:<4} {chip.name:<5} ")
            text.append(f"{chip.health:<7}", style=health_style)
            self._meter(text, "HBM", hbm, bar_w, history.series(owner, "hbm_pct"), hist_w)
            if not compact and chip.hbm_total_mb:
                used = chip.hbm_used_mb or 0
                text.append(f" {used / 1024:4.1f}/{chip.hbm_total_mb / 1024:.0f}G")
            self._meter(text, " AIC", aic, bar_w, history.series(owner, "aicore_pct"), hist_w)
            text.append(f"  {','.join(chip.lanes) or '-'}\n", style="dim" if not chip.lanes else "")
        if frame.npu_note:
            text.append(frame.npu_note, style="yellow")
        return text

    @staticmethod
    def _meter(
        text: Text,
        label: str,
        pct: float | None,
        width: int,
        series: Sequence[float | None],
        hist_w: int,
    ) -> None:
        style = level_style(pct)
        text.append(f" {label} ")
        text.append(bar(None if pct is None else pct / 100.0, width), style=style)
        text.append(" --%" if pct is None else f"{pct:3.0f}%", style=style)
        if hist_w:
            text.append(" ")
            text.append(sparkline(series, hist_w, top=100.0), style=style)
