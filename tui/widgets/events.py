"""The event log: lane changes and promotion steps from the daemon, and operator outcomes."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import RichLog

from qwend.api.describe import event_line
from qwend.api.messages import Event


class EventLog(RichLog):
    """The last 500 lines of what happened, newest at the bottom."""

    DEFAULT_CSS = Path(__file__).with_name("events.tcss").read_text(encoding="utf-8")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=500, wrap=False, markup=False)

    def add_event(self, event: Event) -> None:
        """One daemon event, described as ``qwenctl events`` does."""
        self.write(event_line(event).rstrip())

    def add_note(self, text: str, style: str) -> None:
        """A line of our own (an action's outcome, a lost stream), styled."""
        self.write(Text(text, style=style))
