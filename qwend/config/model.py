"""Configuration model: frozen dataclasses for qwend.toml and lanes.d/*.toml.

The dataclasses below are the contract the rest of qwend codes against. This is the
bottom of the config chain (model -> schema -> draft -> checks -> parse -> load): it
imports none of the others. Validation is ``qwend.config.parse.parse_config`` (pure);
reading the files is ``qwend.config.load.load_config``.
"""

from __future__ import annotations

import ipaddress
import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

# Only these names are placeholders; other braces (JSON in vLLM flags) stay literal.
_PLACEHOLDER_RE = re.compile(r"\{(port|npus|model|served_model|name)\}")


class TextPolicy(StrEnum):
    """How the router spreads text requests over text-capable lanes."""

    BALANCED_LONG_TEXT = "balanced_long_text"
    """The seed's policy: short text to throughput (spill to an idle stable), long text balanced."""
    LEAST_WORK = "least_work"
    """Adaptive: pick the lane with the smallest predicted completion time (learned online)."""
    ROUND_ROBIN = "round_robin"
    """Baseline: rotate over eligible lanes."""
    LEAST_OUTSTANDING = "least_outstanding"
    """Baseline: the eligible lane with the fewest in-flight requests."""


@dataclass(frozen=True)
class ListenAddress:
    """A TCP host and port to listen on."""

    host: str
    """Address to bind; ``127.0.0.1`` keeps a listener on loopback."""
    port: int
    """TCP port, 1-65535."""

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def loopback(self) -> bool:
        """Whether only this host can connect: a loopback address or ``localhost``.

        Wildcards (``0.0.0.0``, ``::``) and every other name or address are reachable
        from elsewhere, as far as qwend can tell.
        """
        if self.host.lower() == "localhost":
            return True
        try:
            address = ipaddress.ip_address(self.host)
        except ValueError:
            return False  # a hostname: it may resolve to any interface
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address.is_loopback

    @property
    def url(self) -> str:
        """An ``http://`` URL reaching this address (wildcards become loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class DaemonConfig:
    """``[daemon]``: where qwend keeps its socket, state, logs and lane files."""

    control_socket: Path = Path("/run/qwend/control.sock")
    """Unix socket of the control API (qwenctl, qwen-tui)."""
    socket_group: str | None = None
    """Group owning the control socket (mode 0660); None keeps the daemon's group."""
    state_dir: Path = Path("/var/lib/qwend")
    """Where qwend persists the active lane per role and the promotion history."""
    log_dir: Path = Path("/var/log/qwend")
    """Per-lane log files (``NAME.log``, ``NAME.log.1`` ...)."""
    lanes_dir: Path = Path("/etc/qwend/lanes.d")
    """Directory of one-TOML-file-per-lane definitions (default: ``lanes.d`` beside qwend.toml)."""
    drain_timeout_s: float = 30.0
    """On shutdown, how long in-flight requests may finish before lanes are stopped."""
    lane_log_keep: int = 5
    """How many previous lane logs (``NAME.log.1`` ...) to keep."""
    lane_log_max_mb: int = 100
    """A lane log is rotated when it grows past this many MiB, even while the lane runs."""
    lanes_survive_restart: bool | None = None
    """Lanes outlive a daemon restart and are re-adopted (``qwend.supervisor.adoption``).

    None (``"auto"``): only when qwend runs as a systemd service (see
    ``qwend.daemon.systemd.lanes_survive``)."""


@dataclass(frozen=True)
class RouterConfig:
    """``[router]``: the OpenAI-compatible adaptive router in front of the lanes."""

    listen: ListenAddress = ListenAddress("127.0.0.1", 18088)
    text_policy: TextPolicy = TextPolicy.BALANCED_LONG_TEXT
    long_text_min_tokens: int = 32
    """Text requests asking for at least this many tokens are "long"."""
    max_in_flight_per_lane: int = 8
    """Admission limit: requests a lane serves at once before others queue."""
    queue_size: int = 256
    """Requests that may wait for a lane slot; beyond it the router answers 429."""
    queue_timeout_s: float = 30.0
    """How long a request may wait in the queue before a 429."""
    connect_timeout_s: float = 5.0
    """TCP connect timeout to a lane."""
    first_byte_timeout_s: float = 600.0
    """How long to wait for a lane's response headers (covers prefill)."""
    request_timeout_s: float = 1800.0
    """Overall deadline of one proxied request, retries included."""
    retry_budget: int = 2
    """Extra attempts on other lanes before the first byte reached the client."""
    breaker_failure_threshold: int = 5
    """Consecutive failures that open a lane's circuit breaker."""
    breaker_cooldown_s: float = 10.0
    """Time an open breaker waits before the router sends its own probe request."""
    breaker_failure_ratio: float = 0.3
    """Fraction of failed requests in ``breaker_window_s`` that ejects a lane."""
    breaker_min_requests: int = 10
    """Requests the window must hold before ``breaker_failure_ratio`` applies."""
    breaker_window_s: float = 10.0
    """Sliding window of request outcomes for the failure rate."""
    probe_timeout_s: float = 10.0
    """Time the router's probe of an ejected lane may take (a model list or 1-token chat)."""
    retry_budget_ratio: float = 0.2
    """Retries allowed per window as a fraction of requests (plus 10 per window)."""
    stream_idle_timeout_s: float = 30.0
    """A stream with no data from its lane for this long ends with an error event."""
    stall_timeout_s: float = 5.0
    """A lane whose in-flight requests gave no data for this long is ejected and probed."""
    upstream_keepalive_s: float = 4.0
    """Idle keep-alive of pooled lane connections (shorter than the lane's own)."""
    allow_unauthenticated: bool = False
    """Allow ``listen`` on a non-loopback address: the router's port never asks for a key."""
    media_data_url_max_bytes: int = 20 * 1024 * 1024
    """Longest ``data:`` URL a request's media part may be; 0 refuses data URLs."""
    media_allowed_hosts: tuple[str, ...] = ()
    """Hosts media URLs may name whatever their addresses (the operator's image servers)."""
    media_public_hosts: bool = True
    """Accept media URLs naming any other host whose every address is public."""
    media_resolve_timeout_s: float = 2.0
    """How long resolving the host of a media URL may take (then the request is refused)."""


@dataclass(frozen=True)
class PublicEndpoint:
    """One public API port: forwards to the router, or to a role's active lane."""

    listen: ListenAddress
    target: str
    """``"router"`` or ``"role:NAME"`` (e.g. ``role:multimodal``)."""
    compress: bool = False
    """Compress long chat histories to ``[public] history_budget_tokens`` on every request
    (a request's ``X-Qwend-Compress`` header overrides it either way)."""

    @property
    def role(self) -> str | None:
        """The role this endpoint pins to, or None for the router."""
        return self.target.removeprefix("role:") if self.target.startswith("role:") else None


@dataclass(frozen=True)
class PublicConfig:
    """``[public]``: the console and public API ports."""

    console_listen: ListenAddress | None = None
    """Web console address; None disables the console."""
    console_image_max_side: int = 1536
    """The console scales images down in the browser to this many pixels on their longer
    side; larger images sent to the console are refused."""
    console_compress: bool = True
    """The console compresses long chat histories (to ``history_budget_tokens``)."""
    history_budget_tokens: int | None = None
    """Token budget of a compressed chat history; None: the target lane's context length
    (``max_model_len``) minus the request's ``max_tokens``."""
    keep_recent_turns: int = 4
    """The most recent turns kept verbatim by history compression."""
    endpoints: tuple[PublicEndpoint, ...] = ()
    api_keys_file: Path | None = None
    """File of accepted API keys, one per line; None accepts unauthenticated requests."""
    allow_unauthenticated: bool = False
    """Allow endpoints on non-loopback addresses without ``api_keys_file`` (trusted networks)."""


@dataclass(frozen=True)
class ConnectionsConfig:
    """``[connections]``: limits on client connections to the router port and each public port."""

    max_per_listener: int = 1024
    """Open connections one TCP listener accepts; past it new ones get a 503 and are closed.
    Lowered at start when the file-descriptor limit minus qwend's reserve cannot hold it."""
    header_timeout_s: float = 10.0
    """A new connection must send its first request's complete headers within this."""
    idle_timeout_s: float = 30.0
    """A keep-alive connection with no complete request for this long is closed."""
    body_timeout_s: float = 30.0
    """A request's whole body must arrive within this once its headers are in (slow bodies)."""


class AccessLogTarget(StrEnum):
    """Where ``[access_log]`` records go."""

    OFF = "off"
    JOURNAL = "journal"
    """One log entry per request (the journal under systemd, else the daemon's log)."""
    FILE = "file"
    """JSON lines in ``path``, rotated by size."""


@dataclass(frozen=True)
class AccessLogConfig:
    """``[access_log]``: one JSON record per request (router port and public endpoints)."""

    target: AccessLogTarget = AccessLogTarget.OFF
    path: Path = Path("/var/log/qwend/access.log")
    """The file of ``target = "file"``."""
    max_bytes: int = 100 * 1024 * 1024
    """Past this size the file is rotated (``access.log.1`` ...)."""
    keep: int = 5
    """Rotated files kept."""


@dataclass(frozen=True)
class MonitorConfig:
    """``[monitor]``: the npu-smi poller."""

    enabled: bool = True
    npu_smi: str = "npu-smi"
    """npu-smi executable (name on PATH or absolute path)."""
    interval_s: float = 5.0
    timeout_s: float = 10.0
    """Hard timeout of one npu-smi run; a hung npu-smi is killed and the view goes stale."""
    release_wait_s: float = 30.0
    """Before a lane starts, how long to wait for other processes to release its NPUs' memory."""
    start_despite_busy_npu: bool = False
    """Start a lane anyway when its NPUs are still held after ``release_wait_s``."""


@dataclass(frozen=True)
class HealthConfig:
    """``[health]`` of a lane: readiness and liveness probing."""

    path: str = "/health"
    startup_timeout_s: float = 900.0
    """Readiness deadline; vLLM on an NPU can take many minutes to load."""
    interval_s: float = 10.0
    timeout_s: float = 5.0
    failure_threshold: int = 3
    """Consecutive failed liveness probes that make a lane unhealthy."""
    inference_probe: bool = False
    """Also send a ``max_tokens=1`` completion as a liveness probe."""
    inference_probe_idle_s: float = 60.0
    """Skip the inference probe while real traffic succeeded within this window."""


class StopMode(StrEnum):
    """Who gets a lane's stop signal (systemd's ``KillMode=control-group`` / ``mixed``)."""

    GROUP = "group"
    """Every process of the lane (its process group and session) at once."""
    MAIN = "main"
    """The lane's main process only: it stops its own children in its order (``ray start
    --block`` does); whatever is left when it exits, or at the timeout, is killed."""


@dataclass(frozen=True)
class StopConfig:
    """``[stop]`` of a lane."""

    signal: signal.Signals = signal.SIGTERM
    """Sent to the lane's processes first (``mode`` says which)."""
    timeout_s: float = 30.0
    """Then SIGKILL after this long."""
    mode: StopMode = StopMode.GROUP


@dataclass(frozen=True)
class RestartConfig:
    """``[restart]`` of a lane: backoff and crash-loop detection."""

    backoff_min_s: float = 1.0
    backoff_max_s: float = 60.0
    crash_loop_limit: int = 5
    """More restarts than this within ``crash_loop_window_s`` put the lane in ``failed``."""
    crash_loop_window_s: float = 300.0


@dataclass(frozen=True)
class Capabilities:
    """``[capabilities]``: what a lane can serve."""

    text: bool = True
    image: bool = False


@dataclass(frozen=True)
class RemoteConfig:
    """Where a remote lane listens and how to reach it: a lane qwend routes to but never spawns."""

    url: str
    """``http(s)://host:port`` with an optional path prefix, without a trailing slash."""
    connect_timeout_s: float = 5.0
    tls_ca: Path | None = None
    """CA bundle that signed the lane's certificate (None: the system's)."""
    tls_verify: bool = True
    tls_cert: Path | None = None
    """Client certificate (PEM) for lanes that ask for one; ``tls_key`` is its key."""
    tls_key: Path | None = None
    api_key_file: Path | None = None
    """File holding the key sent as ``Authorization: Bearer`` to the lane."""
    host: str = ""
    """The url's host (for messages and status)."""
    port: int = 0
    """The url's port (explicit or the scheme's default)."""

    @property
    def tls(self) -> bool:
        """The lane speaks HTTPS."""
        return self.url.startswith("https://")


class KvRole(StrEnum):
    """What a lane does in prefill/decode (PD) disaggregation."""

    PREFILL = "prefill"
    """Computes the prompt's KV cache and hands it to a decode lane (one token answered)."""
    DECODE = "decode"
    """Takes a prefill lane's KV cache and generates the answer."""


class StartOrder(StrEnum):
    """In which order the members of a multi-node lane group are started."""

    LEADER_FIRST = "leader_first"
    """The leader (API server, DP coordinator) first; followers then join it (vLLM DP)."""
    FOLLOWERS_FIRST = "followers_first"
    """Followers first, the leader last (engines that wait for every worker to be up)."""


@dataclass(frozen=True)
class GroupConfig:
    """``[lane.group]``: a lane whose members run on several hosts, one per host.

    Every member host has a lane file of the same name; each describes its own member
    (its command, NPUs, environment). The first member leads: it serves the API and is
    the only member routed, while the whole group is up."""

    members: tuple[str, ...]
    """``[cluster] name`` of every member host, in start order; the first one leads."""
    this: str
    """This host's ``[cluster] name`` (one of ``members``)."""
    start_order: StartOrder = StartOrder.LEADER_FIRST

    @property
    def leader(self) -> str:
        """The member host whose member serves the API."""
        return self.members[0]

    @property
    def is_leader(self) -> bool:
        """This host runs the group's leader."""
        return self.this == self.leader

    @property
    def followers(self) -> tuple[str, ...]:
        """Every member host but the leader, in start order."""
        return self.members[1:]

    @property
    def start_sequence(self) -> tuple[str, ...]:
        """Member hosts in the order they are started (the reverse is the stop order)."""
        if self.start_order is StartOrder.FOLLOWERS_FIRST:
            return (*self.followers, self.leader)
        return self.members


@dataclass(frozen=True)
class LaneConfig:
    """One lane: a backend inference server process, from ``lanes.d/NAME.toml``."""

    name: str
    role: str
    variant: str
    npus: tuple[int, ...]
    port: int
    model: str
    command: tuple[str, ...]
    """argv with ``{port}`` ``{npus}`` ``{model}`` ``{served_model}`` ``{name}`` placeholders."""
    standby: bool = False
    """A candidate for its role: not routed until promoted."""
    host: str = "127.0.0.1"
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    health: HealthConfig = HealthConfig()
    stop: StopConfig = StopConfig()
    restart: RestartConfig = RestartConfig()
    capabilities: Capabilities = Capabilities()
    source: Path | None = None
    """The file this lane was read from (for messages)."""
    aliases: tuple[str, ...] = ()
    """More public names clients may ask for (beside ``model``)."""
    served_model: str = ""
    """The name the backend expects in a request's ``model``; empty: the same as ``model``."""
    max_model_len: int | None = None
    """The context length ``/v1/models`` advertises; None: not stated."""
    remote: RemoteConfig | None = None
    """Set for a remote lane (``lane.url``): health-checked and routed, never spawned."""
    kv_role: KvRole | None = None
    """Prefill or decode lane of PD disaggregation; None: prefill and decode in this lane."""
    group: GroupConfig | None = None
    """Set for a member of a multi-node lane group (``[lane.group]``)."""
    runs_on: str | None = None
    """The lane group (led by this host) whose members this lane's engine runs on, e.g.
    a ``vllm serve --distributed-executor-backend ray`` on a Ray cluster: started once the
    group is ready, stopped before it restarts or stops. Such a lane holds no NPUs itself."""

    @property
    def is_headless(self) -> bool:
        """A group member without an API (port 0): never probed over HTTP, never routed."""
        return self.group is not None and not self.port

    @property
    def is_follower(self) -> bool:
        """A group member that is not the leader: supervised here, never routed."""
        return self.group is not None and not self.group.is_leader

    @property
    def is_remote(self) -> bool:
        """The lane runs elsewhere: qwend cannot start or stop it."""
        return self.remote is not None

    @property
    def backend_model(self) -> str:
        """The ``model`` the router sends to this lane's backend."""
        return self.served_model or self.model

    @property
    def public_names(self) -> tuple[str, ...]:
        """Every name clients may use for this lane's model: ``model`` first, then aliases."""
        return (self.model, *self.aliases)

    @property
    def base_url(self) -> str:
        """Where the lane's HTTP server listens."""
        if self.remote is not None:
            return self.remote.url
        return f"http://{self.host}:{self.port}"

    @property
    def visible_devices(self) -> str:
        """``ASCEND_RT_VISIBLE_DEVICES`` value: NPUs sorted, comma-separated."""
        return ",".join(str(n) for n in sorted(self.npus))

    def argv(self) -> list[str]:
        """The command with its placeholders filled in."""
        values = {
            "port": str(self.port),
            "npus": self.visible_devices,
            "model": self.model,
            "served_model": self.backend_model,
            "name": self.name,
        }
        return [_PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], arg) for arg in self.command]

    def spawn_key(self) -> tuple[object, ...]:
        """Fields whose change requires restarting the process on reload."""
        return (
            self.command,
            tuple(sorted(self.env.items())),
            self.cwd,
            self.npus,
            self.port,
            self.host,
            self.model,
            self.served_model,
            self.remote,
            self.group,
            self.runs_on,
        )


@dataclass(frozen=True)
class ClusterConfig:
    """``[cluster]``: this host among its peers, and the control listener peers use."""

    name: str = ""
    """This host's name among its peers (default: the short hostname)."""
    listen: ListenAddress | None = None
    """TCP address of the control API for peers; None: no TCP listener."""
    token_file: Path | None = None
    """Shared secret peers send as ``Authorization: Bearer`` (and this host sends them)."""
    tls_cert: Path | None = None
    """The listener's certificate (PEM); with ``tls_key`` the listener speaks HTTPS."""
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    """Require peers' client certificates signed by this CA (mutual TLS)."""

    @property
    def tls(self) -> bool:
        """The peer listener speaks HTTPS."""
        return self.tls_cert is not None


@dataclass(frozen=True)
class PeerConfig:
    """``[[peers]]``: another host's qwend, reached at its ``[cluster] listen``."""

    name: str
    """The peer's ``[cluster] name``."""
    url: str
    """``http(s)://host:port`` of the peer's control listener, without a trailing slash."""
    host: str
    port: int
    token_file: Path | None = None
    """The shared secret sent to it (default: ``[cluster] token_file``)."""
    tls_ca: Path | None = None
    """CA bundle that signed the peer's certificate (None: the system's)."""
    tls_verify: bool = True
    tls_cert: Path | None = None
    """Client certificate (PEM) for a peer that requires one; ``tls_key`` is its key."""
    tls_key: Path | None = None
    timeout_s: float = 5.0
    """Connect and answer deadline of one request to the peer."""

    @property
    def tls(self) -> bool:
        """The peer's listener speaks HTTPS."""
        return self.url.startswith("https://")


@dataclass(frozen=True)
class Config:
    """The whole configuration: qwend.toml plus every lane file."""

    daemon: DaemonConfig = DaemonConfig()
    router: RouterConfig = RouterConfig()
    public: PublicConfig = PublicConfig()
    monitor: MonitorConfig = MonitorConfig()
    lanes: tuple[LaneConfig, ...] = ()
    path: Path | None = None
    """The qwend.toml this was loaded from."""
    connections: ConnectionsConfig = ConnectionsConfig()
    access_log: AccessLogConfig = AccessLogConfig()
    cluster: ClusterConfig = ClusterConfig()
    peers: tuple[PeerConfig, ...] = ()

    def peer(self, name: str) -> PeerConfig:
        """The peer called ``name``; KeyError when there is none."""
        for peer in self.peers:
            if peer.name == name:
                return peer
        raise KeyError(name)

    def lane(self, name: str) -> LaneConfig:
        """The lane called ``name``; KeyError when there is none."""
        for lane in self.lanes:
            if lane.name == name:
                return lane
        raise KeyError(name)

    @property
    def roles(self) -> tuple[str, ...]:
        """Roles in order of first appearance."""
        return tuple(dict.fromkeys(lane.role for lane in self.lanes))

    def default_active(self) -> dict[str, str]:
        """Role -> the lane configured active (not standby) for it."""
        return {lane.role: lane.name for lane in self.lanes if not lane.standby}


def promotes_in_place(candidate: LaneConfig, incumbent: LaneConfig) -> bool:
    """Whether promoting ``candidate`` over ``incumbent`` is in place (else blue/green).

    In place when the two cannot run side by side: they share an NPU or the port, so the
    incumbent must stop first; two engines on one lane group (``runs_on``) share all of
    its NPUs. The port alone decides, whatever ``host`` says: ``host`` is where qwend
    reaches a lane, while the process binds what its command says (there is no ``{host}``
    placeholder, and vLLM binds every address by default); the config checks likewise
    refuse a port shared across hosts. Blue/green when the candidate has NPUs and a port
    of its own.
    """
    if candidate.is_remote or incumbent.is_remote:
        return False  # qwend cannot stop or start a remote lane: they always run side by side
    if candidate.runs_on is not None and candidate.runs_on == incumbent.runs_on:
        return True  # engines on one lane group: each takes every NPU its members give
    shares_npus = bool(set(candidate.npus) & set(incumbent.npus))
    return shares_npus or candidate.port == incumbent.port
