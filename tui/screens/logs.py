"""A lane's log: the last lines, then followed live until the screen closes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, RichLog, Static

from qwen_tui.backoff import Backoff
from qwend.api.client import ControlClient
from qwend.errors import QwendError


class LogsScreen(Screen[None]):
    """Follows one lane's output through a client from ``connect`` (the app's client factory)."""

    CSS_PATH = "logs.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "app.pop_screen", "Back")]

    def __init__(self, lane: str, connect: Callable[[], ControlClient], lines: int = 200) -> None:
        super().__init__()
        self.connect = connect
        self.lane = lane
        self.lines = lines

    def compose(self) -> ComposeResult:
        yield Static(f"log of lane {self.lane} (following)", id="log-title")
        yield RichLog(id="log", max_lines=5000, wrap=False, markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.follow()

    @work(exclusive=True, exit_on_error=False)
    async def follow(self) -> None:
        """Follow the log; after any error say so and reconnect, with backoff."""
        log = self.query_one("#log", RichLog)
        backoff = Backoff()
        tail = self.lines
        said = ""
        while True:
            try:
                async with self.connect() as client:
                    async for line in client.follow_logs(self.lane, n=tail):
                        log.write(line.line)
                        backoff.succeeded()
                        said = ""
                problem = "qwend ended the log stream"
            except Exception as exc:  # the worker boundary: say it, then retry
                problem = str(exc) if isinstance(exc, QwendError) else repr(exc)
            if problem != said:
                log.write(f"[log stream ended: {problem}; reconnecting]")
                said = problem
            tail = 0  # the tail was shown: only new lines from now on
            await asyncio.sleep(backoff.failed())
