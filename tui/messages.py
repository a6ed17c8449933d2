"""Messages the app's workers post; newer snapshots supersede older ones."""

from __future__ import annotations

from datetime import datetime

from textual.message import Message

from qwen_tui.actions import Action
from qwend.api.messages import Event, StatusResponse
from qwend.api.stats import StatsFrame


class StatsReceived(Message):
    """A new live frame (the history was fed already): redraw."""

    def __init__(self, frame: StatsFrame) -> None:
        super().__init__()
        self.frame = frame

    def can_replace(self, message: Message) -> bool:
        # Only the newest frame matters: drop queued older ones.
        return isinstance(message, StatsReceived)


class StatusReceived(Message):
    """The daemon's status (version, policy), fetched once per connection."""

    def __init__(self, status: StatusResponse) -> None:
        super().__init__()
        self.status = status

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StatusReceived)


class DaemonUnreachable(Message):
    """The control socket could not be reached since ``since``; ``reason`` says why."""

    def __init__(self, reason: str, since: datetime) -> None:
        super().__init__()
        self.reason = reason
        self.since = since

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, DaemonUnreachable)


class DaemonEvent(Message):
    """One event from the daemon's event stream (lane state change, promotion step...)."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class EventStreamLost(Message):
    """The live event stream broke; ``reason`` says why. The app reconnects on its own."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class ActionFinished(Message):
    """An action finished; ``text`` is the outcome for the log."""

    def __init__(self, text: str, ok: bool) -> None:
        super().__init__()
        self.text = text
        self.ok = ok


class PromotionChanged(Message):
    """A promotion moved on (``text`` is the new log line); ``promotion_id`` says which."""

    def __init__(self, promotion_id: str, text: str, ok: bool = True) -> None:
        super().__init__()
        self.promotion_id = promotion_id
        self.text = text
        self.ok = ok


class ActionRequested(Message):
    """The operator asked for ``action`` (on ``lane``, for lane and role actions)."""

    def __init__(self, action: Action, lane: str | None) -> None:
        super().__init__()
        self.action = action
        self.lane = lane


class LogsRequested(Message):
    """The operator asked to see a lane's log."""

    def __init__(self, lane: str) -> None:
        super().__init__()
        self.lane = lane


class DetailRequested(Message):
    """The operator asked for one lane's detail view."""

    def __init__(self, lane: str) -> None:
        super().__init__()
        self.lane = lane
