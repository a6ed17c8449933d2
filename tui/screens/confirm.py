"""Confirmation of an action that changes traffic: its impact, with Cancel focused."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from qwen_tui.actions import Impact


class ConfirmScreen(ModalScreen[bool]):
    """Dismissed with True only by the confirm button; Enter on arrival cancels."""

    CSS_PATH = "confirm.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "cancel", "Cancel"),
        Binding("left,right", "app.focus_next", "Switch button", show=False),
    ]

    def __init__(self, impact: Impact, confirm_label: str) -> None:
        super().__init__()
        self.impact = impact
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.impact.title, id="confirm-title")
            yield Static("\n".join(f"• {line}" for line in self.impact.lines), id="impact")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                if self.impact.disruptive:
                    yield Button(self.confirm_label, id="confirm", variant="error")
                else:
                    yield Button(self.confirm_label, id="confirm", variant="warning")

    def on_mount(self) -> None:
        # The safe choice has the focus: a stray Enter cancels.
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_cancel(self) -> None:
        self.dismiss(False)
