"""A promotion's progress: its steps with times, the elapsed time, the result, and rollback."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from qwen_tui.actions import Action
from qwen_tui.messages import ActionRequested
from qwen_tui.promotion import Progress, Promotions
from qwend.api.describe import gate_line

NO_GATE = "latency gate: none on this promotion (qwenctl promote --gate SCENARIO adds one)"


def gate_text(progress: Progress | None) -> Text:
    """The latency gate's measurement and verdict, and a failed candidate's last output."""
    record = None if progress is None else progress.record
    if record is None:
        running = progress is not None and any(s.step == "benchmarking" for s in progress.steps)
        return Text("latency gate: measuring…" if running else NO_GATE, style="dim")
    text = Text()
    if record.gate is None:
        text.append(NO_GATE, style="dim")
    else:
        text.append(gate_line(record.gate), style="green" if record.gate.accepted else "bold red")
    if record.log_tail:
        text.append(f"\nlast output of {record.to_lane}:\n", style="bold")
        text.append("\n".join(record.log_tail), style="dim")
    return text


def progress_text(progress: Progress | None, now: float) -> Text:
    """Headline, one line per step (seconds since the first), then the result."""
    if progress is None:
        return Text("no promotion since qwen-tui started", style="dim")
    text = Text()
    text.append(progress.headline() + "\n", style="bold")
    state = "finished" if progress.finished else "running"
    text.append(f"{state}, {progress.elapsed(now):.1f} s\n\n")
    start = progress.started_at or 0.0
    for step in progress.steps:
        text.append(f"+{step.at - start:6.1f}s  ", style="dim")
        text.append(f"{step.step:<12} ", style="cyan")
        text.append(f"{step.lane}: {step.message}\n")
    record = progress.record
    if record is not None:
        style = "bold green" if progress.ok else "bold red"
        line = f"\n{record.outcome.value}"
        if record.reason:
            line += f": {record.reason}"
        text.append(line + "\n", style=style)
    return text


class PromotionScreen(ModalScreen[None]):
    """Follows one promotion (the latest when ``promotion_id`` is None) until closed."""

    CSS_PATH = "promotion.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close"),
        Binding("b", "rollback", "Roll back"),
    ]

    def __init__(
        self, promotions: Promotions, promotion_id: str | None, now: Callable[[], float]
    ) -> None:
        super().__init__()
        self.promotions = promotions
        self.promotion_id = promotion_id
        self.now = now

    @property
    def progress(self) -> Progress | None:
        if self.promotion_id is None:
            return self.promotions.latest
        return self.promotions.get(self.promotion_id)

    def compose(self) -> ComposeResult:
        with Vertical(id="promotion"):
            yield Static(id="steps")
            yield Static(NO_GATE, id="gates")
            with Horizontal(id="promotion-buttons"):
                yield Button("Close", id="close", variant="primary")
                yield Button("Roll back…", id="rollback", variant="error", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()
        self.refresh_progress()
        # Elapsed time moves while a promotion runs; once a second is plenty.
        self.set_interval(1.0, self.refresh_progress)

    def refresh_progress(self) -> None:
        progress = self.progress
        self.query_one("#steps", Static).update(progress_text(progress, self.now()))
        self.query_one("#gates", Static).update(gate_text(progress))
        can_roll_back = progress is not None and progress.ok
        self.query_one("#rollback", Button).disabled = not can_roll_back

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "rollback":
            self.action_rollback()
        else:
            self.action_close()

    def action_rollback(self) -> None:
        progress = self.progress
        if progress is None or not progress.ok:
            self.notify("nothing to roll back: no promotion has succeeded", severity="warning")
            return
        self.dismiss(None)
        self.app.post_message(ActionRequested(Action.ROLLBACK, progress.to_lane))

    def action_close(self) -> None:
        self.dismiss(None)
