"""``?``: every key of the dashboard, from the same table the bindings use."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from qwen_tui.actions import all_keys


def keys_table() -> Table:
    table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for key in all_keys():
        table.add_row(key.key, key.description)
    table.add_row("tab / arrows", "In a dialog: move between buttons (Cancel has the focus)")
    return table


class HelpScreen(ModalScreen[None]):
    """Keys, one per line; any of escape, q or ? closes it."""

    CSS_PATH = "help.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static("qwen-tui keys", id="help-title")
            yield Static(keys_table(), id="keys")

    def action_close(self) -> None:
        self.dismiss(None)
