"""The common part of the widgets that draw the latest stats frame with its history."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from qwen_tui.history import STALE_STYLE, History
from qwend.api.stats import StatsFrame


class FrameView(Widget):
    """Keeps the latest frame and history; subclasses draw them in ``_draw``."""

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
        raise NotImplementedError
