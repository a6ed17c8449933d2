"""Build a ``Config`` from parsed TOML mappings, collecting every issue (pure).

``parse_config`` reads qwend.toml's sections and every lane file through ``schema.Table``
(per-key checks) into ``draft.LaneDraft``s, then hands them to ``checks`` (checks across
keys and files: ports, NPUs, roles). It raises ``ConfigError`` with all issues found.
Reading the files is ``load``'s business.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from qwend.config.checks import check_all
from qwend.config.draft import LaneDraft
from qwend.config.model import (
    AccessLogConfig,
    AccessLogTarget,
    Capabilities,
    ClusterConfig,
    Config,
    ConnectionsConfig,
    DaemonConfig,
    HealthConfig,
    KvRole,
    LaneConfig,
    MonitorConfig,
    PublicConfig,
    PublicEndpoint,
    RemoteConfig,
    RestartConfig,
    RouterConfig,
    StopConfig,
    StopMode,
    TextPolicy,
)
from qwend.config.peering import parse_cluster, parse_group, parse_peers
from qwend.config.schema import (
    NAME,
    NAME_RE,
    REQUIRED,
    Bad,
    Bool,
    BoolOrAuto,
    Choice,
    Conv,
    HttpUrl,
    Int,
    Listen,
    Num,
    PathConv,
    SignalConv,
    Str,
    T,
    Table,
    parse_host,
    show,
)
from qwend.errors import ConfigError, ConfigIssue

NO_CLUSTER = ClusterConfig()
"""A host outside any cluster (no name, no peers)."""

PLACEHOLDERS = ("port", "npus", "model", "served_model", "name")
# A placeholder is {identifier}; other braces (JSON in vLLM flags) are literal text.
PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_NPU = 63
POS = Num(positive=True)
NONNEG = Num()
RATIO = Num(positive=True, most=1.0)


@dataclass(frozen=True)
class NpuList(Conv[tuple[int, ...]]):
    """A list of distinct NPU ids, non-empty unless ``empty``."""

    expected: str = f"a non-empty list of NPU ids 0-{MAX_NPU}, e.g. [4]"
    empty: bool = False

    def __call__(self, value: object) -> tuple[int, ...]:
        if not isinstance(value, list) or (not value and not self.empty):
            raise Bad(self.expected, value)
        return _distinct(value, Int(0, MAX_NPU), lambda number: f"NPU {number} is listed twice")


@dataclass(frozen=True)
class Command(Conv[tuple[str, ...]]):
    """An argv list of strings whose placeholders are all known."""

    expected: str = 'a non-empty list of strings (argv), e.g. ["vllm", "serve", "{model}"]'

    def __call__(self, value: object) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise Bad(self.expected, value)
        for index, arg in enumerate(value):
            if not isinstance(arg, str):
                raise Bad("a string", arg, f"[{index}]")
            for name in PLACEHOLDER_RE.findall(arg):
                if name not in PLACEHOLDERS:
                    known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
                    msg = f"unknown placeholder {{{name}}} in {show(arg)}; known: {known}"
                    raise Bad(msg, arg, f"[{index}]", raw=True)
        if not value[0].strip():
            raise Bad("a program name as the first element", value[0], "[0]")
        return tuple(value)


@dataclass(frozen=True)
class NameList(Conv[tuple[str, ...]]):
    """A list of distinct non-empty model names."""

    expected: str = 'a list of model names, e.g. ["qwen3.5", "gpt-4o"]'

    def __call__(self, value: object) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise Bad(self.expected, value)
        name = Str("a non-empty model name")
        return _distinct(value, name, lambda text: f"the name {show(text)} is listed twice")


def _distinct(items: list[object], convert: Conv[T], twice: Callable[[T], str]) -> tuple[T, ...]:
    """Each item converted, in order; Bad naming the index of a bad or repeated item."""
    result: list[T] = []
    for index, item in enumerate(items):
        try:
            converted = convert(item)
        except Bad as bad:
            raise Bad(convert.expected, item, f"[{index}]") from bad
        if converted in result:
            raise Bad(twice(converted), item, f"[{index}]", raw=True)
        result.append(converted)
    return tuple(result)


@dataclass(frozen=True)
class HostList(Conv[tuple[str, ...]]):
    """A list of host names or IP addresses (IPv6 with or without brackets)."""

    expected: str = 'a list of host names or addresses, e.g. ["images.example.com", "10.0.0.5"]'

    def __call__(self, value: object) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise Bad(self.expected, value)
        for index, host in enumerate(value):
            bare = host[1:-1] if isinstance(host, str) and host.startswith("[") else host
            if not isinstance(bare, str) or parse_host(bare.removesuffix(".")) is None:
                raise Bad("a host name or an IP address", host, f"[{index}]")
        return tuple(value)


@dataclass(frozen=True)
class Env(Conv[dict[str, str]]):
    """A table of environment variables; integer values become strings."""

    expected: str = 'a table of NAME = "value"'

    def __call__(self, value: object) -> dict[str, str]:
        if not isinstance(value, Mapping):
            raise Bad(self.expected, value)
        env: dict[str, str] = {}
        for name, item in value.items():
            if not ENV_NAME_RE.fullmatch(name):
                raise Bad("a variable name of letters, digits and '_'", name, f".{name}")
            if name == "ASCEND_RT_VISIBLE_DEVICES":
                msg = "qwend sets ASCEND_RT_VISIBLE_DEVICES from lane.npus; remove it from env"
                raise Bad(msg, item, f".{name}", raw=True)
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise Bad("a string (or number)", item, f".{name}")
            env[name] = str(item)
        return env


def parse_config(
    main: Mapping[str, object],
    lane_files: Sequence[tuple[str, Mapping[str, object]]],
    *,
    main_name: str,
    base_dir: Path,
    partial: bool = False,
    host_name: str = "",
) -> Config:
    """Validate parsed TOML (pure): qwend.toml's mapping and ``(file name, mapping)`` per lane.

    File names are as the operator sees them (``lanes.d/stable.toml``); relative paths in
    the config resolve against ``base_dir``. ``partial``: some lane file could not be read,
    so skip the checks that need every lane (roles). ``host_name`` (the short hostname) is
    the default ``[cluster] name``. Raises ``ConfigError`` with every issue.
    """
    issues: list[ConfigIssue] = []
    top = Table(issues, main_name, "", main)
    daemon = parse_daemon(top.sub("daemon"), base_dir)
    router = parse_router(top.sub("router"))
    public, endpoint_keys = parse_public(top.sub("public"), base_dir)
    monitor = parse_monitor(top.sub("monitor"))
    connections = parse_connections(top.sub("connections"))
    access_log = parse_access_log(top.sub("access_log"), base_dir)
    cluster = parse_cluster(top.sub("cluster"), base_dir, host_name)
    peers = parse_peers(top.items("peers"), base_dir, cluster)
    top.finish()
    peer_names = [peer.name for peer in peers]
    drafts = [
        parse_lane_file(issues, name, data, base_dir, cluster=cluster, peers=peer_names)
        for name, data in lane_files
    ]
    listeners = [("cluster.listen", cluster.listen.port)] if cluster.listen is not None else []
    check_all(
        issues, main_name, router, public, endpoint_keys, drafts, partial=partial, extra=listeners
    )
    if issues:
        # Grouped by file (qwend.toml first), each file's issues in the order found.
        order = {main_name: 0} | {name: i + 1 for i, (name, _) in enumerate(lane_files)}
        raise ConfigError(sorted(issues, key=lambda issue: order.get(issue.file, len(order))))
    # No issue was found, so every draft value is present and of its field's type.
    lanes = tuple(LaneConfig(**d.values) for d in drafts)  # type: ignore[arg-type]
    return Config(
        daemon,
        router,
        public,
        monitor,
        lanes,
        base_dir / main_name,
        connections=connections,
        access_log=access_log,
        cluster=cluster,
        peers=tuple(peers),
    )


def parse_daemon(t: Table, base: Path) -> DaemonConfig:
    """``[daemon]``."""
    d = DaemonConfig()
    paths = PathConv(base)
    group = t.opt("socket_group", Str("a group name"))
    result = DaemonConfig(
        control_socket=t.get("control_socket", paths, d.control_socket) or d.control_socket,
        socket_group=group,
        state_dir=t.get("state_dir", paths, d.state_dir) or d.state_dir,
        log_dir=t.get("log_dir", paths, d.log_dir) or d.log_dir,
        lanes_dir=t.get("lanes_dir", paths, base / "lanes.d") or base / "lanes.d",
        drain_timeout_s=_num(t, "drain_timeout_s", NONNEG, d.drain_timeout_s),
        lane_log_keep=_int(t, "lane_log_keep", Int(0, 1000), d.lane_log_keep),
        lane_log_max_mb=_int(t, "lane_log_max_mb", Int(1, 1_000_000), d.lane_log_max_mb),
        lanes_survive_restart=t.opt("lanes_survive_restart", BoolOrAuto()),
    )
    t.finish()
    return result


def parse_router(t: Table) -> RouterConfig:
    """``[router]``."""
    d = RouterConfig()
    policy = t.get("text_policy", Choice(tuple(p.value for p in TextPolicy)), d.text_policy.value)
    result = RouterConfig(
        listen=t.get("listen", Listen(), d.listen) or d.listen,
        text_policy=TextPolicy(policy or d.text_policy),
        long_text_min_tokens=_int(t, "long_text_min_tokens", Int(1), d.long_text_min_tokens),
        max_in_flight_per_lane=_int(t, "max_in_flight_per_lane", Int(1), d.max_in_flight_per_lane),
        queue_size=_int(t, "queue_size", Int(0), d.queue_size),
        queue_timeout_s=_num(t, "queue_timeout_s", NONNEG, d.queue_timeout_s),
        connect_timeout_s=_num(t, "connect_timeout_s", POS, d.connect_timeout_s),
        first_byte_timeout_s=_num(t, "first_byte_timeout_s", POS, d.first_byte_timeout_s),
        request_timeout_s=_num(t, "request_timeout_s", POS, d.request_timeout_s),
        retry_budget=_int(t, "retry_budget", Int(0, 10), d.retry_budget),
        breaker_failure_threshold=_int(
            t, "breaker_failure_threshold", Int(1), d.breaker_failure_threshold
        ),
        breaker_cooldown_s=_num(t, "breaker_cooldown_s", NONNEG, d.breaker_cooldown_s),
        breaker_failure_ratio=_num(t, "breaker_failure_ratio", RATIO, d.breaker_failure_ratio),
        breaker_min_requests=_int(t, "breaker_min_requests", Int(1), d.breaker_min_requests),
        breaker_window_s=_num(t, "breaker_window_s", POS, d.breaker_window_s),
        probe_timeout_s=_num(t, "probe_timeout_s", POS, d.probe_timeout_s),
        retry_budget_ratio=_num(t, "retry_budget_ratio", NONNEG, d.retry_budget_ratio),
        stream_idle_timeout_s=_num(t, "stream_idle_timeout_s", POS, d.stream_idle_timeout_s),
        stall_timeout_s=_num(t, "stall_timeout_s", POS, d.stall_timeout_s),
        upstream_keepalive_s=_num(t, "upstream_keepalive_s", NONNEG, d.upstream_keepalive_s),
        allow_unauthenticated=_bool(t, "allow_unauthenticated", d.allow_unauthenticated),
        media_data_url_max_bytes=_int(
            t, "media_data_url_max_bytes", Int(0), d.media_data_url_max_bytes
        ),
        media_allowed_hosts=t.get("media_allowed_hosts", HostList(), d.media_allowed_hosts)
        or d.media_allowed_hosts,
        media_public_hosts=_bool(t, "media_public_hosts", d.media_public_hosts),
        media_resolve_timeout_s=_num(t, "media_resolve_timeout_s", POS, d.media_resolve_timeout_s),
    )
    t.finish()
    return result


def parse_public(t: Table, base: Path) -> tuple[PublicConfig, list[str]]:
    """``[public]`` and its ``[[public.endpoints]]`` (with the key path of each endpoint)."""
    d = PublicConfig()
    endpoints = []
    keys = []
    for e in t.items("endpoints"):
        listen = e.get("listen", Listen(), REQUIRED)
        target = e.get("target", Str('"router" or "role:NAME"'), REQUIRED)
        if target is not None and target != "router":
            role = target.removeprefix("role:")
            if not target.startswith("role:") or not NAME_RE.fullmatch(role):
                e.error("target", f'expected "router" or "role:NAME", got {show(target)}')
                target = None
        compress = _bool(e, "compress", False)
        e.finish()
        if listen is not None and target is not None:
            endpoints.append(PublicEndpoint(listen, target, compress))
            keys.append(e.path)
    result = PublicConfig(
        console_listen=t.opt("console_listen", Listen()),
        endpoints=tuple(endpoints),
        api_keys_file=t.opt("api_keys_file", PathConv(base)),
        allow_unauthenticated=_bool(t, "allow_unauthenticated", False),
        console_image_max_side=_int(
            t, "console_image_max_side", Int(64, 8192), d.console_image_max_side
        ),
        console_compress=_bool(t, "console_compress", d.console_compress),
        history_budget_tokens=t.opt("history_budget_tokens", Int(64, 10_000_000)),
        keep_recent_turns=_int(t, "keep_recent_turns", Int(0, 1000), d.keep_recent_turns),
    )
    t.finish()
    return result, keys


def parse_monitor(t: Table) -> MonitorConfig:
    """``[monitor]``."""
    d = MonitorConfig()
    result = MonitorConfig(
        enabled=_bool(t, "enabled", d.enabled),
        npu_smi=t.get("npu_smi", Str("an npu-smi command"), d.npu_smi) or d.npu_smi,
        interval_s=_num(t, "interval_s", POS, d.interval_s),
        timeout_s=_num(t, "timeout_s", POS, d.timeout_s),
        release_wait_s=_num(t, "release_wait_s", NONNEG, d.release_wait_s),
        start_despite_busy_npu=_bool(t, "start_despite_busy_npu", d.start_despite_busy_npu),
    )
    t.finish()
    return result


def parse_connections(t: Table) -> ConnectionsConfig:
    """``[connections]``."""
    d = ConnectionsConfig()
    result = ConnectionsConfig(
        max_per_listener=_int(t, "max_per_listener", Int(1, 1_000_000), d.max_per_listener),
        header_timeout_s=_num(t, "header_timeout_s", POS, d.header_timeout_s),
        idle_timeout_s=_num(t, "idle_timeout_s", POS, d.idle_timeout_s),
        body_timeout_s=_num(t, "body_timeout_s", POS, d.body_timeout_s),
    )
    t.finish()
    return result


def parse_access_log(t: Table, base: Path) -> AccessLogConfig:
    """``[access_log]``."""
    d = AccessLogConfig()
    target = t.get("target", Choice(tuple(x.value for x in AccessLogTarget)), d.target.value)
    result = AccessLogConfig(
        target=AccessLogTarget(target or d.target),
        path=t.get("path", PathConv(base), d.path) or d.path,
        max_bytes=_int(t, "max_bytes", Int(4096), d.max_bytes),
        keep=_int(t, "keep", Int(0, 1000), d.keep),
    )
    t.finish()
    return result


def parse_lane_file(
    issues: list[ConfigIssue],
    file: str,
    data: Mapping[str, object],
    base: Path,
    *,
    cluster: ClusterConfig = NO_CLUSTER,
    peers: Sequence[str] = (),
) -> LaneDraft:
    """One ``lanes.d/*.toml``: a ``[lane]`` table (``cluster`` and ``peers`` for its group)."""
    top = Table(issues, file, "", data)
    t = top.sub("lane", required=True)
    top.finish()
    draft = LaneDraft(file)
    if not isinstance(data.get("lane"), Mapping):
        return draft  # missing or not a table: already reported
    draft.name = t.get("name", NAME, PurePath(file).stem)
    if draft.name is not None and not NAME_RE.fullmatch(draft.name):
        t.error("name", f"the file name {show(file)} is not a valid lane name; set lane.name")
        draft.name = None
    draft.role = t.get("role", NAME, REQUIRED)
    draft.standby = _bool(t, "standby", False)
    remote = parse_remote(t, base)
    group = parse_group(t.sub("group"), cluster, peers)
    if remote is not None and group is not None:
        t.error("group", "a lane group's members run on member hosts; a remote lane (url) has none")
    runs_on = t.opt("runs_on", NAME)
    if runs_on is not None and (group is not None or remote is not None):
        what = "a lane group's member" if group is not None else "a remote lane (url)"
        t.error("runs_on", f"{what} cannot run on another lane group; remove runs_on")
        runs_on = None
    if remote is None:
        # A lane running on a group's cluster holds no NPUs: the group's members do.
        npus = NpuList() if runs_on is None else NpuList(empty=True)
        no_npus: tuple[int, ...] = ()
        draft.npus = t.get("npus", npus, REQUIRED if runs_on is None else no_npus)
        if runs_on is not None and draft.npus:
            t.error(
                "npus",
                f"lane group {runs_on}'s members hold the NPUs this lane's engine runs on;"
                " remove npus (or leave it [])",
            )
            draft.npus = ()  # said once: not again as a clash with the members' NPUs
        # A group member may serve no API (a headless rank, a Ray node): port 0, none.
        draft.port = t.get("port", Int(1, 65535), 0 if group is not None else REQUIRED) or None
    kv_role = t.opt("kv_role", Choice(tuple(r.value for r in KvRole)))
    draft.capabilities = parse_capabilities(t.sub("capabilities"))
    draft.values = {
        "name": draft.name,
        "role": draft.role,
        "variant": t.get("variant", Str("a variant label"), draft.name),
        "npus": draft.npus,
        "port": draft.port or 0,
        "model": t.get("model", Str("a model name or path"), REQUIRED),
        "aliases": t.get("aliases", NameList(), ()),
        "served_model": t.get("served_model", Str("the model name the backend expects"), ""),
        "max_model_len": t.opt("max_model_len", Int(1)),
        "command": t.get("command", Command(), REQUIRED) if remote is None else (),
        "standby": draft.standby,
        "host": t.get("host", Str("an IP address or hostname"), "127.0.0.1"),
        "remote": remote,
        "kv_role": KvRole(kv_role) if kv_role is not None else None,
        "group": group,
        "runs_on": runs_on,
        "env": t.get("env", Env(), {}),
        "cwd": t.opt("cwd", PathConv(base)),
        "health": parse_health(t.sub("health")),
        "stop": parse_stop(t.sub("stop")),
        "restart": parse_restart(t.sub("restart")),
        "capabilities": draft.capabilities,
        "source": base / file,
    }
    if remote is not None:
        # The remote host's port and NPUs are not this host's: no clash checks with local lanes.
        draft.values.update(npus=(), port=remote.port, host=remote.host)
    aliases = draft.values["aliases"]
    if isinstance(aliases, tuple) and draft.values["model"] in aliases:
        t.error("aliases", f"{show(draft.values['model'])} is already the lane's model; remove it")
    host = draft.values["host"]
    if isinstance(host, str) and parse_host(host) is None:
        t.error("host", f"expected an IP address or hostname, got {show(host)}")
    t.finish()
    return draft


REMOTE_ONLY = ("connect_timeout_s", "tls_ca", "tls_verify", "tls_cert", "tls_key", "api_key_file")


def parse_remote(t: Table, base: Path) -> RemoteConfig | None:
    """``lane.url`` and its connection keys; None for a local lane (remote keys refused)."""
    has_url, has_command = "url" in t.data, "command" in t.data
    if not has_url:
        for key in REMOTE_ONLY:
            if key in t.data:
                t.seen.add(key)
                t.error(key, "only a remote lane (lane.url) takes this key; remove it or set url")
        return None
    parsed = t.get("url", HttpUrl(), REQUIRED)
    if has_command:
        t.seen.add("command")
        t.error("command", "a lane has either command (a local process) or url (a remote lane)")
    for key in ("npus", "port"):
        t.seen.add(key)
        value = t.data.get(key)
        if key == "npus" and value is not None and value != []:
            t.error(key, "a remote lane uses no NPU of this host; remove npus (or leave it [])")
        elif key == "port" and value is not None:
            t.error(key, "a remote lane's port is the url's; remove port")
    remote = RemoteConfig(
        url=parsed[0] if parsed else "http://invalid",
        connect_timeout_s=_num(t, "connect_timeout_s", POS, 5.0),
        tls_ca=t.opt("tls_ca", PathConv(base)),
        tls_verify=_bool(t, "tls_verify", True),
        tls_cert=t.opt("tls_cert", PathConv(base)),
        tls_key=t.opt("tls_key", PathConv(base)),
        api_key_file=t.opt("api_key_file", PathConv(base)),
        host=parsed[1] if parsed else "invalid",
        port=parsed[2] if parsed else 1,
    )
    if not remote.tls:
        for key in ("tls_ca", "tls_cert", "tls_key"):
            if t.data.get(key) is not None:
                t.error(key, "the url is http://; TLS settings need an https:// url")
    if (remote.tls_cert is None) != (remote.tls_key is None):
        missing = "tls_key" if remote.tls_key is None else "tls_cert"
        t.error(missing, "a client certificate needs both tls_cert and tls_key")
    return remote


def parse_health(t: Table) -> HealthConfig:
    """``[lane.health]``."""
    d = HealthConfig()
    path = t.get("path", Str('an HTTP path starting with "/"', re.compile(r"/\S*")), d.path)
    result = HealthConfig(
        path=path or d.path,
        startup_timeout_s=_num(t, "startup_timeout_s", POS, d.startup_timeout_s),
        interval_s=_num(t, "interval_s", POS, d.interval_s),
        timeout_s=_num(t, "timeout_s", POS, d.timeout_s),
        failure_threshold=_int(t, "failure_threshold", Int(1), d.failure_threshold),
        inference_probe=_bool(t, "inference_probe", d.inference_probe),
        inference_probe_idle_s=_num(t, "inference_probe_idle_s", NONNEG, d.inference_probe_idle_s),
    )
    t.finish()
    return result


def parse_stop(t: Table) -> StopConfig:
    """``[lane.stop]``."""
    d = StopConfig()
    mode = t.get("mode", Choice(tuple(m.value for m in StopMode)), d.mode.value)
    result = StopConfig(
        signal=t.get("signal", SignalConv(), d.signal) or d.signal,
        timeout_s=_num(t, "timeout_s", NONNEG, d.timeout_s),
        mode=StopMode(mode or d.mode.value),
    )
    t.finish()
    return result


def parse_restart(t: Table) -> RestartConfig:
    """``[lane.restart]``; the backoff bounds must be in order."""
    d = RestartConfig()
    low = t.get("backoff_min_s", NONNEG, d.backoff_min_s)
    high = t.get("backoff_max_s", NONNEG, d.backoff_max_s)
    if low is not None and high is not None and low > high:
        t.error("backoff_min_s", f"backoff_min_s ({low:g}) is larger than backoff_max_s ({high:g})")
    result = RestartConfig(
        backoff_min_s=low if low is not None else d.backoff_min_s,
        backoff_max_s=high if high is not None else d.backoff_max_s,
        crash_loop_limit=_int(t, "crash_loop_limit", Int(1), d.crash_loop_limit),
        crash_loop_window_s=_num(t, "crash_loop_window_s", POS, d.crash_loop_window_s),
    )
    t.finish()
    return result


def parse_capabilities(t: Table) -> Capabilities:
    """``[lane.capabilities]``; a lane must serve something."""
    d = Capabilities()
    result = Capabilities(text=_bool(t, "text", d.text), image=_bool(t, "image", d.image))
    if t.data and not (result.text or result.image):
        t.error("", "a lane must serve text or image (or both): set text or image to true")
    t.finish()
    return result


def _num(t: Table, name: str, conv: Num, default: float) -> float:
    value = t.get(name, conv, default)
    return default if value is None else value


def _int(t: Table, name: str, conv: Int, default: int) -> int:
    value = t.get(name, conv, default)
    return default if value is None else value


def _bool(t: Table, name: str, default: bool) -> bool:
    value = t.get(name, Bool(), default)
    return default if value is None else value
