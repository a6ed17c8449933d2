"""Messages the dashboard's workers post; newer snapshots supersede older ones."""

from __future__ import annotations

from textual.message import Message

from qwend.api.messages import Event, NpusResponse, StatusResponse


class StatusUpdated(Message):
    """A fresh status (and NPU view) from the daemon."""

    def __init__(self, status: StatusResponse, npus: NpusResponse | None) -> None:
        super().__init__()
        self.status = status
        self.npus = npus

    def can_replace(self, message: Message) -> bool:
        # Only the newest snapshot matters: drop queued older ones.
        return isinstance(message, StatusUpdated)


class DaemonUnreachable(Message):
    """The control socket could not be reached; ``reason`` says why and what to do."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason

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
    """A lane action or promotion finished; ``text`` is the outcome for the log."""

    def __init__(self, text: str, ok: bool) -> None:
        super().__init__()
        self.text = text
        self.ok = ok


class LaneActionRequested(Message):
    """The operator asked for an action (start, stop, promote...) on a lane."""

    def __init__(self, lane: str, action: str) -> None:
        super().__init__()
        self.lane = lane
        self.action = action


class LogsRequested(Message):
    """The operator asked to see a lane's log."""

    def __init__(self, lane: str) -> None:
        super().__init__()
        self.lane = lane
