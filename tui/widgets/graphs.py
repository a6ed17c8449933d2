"""Live latency graphs: per-lane and per-class sparklines over the last minutes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual.widget import Widget

from qwen_tui.history import STALE_STYLE, History, sparkline
from qwen_tui.rows import latency
from qwend.api.stats import StatsFrame

NAME_WIDTH = 14


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


class LatencyGraphs(Widget):
    """One line per lane (TTFT p50, E2E p95, tok/s, req/s, errors/s), then one per class."""

    DEFAULT_CSS = Path(__file__).with_name("graphs.tcss").read_text(encoding="utf-8")

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
        width = self.content_size.width or self.size.width or 120
        # Five graphs and their labels share the line; each gets an equal slice.
        spark = max(4, (width - NAME_WIDTH - 5 * 16) // 5)
        text = Text(no_wrap=True, overflow="ellipsis")
        header = f"{'lane / class':<{NAME_WIDTH}}"
        for label in ("TTFT p50", "E2E p95", "tok/s", "req/s", "err/s"):
            header += f" {label:<{spark + 15}}"
        text.append(header.rstrip() + "\n", style="bold")
        for lane in frame.lanes:
            owner = f"lane:{lane.name}"
            text.append(f"{lane.name[:NAME_WIDTH]:<{NAME_WIDTH}}", style="bold")
            self._graph(text, history, owner, "ttft", spark, latency, "cyan")
            self._graph(text, history, owner, "e2e", spark, latency, "magenta")
            self._graph(text, history, owner, "tok_s", spark, _rate, "green")
            self._graph(text, history, owner, "req_s", spark, _rate, "blue")
            self._graph(text, history, owner, "err_s", spark, _rate, "red")
            text.append("\n")
        for cls in frame.classes:
            owner = f"class:{cls.name}"
            text.append(f"{cls.name[:NAME_WIDTH]:<{NAME_WIDTH}}", style="italic")
            self._graph(text, history, owner, "ttft", spark, latency, "cyan")
            self._graph(text, history, owner, "e2e", spark, latency, "magenta")
            text.append(" " * (spark + 16))
            self._graph(text, history, owner, "req_s", spark, _rate, "blue")
            text.append("\n")
        return text

    @staticmethod
    def _graph(
        text: Text,
        history: History,
        owner: str,
        name: str,
        width: int,
        fmt: Callable[[float | None], str],
        style: str,
    ) -> None:
        values = history.series(owner, name)
        latest = values[-1] if values else None
        label = fmt(latest)
        text.append(" ")
        text.append(sparkline(values, width), style=style)
        text.append(f" {label:>9}     ")
