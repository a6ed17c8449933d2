"""NPU bars: HBM and AICore per chip, coloured at warning/critical, with a short history."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.text import Text
from textual.widget import Widget

from qwen_tui.history import STALE_STYLE, History, bar, level_style, sparkline
from qwend.api.stats import StatsFrame


class NpuBars(Widget):
    """One line per chip; narrow terminals get compact bars without history."""

    DEFAULT_CSS = Path(__file__).with_name("npus.tcss").read_text(encoding="utf-8")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._data: tuple[StatsFrame, History] | None = None
        self._lines = -1
        self.stale = False
        """The daemon is away: draw the last values grey, not in healthy colours."""

    def set_stale(self, stale: bool) -> None:
        if stale != self.stale:
            self.stale = stale
            self.refresh()

    def show(self, frame: StatsFrame, history: History) -> None:
        """Draw ``frame`` (and the history) at the next refresh, at the size we have then."""
        # A new layout only when the number of lines changes; else a repaint is enough.
        lines = len(frame.lanes) + len(frame.classes) + len(frame.npus)
        self.refresh(layout=lines != self._lines)
        self._data, self._lines = (frame, history), lines

    def render(self) -> Text:
        text = self._draw()
        return Text(text.plain, style=STALE_STYLE) if self.stale else text

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
