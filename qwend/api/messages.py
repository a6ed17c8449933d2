"""Control API messages shared by the daemon, qwenctl and qwen-tui (pure).

Every request and response on the control socket is one of the frozen
dataclasses below, sent as JSON (``to_dict`` / ``from_dict``). Streams
(promotion progress, log follow) are NDJSON, one message per line; the event
stream is SSE whose ``data:`` lines are ``Event`` messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from qwend.api.codec import Message, ProtocolError

__all__ = [
    "API_PREFIX",
    "Caller",
    "ConfigIssueInfo",
    "DaemonInfo",
    "ErrorCode",
    "ErrorResponse",
    "Event",
    "EventKind",
    "GateRequest",
    "GateResult",
    "LaneAction",
    "LaneActionResult",
    "LaneInfo",
    "LaneStateChange",
    "LaneStats",
    "LanesResponse",
    "LogLine",
    "LogsResponse",
    "Message",
    "NpusResponse",
    "PromoteRequest",
    "PromotionAccepted",
    "PromotionEvent",
    "PromotionMode",
    "PromotionOutcome",
    "PromotionRecord",
    "PromotionStep",
    "PromotionsResponse",
    "ProtocolError",
    "ReloadResponse",
    "RollbackRequest",
    "StatusResponse",
    "error_http_status",
]

API_PREFIX = "/v1"
"""Every control endpoint lives under this path; bumped on incompatible changes."""


class ErrorCode(StrEnum):
    """Machine-readable error kinds in ``ErrorResponse``."""

    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    LANE_ERROR = "lane_error"
    PROMOTION_FAILED = "promotion_failed"
    CONFIG_INVALID = "config_invalid"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


_HTTP_STATUS = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.LANE_ERROR: 422,
    ErrorCode.PROMOTION_FAILED: 422,
    ErrorCode.CONFIG_INVALID: 422,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}


def error_http_status(code: ErrorCode) -> int:
    """The HTTP status the control API answers with for ``code``."""
    return _HTTP_STATUS[code]


@dataclass(frozen=True)
class ErrorResponse(Message):
    """Body of every non-2xx control response."""

    code: ErrorCode
    message: str
    """What happened and what to do, for a person."""


@dataclass(frozen=True)
class Caller(Message):
    """Who sent a request: the peer credentials of the control-socket connection."""

    uid: int
    pid: int
    user: str = ""
    """User name of ``uid`` when known."""


@dataclass(frozen=True)
class ConfigIssueInfo(Message):
    """One configuration problem (mirrors ``qwend.errors.ConfigIssue``)."""

    file: str
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}: " if self.key else f"{self.file}: "
        return where + self.message


@dataclass(frozen=True)
class DaemonInfo(Message):
    """The daemon process itself."""

    version: str
    pid: int
    started_at: float
    """Epoch seconds."""
    uptime_s: float
    config_path: str
    control_socket: str = ""
    router_url: str = ""
    """Where the OpenAI-compatible router listens."""
    config_errors: tuple[ConfigIssueInfo, ...] = ()
    """Issues of the last failed reload (empty once a reload succeeds)."""
    peers: tuple[str, ...] = ()
    """The ``[[peers]]`` names this daemon reaches (what ``--host`` accepts)."""


@dataclass(frozen=True)
class LaneStats(Message):
    """Live latency and throughput of one lane, from the router."""

    in_flight: int = 0
    queued: int = 0
    requests: int = 0
    errors: int = 0
    ttft_p50_ms: float | None = None
    ttft_p95_ms: float | None = None
    itl_p50_ms: float | None = None
    e2e_p50_ms: float | None = None
    e2e_p95_ms: float | None = None
    tokens_per_s: float | None = None
    breaker: str = ""
    """Circuit breaker state (closed, open, half_open) or empty when unknown."""


@dataclass(frozen=True)
class GroupMember(Message):
    """One member of a lane group: its host and its member lane's status there."""

    host: str
    """The member host's ``[cluster] name``."""
    status: str = ""
    """stopped, starting, ready, down, stopping, unreachable; empty when not polled here."""


@dataclass(frozen=True)
class GroupInfo(Message):
    """The lane group a lane is a member of (``[lane.group]``)."""

    leader: str
    """The member host that runs the group (its lane is the one routed)."""
    state: str = ""
    """stopped, starting, ready, restarting, backoff, stopping, failed; empty on a
    follower's host (its leader's host runs the group)."""
    reason: str | None = None
    restarts: int = 0
    """Restarts of the whole group since the leader's qwend started."""
    members: tuple[GroupMember, ...] = ()
    """Every member, in configuration order (the leader first)."""

    def line(self) -> str:
        """``ready, led by node0: node0 ready, node1 ready`` (for text output)."""
        state = self.state or f"run by {self.leader}"
        members = ", ".join(f"{m.host} {m.status or '?'}" for m in self.members)
        restarts = f", {self.restarts} restarts" if self.restarts else ""
        why = f" ({self.reason})" if self.reason and self.state != "ready" else ""
        return f"{state}{restarts}: {members}{why}"


@dataclass(frozen=True)
class LaneInfo(Message):
    """One lane as status and lanes report it."""

    name: str
    role: str
    variant: str
    state: str
    """Lane state (stopped, starting, ready, unhealthy, draining, stopping, backoff, failed)."""
    active: bool
    """The active lane of its role."""
    standby: bool
    """Configured as a standby (candidate) lane."""
    accepting: bool = False
    """Routable right now."""
    model: str = ""
    """The public name clients ask for."""
    served_model: str = ""
    """The name the lane's backend expects (what a client talking to the lane directly
    must send)."""
    kv_role: str = ""
    """``prefill`` or ``decode`` for a half of a prefill/decode pair; empty: whole requests."""
    pid: int | None = None
    port: int = 0
    npus: tuple[int, ...] = ()
    started_at: float | None = None
    uptime_s: float | None = None
    restarts: int = 0
    last_exit: str | None = None
    reason: str | None = None
    """Why the lane is failed, unhealthy, backing off or degraded."""
    degraded: str | None = None
    """NPU health problem on the lane's NPUs, from the monitor."""
    warnings: tuple[str, ...] = ()
    stats: LaneStats | None = None
    last_error: str | None = None
    """qwend's own last error supervising the lane (it retries); cleared once ready."""
    log_tail: tuple[str, ...] = ()
    """The last lines of its output when it last failed to start or crashed (at most 20
    lines, 4 KB); empty once it is ready again."""
    url: str = ""
    """A remote lane's url (it runs on another host, so it has no PID); empty when local."""
    group: GroupInfo | None = None
    """Set for a member of a multi-node lane group."""
    runs_on: str = ""
    """The lane group whose members this lane's engine runs on (it holds no NPUs itself)."""

    @property
    def npus_text(self) -> str:
        """The NPUS column: ``3,5``, ``on GROUP`` for a lane that runs on a group, or ``-``."""
        if self.npus:
            return ",".join(map(str, self.npus))
        return f"on {self.runs_on}" if self.runs_on else "-"

    @property
    def pid_text(self) -> str:
        """The PID column: the PID, ``remote URL`` for a remote lane, or ``-``."""
        if self.url:
            return f"remote {self.url}"
        return str(self.pid) if self.pid is not None else "-"


@dataclass(frozen=True)
class LanesResponse(Message):
    """``GET /v1/lanes``."""

    lanes: tuple[LaneInfo, ...]


class PromotionMode(StrEnum):
    """How a candidate replaces the incumbent."""

    IN_PLACE = "in_place"
    """Candidate shares the incumbent's NPUs or port: drain, stop, start candidate."""
    BLUE_GREEN = "blue_green"
    """Candidate has its own NPUs: start it, switch routing, drain and stop the old."""


class PromotionStep(StrEnum):
    """Progress steps of a promotion, in the order they can happen."""

    PLANNED = "planned"
    DRAINING = "draining"
    DRAINED = "drained"
    STOPPING = "stopping"
    STOPPED = "stopped"
    WAITING_NPUS = "waiting_npus"
    STARTING = "starting"
    READY = "ready"
    SWITCHED = "switched"
    BENCHMARKING = "benchmarking"
    """A latency gate is measuring the incumbent or the candidate."""
    ROLLING_BACK = "rolling_back"
    FINISHED = "finished"


class PromotionOutcome(StrEnum):
    """How a promotion ended."""

    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    """Candidate failed; the previous lane serves the role again."""
    FAILED = "failed"
    """Candidate failed and restoring the previous lane failed too: the role needs attention."""
    REFUSED = "refused"
    """The latency gate found the candidate slower than allowed; the incumbent serves on."""


@dataclass(frozen=True)
class GateRequest(Message):
    """A latency gate on a promotion: switch only if the candidate is not measurably worse."""

    scenario: str
    """A seed case (``qwenctl bench`` names), run on the incumbent and on the candidate."""
    max_regression: float = 0.05
    """Allowed slowdown: the upper end of the E2E ratio's 95% interval must be at most 1+this."""
    repeat: int = 3
    """Runs of the scenario on each side (more runs: a tighter interval)."""
    time_scale: float = 1.0
    """Sim lanes running this much faster than real time (tests); figures are scaled back."""


@dataclass(frozen=True)
class GateResult(Message):
    """What a latency gate measured and decided (in the promotion record)."""

    scenario: str
    incumbent: str
    candidate: str
    accepted: bool
    reason: str
    max_regression: float
    incumbent_wall_s: float
    """Median wall of the incumbent's runs (seconds)."""
    candidate_wall_s: float
    ratio: float
    """Candidate over incumbent, mean per-request E2E latency."""
    ratio_low: float
    ratio_high: float
    """The ratio's 95% bootstrap interval (equal to ``ratio`` when too few samples)."""
    samples: int
    """Requests measured on each side."""


@dataclass(frozen=True)
class PromotionRecord(Message):
    """One finished promotion: the result returned to the caller and the history entry."""

    id: str
    role: str
    from_lane: str | None
    to_lane: str
    mode: PromotionMode
    outcome: PromotionOutcome
    started_at: float
    finished_at: float
    reason: str | None = None
    """Why it was rolled back or failed."""
    requested_by: Caller | None = None
    kind: str = "promote"
    """``promote``, or ``rollback`` for a manual revert of an earlier promotion."""
    gate: GateResult | None = None
    """The latency gate's measurement and decision, when the promotion had one."""
    log_tail: tuple[str, ...] = ()
    """A failed candidate's last lines of output (at most 20 lines, 4 KB)."""


@dataclass(frozen=True)
class PromotionEvent(Message):
    """One progress line of a running promotion."""

    id: str
    role: str
    lane: str
    """The lane the step is about."""
    step: PromotionStep
    message: str
    at: float


@dataclass(frozen=True)
class PromotionAccepted(Message):
    """The daemon accepted a promotion (``wait=false``), or the head of the progress stream."""

    id: str
    role: str
    from_lane: str | None
    to_lane: str
    mode: PromotionMode


@dataclass(frozen=True)
class PromoteRequest(Message):
    """``POST /v1/promotions``."""

    lane: str
    wait: bool = True
    """Stream progress until the end (NDJSON) instead of answering at once."""
    ready_timeout_s: float | None = None
    """Override the candidate's readiness deadline (else its ``health.startup_timeout_s``)."""
    gate: GateRequest | None = None
    """Benchmark candidate and incumbent first; switch only if the candidate is not worse."""


@dataclass(frozen=True)
class RollbackRequest(Message):
    """``POST /v1/rollback``: revert the last promotion of ``role``."""

    role: str
    wait: bool = True
    ready_timeout_s: float | None = None


@dataclass(frozen=True)
class PromotionsResponse(Message):
    """``GET /v1/promotions``: running promotions and recent history (newest last)."""

    running: tuple[PromotionAccepted, ...] = ()
    history: tuple[PromotionRecord, ...] = ()


@dataclass(frozen=True)
class StatusResponse(Message):
    """``GET /v1/status``."""

    daemon: DaemonInfo
    active: Mapping[str, str]
    """Role -> active lane."""
    lanes: tuple[LaneInfo, ...]
    router: Mapping[str, Any] | None = None
    """The router's stats snapshot (policy, per-lane and per-class latencies), as JSON."""
    running_promotions: tuple[PromotionAccepted, ...] = ()
    last_promotions: tuple[PromotionRecord, ...] = ()
    """Recent promotions, newest last."""
    warnings: tuple[str, ...] = ()
    """Daemon-level warnings (e.g. a corrupt state file was ignored)."""


@dataclass(frozen=True)
class NpusResponse(Message):
    """``GET /v1/npus``: the monitor's view, as JSON and as a rendered table."""

    enabled: bool
    view: Mapping[str, Any] | None = None
    table: str = ""
    """Human rendering (the same text ``qwenctl npus`` prints)."""


class LaneAction(StrEnum):
    """Actions on one lane: ``POST /v1/lanes/{name}/{action}``."""

    START = "start"
    STOP = "stop"
    RESTART = "restart"
    DRAIN = "drain"
    RESET = "reset"


@dataclass(frozen=True)
class LaneActionResult(Message):
    """What a lane action did; ``lane`` is the lane afterwards."""

    action: LaneAction
    lane: LaneInfo


@dataclass(frozen=True)
class ReloadResponse(Message):
    """``POST /v1/reload``: either applied (ok) or refused with every config issue."""

    ok: bool
    errors: tuple[ConfigIssueInfo, ...] = ()
    restarted: tuple[str, ...] = ()
    started: tuple[str, ...] = ()
    stopped: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    """Lanes new in the configuration."""
    removed: tuple[str, ...] = ()
    """Lanes no longer configured (drained and stopped)."""


@dataclass(frozen=True)
class LogsResponse(Message):
    """``GET /v1/lanes/{name}/logs``."""

    lane: str
    previous: bool
    lines: tuple[str, ...]


@dataclass(frozen=True)
class LogLine(Message):
    """One line of a followed log (NDJSON stream)."""

    lane: str
    line: str


class EventKind(StrEnum):
    """What an ``Event`` carries (the SSE ``event:`` field)."""

    LANE = "lane"
    """``LaneStateChange``."""
    PROMOTION = "promotion"
    """``PromotionEvent``."""
    PROMOTION_ACCEPTED = "promotion_accepted"
    """``PromotionAccepted``: first line of a promotion's progress stream."""
    PROMOTION_RESULT = "promotion_result"
    """``PromotionRecord``."""
    STATS = "stats"
    """``LanesResponse`` with live stats (periodic)."""
    HELLO = "hello"
    """First event of a stream: ``DaemonInfo``."""


@dataclass(frozen=True)
class LaneStateChange(Message):
    """A lane moved between states."""

    lane: str
    old: str
    new: str
    reason: str | None
    at: float


_EVENT_TYPES: dict[EventKind, type[Message]] = {
    EventKind.LANE: LaneStateChange,
    EventKind.PROMOTION: PromotionEvent,
    EventKind.PROMOTION_ACCEPTED: PromotionAccepted,
    EventKind.PROMOTION_RESULT: PromotionRecord,
    EventKind.STATS: LanesResponse,
    EventKind.HELLO: DaemonInfo,
}


@dataclass(frozen=True)
class Event(Message):
    """One message of the event stream."""

    kind: EventKind
    data: Mapping[str, Any] = field(default_factory=dict)
    """The payload message as JSON; ``payload()`` decodes it."""

    @classmethod
    def of(cls, payload: Message) -> Event:
        """Wrap a payload message, picking its kind."""
        for kind, tp in _EVENT_TYPES.items():
            if type(payload) is tp:
                return cls(kind=kind, data=payload.to_dict())
        raise ProtocolError(f"no event kind carries {type(payload).__name__}")

    def payload(self) -> Message:
        """The typed payload (ProtocolError when it does not match ``kind``)."""
        return _EVENT_TYPES[self.kind].from_dict(self.data)


@dataclass(frozen=True)
class HostStatus(Message):
    """One host of ``GET /v1/cluster``: its status, or why it could not be had."""

    name: str
    """The host's ``[cluster] name``."""
    local: bool
    """The daemon that answered is this host's."""
    reachable: bool
    status: StatusResponse | None = None
    error: str = ""
    """Why the host is not shown (unreachable, refused our credentials, too slow)."""
    elapsed_ms: float = 0.0
    """How long the host took to answer (0 for this host)."""


@dataclass(frozen=True)
class ClusterResponse(Message):
    """``GET /v1/cluster``: this host first, then every ``[[peers]]`` in configured order."""

    this: str
    """This host's ``[cluster] name``."""
    hosts: tuple[HostStatus, ...]

    def host(self, name: str) -> HostStatus | None:
        return next((h for h in self.hosts if h.name == name), None)
