"""Live latency graphs: per-lane and per-class sparklines over the last minutes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.text import Text

from qwen_tui.history import History, sparkline
from qwen_tui.rows import latency
from qwen_tui.widgets.frameview import FrameView

NAME_WIDTH = 14


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


class LatencyGraphs(FrameView):
    """One line per lane (TTFT p50, E2E p95, tok/s, req/s, errors/s), then one per class."""

    DEFAULT_CSS = Path(__file__).with_name("graphs.tcss").read_text(encoding="utf-8")

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
