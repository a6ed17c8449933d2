"""Multi-node data parallelism for the sim (pure): ranks, the join handshake, its messages.

vLLM's multi-node data parallel launcher runs one API server on node 0 (the leader,
``--data-parallel-address`` / ``--data-parallel-rpc-port`` name its coordinator) and
``vllm serve --headless --data-parallel-start-rank R`` on the other nodes: each follower
engine joins the leader's coordinator, and the leader only serves once every one of the
``--data-parallel-size`` ranks has joined. When an engine goes away the leader's engine
core fails and the server shuts down; a headless engine whose coordinator goes away exits.

The sim follows that shape over one TCP connection per follower carrying JSON lines:
the follower sends ``join``, the leader answers ``welcome`` or ``reject``, then both
send ``ping`` every heartbeat interval; silence past the heartbeat timeout (a pulled
cable sends no FIN) counts as a lost link, like an end of stream. This module holds the
rank bookkeeping and the message codec; the sockets are in ``qwend.sim.dp``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

MAX_LINE = 4096
"""Longest message line accepted (anything longer is a protocol error)."""


class DpProtocolError(ValueError):
    """A message that is not part of the handshake; ``str()`` says what was wrong."""


@dataclass(frozen=True)
class DpLayout:
    """This process's part of the data parallel group (vLLM's ``--data-parallel-*``)."""

    size: int
    """``--data-parallel-size``: ranks across every node."""
    local: int
    """``--data-parallel-size-local``: ranks this process runs."""
    start_rank: int
    """``--data-parallel-start-rank``: the first of this process's ranks."""

    @property
    def ranks(self) -> range:
        """The ranks this process runs."""
        return range(self.start_rank, self.start_rank + self.local)

    @property
    def multi_node(self) -> bool:
        """Other processes hold some of the ranks (a leader then waits for them)."""
        return self.local < self.size

    def problem(self) -> str | None:
        """Why this layout cannot work, or None."""
        if self.size < 1 or self.local < 1:
            return "--data-parallel-size and --data-parallel-size-local must be >= 1"
        if self.start_rank < 0 or self.start_rank + self.local > self.size:
            return (
                f"ranks {self.start_rank}..{self.start_rank + self.local - 1} do not fit in"
                f" --data-parallel-size {self.size}"
            )
        return None


@dataclass(frozen=True)
class DpSettings:
    """``--data-parallel-*`` and ``--headless`` of one sim process."""

    layout: DpLayout
    address: str = "127.0.0.1"
    """The leader's coordinator address (``--data-parallel-address``)."""
    rpc_port: int = 13345
    """The leader's coordinator port (``--data-parallel-rpc-port``)."""
    headless: bool = False
    """A follower: no API server, joins the leader."""
    heartbeat_s: float = 0.5
    """Seconds between pings on a link (real seconds)."""
    heartbeat_timeout_s: float = 3.0
    """Silence after which a link counts as lost (a pulled cable sends no FIN)."""
    join_timeout_s: float = 120.0
    """How long a follower keeps trying to reach its leader before it gives up."""

    @property
    def coordinates(self) -> bool:
        """This process is a leader that needs followers."""
        return not self.headless and self.layout.multi_node


@dataclass(frozen=True)
class Join:
    """A follower asks to join with its ranks."""

    size: int
    start_rank: int
    local: int
    name: str
    """The follower's lane name (for the leader's log)."""


@dataclass(frozen=True)
class Welcome:
    """The leader took the follower's ranks."""

    waiting_for: tuple[int, ...]
    """Ranks still missing after this join."""


@dataclass(frozen=True)
class Reject:
    """The leader refused the join (the follower exits with this message)."""

    error: str


@dataclass(frozen=True)
class Ping:
    """Heartbeat, both ways."""


Message = Join | Welcome | Reject | Ping


def encode(message: Message) -> bytes:
    """One message as a JSON line."""
    match message:
        case Join(size, start_rank, local, name):
            body: dict[str, object] = {
                "type": "join",
                "size": size,
                "start_rank": start_rank,
                "local": local,
                "name": name,
            }
        case Welcome(waiting_for):
            body = {"type": "welcome", "waiting_for": list(waiting_for)}
        case Reject(error):
            body = {"type": "reject", "error": error}
        case Ping():
            body = {"type": "ping"}
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def _int(body: dict[str, object], key: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise DpProtocolError(f"{key!r} must be an integer, got {value!r}")
    return value


def decode(line: bytes) -> Message:
    """A message from one JSON line; DpProtocolError for anything else."""
    if len(line) > MAX_LINE:
        raise DpProtocolError(f"message longer than {MAX_LINE} bytes")
    try:
        body = json.loads(line)
    except (UnicodeDecodeError, ValueError) as exc:
        raise DpProtocolError(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise DpProtocolError("a message must be a JSON object")
    kind = body.get("type")
    if kind == "ping":
        return Ping()
    if kind == "join":
        name = body.get("name")
        if not isinstance(name, str):
            raise DpProtocolError(f"'name' must be a string, got {name!r}")
        return Join(_int(body, "size"), _int(body, "start_rank"), _int(body, "local"), name)
    if kind == "welcome":
        waiting = body.get("waiting_for")
        if not isinstance(waiting, list) or not all(type(r) is int for r in waiting):
            raise DpProtocolError("'waiting_for' must be a list of ranks")
        return Welcome(tuple(waiting))
    if kind == "reject":
        error = body.get("error")
        if not isinstance(error, str):
            raise DpProtocolError(f"'error' must be a string, got {error!r}")
        return Reject(error)
    raise DpProtocolError(f"unknown message type {kind!r}")


class RankTable:
    """The leader's view: which ranks have joined, and through which follower link.

    A follower is known by an opaque key (the leader uses its connection); its ranks are
    freed when the link is lost, and the leader then fails as vLLM's engine core does.
    """

    def __init__(self, leader: DpLayout) -> None:
        self.size = leader.size
        self._holder: dict[int, object] = dict.fromkeys(leader.ranks, "leader")

    @property
    def missing(self) -> tuple[int, ...]:
        """Ranks no process holds yet, in order."""
        return tuple(r for r in range(self.size) if r not in self._holder)

    @property
    def complete(self) -> bool:
        """Every rank has joined: the leader may serve."""
        return not self.missing

    def join(self, key: object, join: Join) -> Welcome | Reject:
        """Take a follower's ranks, or say why not (nothing changes on a reject)."""
        if join.size != self.size:
            return Reject(f"--data-parallel-size {join.size} differs from the leader's {self.size}")
        layout = DpLayout(join.size, join.local, join.start_rank)
        problem = layout.problem()
        if problem is not None:
            return Reject(problem)
        taken = [r for r in layout.ranks if r in self._holder]
        if taken:
            return Reject(
                f"ranks {', '.join(map(str, taken))} have joined already; each node needs a"
                " unique --data-parallel-start-rank"
            )
        for rank in layout.ranks:
            self._holder[rank] = key
        return Welcome(self.missing)

    def leave(self, key: object) -> tuple[int, ...]:
        """Free the ranks of a follower whose link is gone; the ranks it held."""
        gone = tuple(r for r, k in self._holder.items() if k is key)
        for rank in gone:
            del self._holder[rank]
        return gone
