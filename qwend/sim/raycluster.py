"""Ray mode for the sim (pure): node settings, the cluster table, placement, messages.

The vLLM-Ascend Ray recipe runs ``ray start --head`` on one node (its GCS listens on
``--port``, 6379 by default), ``ray start --address HEAD:6379`` on every other node, then
``vllm serve --distributed-executor-backend ray`` on the head: the engine (Ray's
"driver") asks for a placement group of ``TP x PP`` one-NPU bundles, Ray's raylets start
one worker actor per bundle, and the engine serves once every actor is up. When a node
holding one of its actors dies, or the GCS goes away, the engine fails.

The sim keeps that shape over one TCP connection per node or driver carrying JSON lines
(as ``qwend.sim.dpranks`` does for data parallelism): a node sends ``register``, the head
answers ``registered`` or ``reject``; a driver sends ``place``, the head answers
``pending`` (again on every cluster change) until it can answer ``placed``; the head
tells every driver ``node_dead`` when a node's link is lost, and tells a node
``hosting`` how many of its NPUs hold engine workers (it then shows them in the fake
npu-smi). Both sides ``ping`` every heartbeat interval; silence past the heartbeat
timeout counts as a lost link. This module holds the bookkeeping and the codec; the
sockets are in ``qwend.sim.raynode`` and ``qwend.sim.raydriver``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

MAX_LINE = 65_536
"""Longest message line accepted (anything longer is a protocol error)."""

DEFAULT_PORT = 6379
"""``ray start --head --port``'s default (the GCS port)."""

HEAD_KEY = "head"
"""The table key of the head's own node (the head has no link to itself)."""


class RayProtocolError(ValueError):
    """A message that is not part of the protocol; ``str()`` says what was wrong."""


# -- addresses and NPU counts ----------------------------------------------------------


@dataclass(frozen=True)
class RayAddress:
    """``HOST:PORT`` of a head's GCS."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: str) -> RayAddress | str:
    """``HOST:PORT`` (``[v6]:PORT`` too) as an address, or why it is not one."""
    value = text.strip().strip("'\"")
    if "://" in value:
        return (
            f"address {text!r}: the sim models the GCS address HOST:PORT, not Ray Client"
            " (ray://) or other URLs"
        )
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return f"address {text!r} is not HOST:PORT (e.g. 10.0.0.1:{DEFAULT_PORT})"
    return RayAddress(host, int(port))


def driver_address(env: Mapping[str, str]) -> RayAddress | str:
    """Where an engine finds its head: ``$RAY_ADDRESS`` (``auto``: this host), else
    ``127.0.0.1:6379``, as ``ray.init()`` does."""
    value = env.get("RAY_ADDRESS", "").strip()
    if not value or value == "auto":
        return RayAddress("127.0.0.1", DEFAULT_PORT)
    found = parse_address(value)
    return f"RAY_ADDRESS: {found}" if isinstance(found, str) else found


def node_npus(
    num_gpus: int | None, resources: str | None, visible: tuple[int, ...]
) -> tuple[int, ...] | str:
    """The NPU ids a node gives Ray, or why the flags do not say.

    The count is ``--num-gpus``, else ``{"NPU": n}`` in ``--resources``, else the number
    of ids in ``ASCEND_RT_VISIBLE_DEVICES`` (``visible``); the ids are the visible ones
    (0..n-1 when unset). A count above the visible ids would make Ray place workers on
    NPUs the node cannot see, so it is refused.
    """
    count: int | None = num_gpus
    if count is None and resources is not None:
        try:
            parsed = json.loads(resources)
        except ValueError as exc:
            return f"--resources is not JSON ({exc}); e.g. --resources='{{\"NPU\": 8}}'"
        if not isinstance(parsed, dict):
            return "--resources must be a JSON object, e.g. '{\"NPU\": 8}'"
        npu = parsed.get("NPU")
        if npu is not None:
            if not isinstance(npu, int | float) or isinstance(npu, bool) or npu < 0:
                return f"--resources NPU must be a number >= 0, got {npu!r}"
            if npu != int(npu):
                return f"--resources NPU must be a whole number of NPUs, got {npu!r}"
            count = int(npu)
    if count is None:
        return visible
    if count < 0:
        return f"--num-gpus must be >= 0, got {count}"
    if not visible:
        return tuple(range(count))
    if count > len(visible):
        return (
            f"this node gives Ray {count} NPUs but ASCEND_RT_VISIBLE_DEVICES lists"
            f" {len(visible)} ({','.join(map(str, visible))}); make them agree"
        )
    return visible[:count]


# -- settings --------------------------------------------------------------------------


@dataclass(frozen=True)
class RayLinkSettings:
    """Heartbeats on a link to the head (sim tuning flags, real seconds)."""

    heartbeat_s: float = 0.5
    """Seconds between pings on a link."""
    heartbeat_timeout_s: float = 5.0
    """Silence after which a link counts as lost (a pulled cable sends no FIN)."""


@dataclass(frozen=True)
class RayNodeSettings:
    """How ``qwend-sim ray start`` was started."""

    head: bool
    """``--head``: run the GCS (and this node's raylet)."""
    address: RayAddress
    """The head's GCS: where the head listens, or where a worker connects."""
    node_ip: str
    """``--node-ip-address``: the address this node is known by."""
    name: str
    """``--node-name`` (default: the node IP), in logs and messages."""
    npus: tuple[int, ...]
    """NPU ids this node gives Ray."""
    link: RayLinkSettings = field(default_factory=RayLinkSettings)
    connect_timeout_s: float = 60.0
    """A worker: how long it keeps trying to reach a head that is not up yet."""
    leak_npu_memory_s: float = 0.0
    """After exit, the fake npu-smi keeps showing the workers' HBM this long (fault
    injection: a slow HBM release, as ``serve --leak-npu-memory-s``)."""
    ignored: tuple[str, ...] = ()
    """Flags accepted as Ray's but not modelled (logged at start)."""


@dataclass(frozen=True)
class RayDriverSettings:
    """An engine on Ray (``--distributed-executor-backend ray``)."""

    address: RayAddress
    """The head's GCS (``$RAY_ADDRESS``, else 127.0.0.1:6379)."""
    tensor_parallel: int
    pipeline_parallel: int
    placement_timeout_s: float = 1800.0
    """How long it waits for the cluster to have the NPUs (vLLM's placement group wait)."""
    link: RayLinkSettings = field(default_factory=RayLinkSettings)

    @property
    def world_size(self) -> int:
        """Workers (one NPU each) the engine places: TP x PP."""
        return self.tensor_parallel * self.pipeline_parallel


# -- messages --------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeInfo:
    """A node as the cluster knows it."""

    node_id: str
    name: str
    ip: str
    npus: int
    """How many NPUs it gives Ray."""
    pid: int
    head: bool = False

    def describe(self) -> str:
        """``name (ip, node id, pid)`` for messages."""
        where = "" if self.name == self.ip else f"{self.ip}, "
        return f"{self.name} ({where}node id {self.node_id[:8]}, pid {self.pid})"


@dataclass(frozen=True)
class Register:
    """A worker node joins the cluster."""

    node: NodeInfo


@dataclass(frozen=True)
class Registered:
    """The head took the node."""

    nodes: int
    """Nodes in the cluster now."""
    npus: int
    """NPUs in the cluster now."""


@dataclass(frozen=True)
class Reject:
    """The head refused a registration or placement (the peer exits with this message)."""

    error: str


@dataclass(frozen=True)
class Place:
    """A driver asks for ``bundles`` one-NPU bundles (a PACK placement group)."""

    driver: str
    bundles: int


@dataclass(frozen=True)
class Bundle:
    """Part of a placement: ``npus`` of the workers on one node."""

    node: NodeInfo
    npus: int


@dataclass(frozen=True)
class Placed:
    """The placement group is ready: where the workers run (the head's node first)."""

    bundles: tuple[Bundle, ...]


@dataclass(frozen=True)
class Pending:
    """The cluster cannot hold the placement yet (sent again on every change)."""

    free: int
    """NPUs not held by another placement."""
    total: int
    """NPUs in the cluster."""
    nodes: int


@dataclass(frozen=True)
class NodeDead:
    """A node's link was lost (every driver is told; those with workers there fail)."""

    node: NodeInfo
    why: str


@dataclass(frozen=True)
class Hosting:
    """How many of the node's NPUs now hold engine workers."""

    npus: int


@dataclass(frozen=True)
class Ping:
    """Heartbeat, both ways."""


Message = Register | Registered | Reject | Place | Placed | Pending | NodeDead | Hosting | Ping


def _node_body(node: NodeInfo) -> dict[str, object]:
    return {
        "node_id": node.node_id,
        "name": node.name,
        "ip": node.ip,
        "npus": node.npus,
        "pid": node.pid,
        "head": node.head,
    }


def encode(message: Message) -> bytes:
    """One message as a JSON line."""
    match message:
        case Register(node):
            body: dict[str, object] = {"type": "register", "node": _node_body(node)}
        case Registered(nodes, npus):
            body = {"type": "registered", "nodes": nodes, "npus": npus}
        case Reject(error):
            body = {"type": "reject", "error": error}
        case Place(driver, bundles):
            body = {"type": "place", "driver": driver, "bundles": bundles}
        case Placed(bundles):
            body = {
                "type": "placed",
                "bundles": [{"node": _node_body(b.node), "npus": b.npus} for b in bundles],
            }
        case Pending(free, total, nodes):
            body = {"type": "pending", "free": free, "total": total, "nodes": nodes}
        case NodeDead(node, why):
            body = {"type": "node_dead", "node": _node_body(node), "why": why}
        case Hosting(npus):
            body = {"type": "hosting", "npus": npus}
        case Ping():
            body = {"type": "ping"}
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def _int(body: Mapping[str, object], key: str, minimum: int = 0) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise RayProtocolError(f"{key!r} must be an integer >= {minimum}, got {value!r}")
    return value


def _str(body: Mapping[str, object], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise RayProtocolError(f"{key!r} must be a string, got {value!r}")
    return value


def _mapping(value: object, what: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise RayProtocolError(f"{what} must be a JSON object")
    return value


def _node(value: object) -> NodeInfo:
    body = _mapping(value, "'node'")
    head = body.get("head", False)
    if not isinstance(head, bool):
        raise RayProtocolError(f"'head' must be true or false, got {head!r}")
    return NodeInfo(
        node_id=_str(body, "node_id"),
        name=_str(body, "name"),
        ip=_str(body, "ip"),
        npus=_int(body, "npus"),
        pid=_int(body, "pid"),
        head=head,
    )


def _bundles(value: object) -> tuple[Bundle, ...]:
    if not isinstance(value, list):
        raise RayProtocolError("'bundles' must be a list")
    found = []
    for item in value:
        body = _mapping(item, "a bundle")
        found.append(Bundle(_node(body.get("node")), _int(body, "npus", 1)))
    return tuple(found)


def decode(line: bytes) -> Message:
    """A message from one JSON line; RayProtocolError for anything else."""
    if len(line) > MAX_LINE:
        raise RayProtocolError(f"message longer than {MAX_LINE} bytes")
    try:
        parsed = json.loads(line)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RayProtocolError(f"not JSON: {exc}") from None
    body = _mapping(parsed, "a message")
    kind = body.get("type")
    match kind:
        case "ping":
            return Ping()
        case "register":
            return Register(_node(body.get("node")))
        case "registered":
            return Registered(_int(body, "nodes"), _int(body, "npus"))
        case "reject":
            return Reject(_str(body, "error"))
        case "place":
            return Place(_str(body, "driver"), _int(body, "bundles", 1))
        case "placed":
            return Placed(_bundles(body.get("bundles")))
        case "pending":
            return Pending(_int(body, "free"), _int(body, "total"), _int(body, "nodes"))
        case "node_dead":
            return NodeDead(_node(body.get("node")), _str(body, "why"))
        case "hosting":
            return Hosting(_int(body, "npus"))
    raise RayProtocolError(f"unknown message type {kind!r}")


# -- the head's table ------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """An effect of a table change: send ``message`` on the link known by ``key``."""

    key: object
    message: Message


@dataclass
class _Request:
    driver: str
    bundles: int
    placement: dict[str, int] | None = None
    """node id -> NPUs held, once placed."""


class ClusterTable:
    """The head's view: live nodes (in join order, its own first), placements, waiters.

    Nodes and drivers are known by opaque keys (the head uses their connections, and
    ``HEAD_KEY`` for its own node). Every change returns the messages it causes.
    """

    def __init__(self) -> None:
        self._nodes: dict[object, NodeInfo] = {}
        self._requests: dict[object, _Request] = {}

    # queries
    @property
    def nodes(self) -> tuple[NodeInfo, ...]:
        """Live nodes, the head's first, then in join order."""
        return tuple(self._nodes.values())

    @property
    def total(self) -> int:
        """NPUs of every live node."""
        return sum(n.npus for n in self._nodes.values())

    def _held(self, node_id: str) -> int:
        return sum((r.placement or {}).get(node_id, 0) for r in self._requests.values())

    @property
    def free(self) -> int:
        """NPUs no placement holds."""
        return self.total - sum(self._held(n.node_id) for n in self._nodes.values())

    def node_key(self, node_id: str) -> object | None:
        """The key of a live node, or None."""
        return next((k for k, n in self._nodes.items() if n.node_id == node_id), None)

    # nodes
    def add_node(self, key: object, node: NodeInfo) -> list[Send]:
        """A node registers: ``registered`` (or ``reject``), then any placement it allows."""
        if any(n.node_id == node.node_id for n in self._nodes.values()):
            return [Send(key, Reject(f"node id {node.node_id} is registered already"))]
        if node.head and any(n.head for n in self._nodes.values()):
            return [Send(key, Reject("the cluster has a head already; a worker needs no --head"))]
        self._nodes[key] = node
        sends = [] if key == HEAD_KEY else [Send(key, Registered(len(self._nodes), self.total))]
        return sends + self._schedule()

    def remove_node(self, key: object, why: str) -> list[Send]:
        """A node's link is lost: every driver hears ``node_dead``; its NPUs are gone."""
        node = self._nodes.pop(key, None)
        if node is None:
            return []
        sends = [Send(k, NodeDead(node, why)) for k in self._requests]
        for request in self._requests.values():
            if request.placement is not None:
                request.placement.pop(node.node_id, None)
        return sends + self._pending_news()

    # drivers
    def place(self, key: object, request: Place) -> list[Send]:
        """A driver asks for its placement group: ``placed`` now, or ``pending``."""
        if key in self._requests:
            return [Send(key, Reject("this driver has asked for a placement already"))]
        self._requests[key] = _Request(request.driver, request.bundles)
        sends = self._schedule()
        if not any(s.key is key for s in sends):
            sends.append(Send(key, self._pending()))
        return sends

    def release(self, key: object) -> list[Send]:
        """A driver's link is lost: its NPUs are free again (their nodes hear ``hosting``)."""
        request = self._requests.pop(key, None)
        if request is None or request.placement is None:
            return []
        sends = self._hosting(request.placement)
        return sends + self._schedule()

    def placement_of(self, key: object) -> dict[str, int] | None:
        """node id -> NPUs a driver holds, or None while it waits."""
        request = self._requests.get(key)
        return None if request is None or request.placement is None else dict(request.placement)

    # internals
    def _pending(self) -> Pending:
        return Pending(free=self.free, total=self.total, nodes=len(self._nodes))

    def _pending_news(self) -> list[Send]:
        return [Send(k, self._pending()) for k, r in self._requests.items() if r.placement is None]

    def _hosting(self, placement: Mapping[str, int]) -> list[Send]:
        sends = []
        for node_id in placement:
            key = self.node_key(node_id)
            if key is not None:
                sends.append(Send(key, Hosting(self._held(node_id))))
        return sends

    def _fit(self, bundles: int) -> dict[str, int] | None:
        """PACK: fill the head's node first, then the others in join order; all or none."""
        placement: dict[str, int] = {}
        left = bundles
        for node in self._nodes.values():
            take = min(left, node.npus - self._held(node.node_id))
            if take > 0:
                placement[node.node_id] = take
                left -= take
            if left == 0:
                return placement
        return None

    def _schedule(self) -> list[Send]:
        """Place every waiting driver that now fits (first come, first placed)."""
        sends: list[Send] = []
        for key, request in self._requests.items():
            if request.placement is not None:
                continue
            placement = self._fit(request.bundles)
            if placement is None:
                break  # first come, first served: a later, smaller group does not overtake
            request.placement = placement
            by_id = {n.node_id: n for n in self._nodes.values()}
            bundles = tuple(Bundle(by_id[i], n) for i, n in placement.items())
            sends.append(Send(key, Placed(bundles)))
            sends += self._hosting(placement)
        return sends + self._pending_news()
