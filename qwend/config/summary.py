"""The one-screen summary ``check-config`` prints for a valid configuration (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from qwend.config.model import Config, LaneConfig, promotes_in_place
from qwend.config.rayargs import parse_ray_start
from qwend.text import table


def render_summary(config: Config) -> str:
    """A one-screen description of a valid configuration."""
    lines = [f"{config.path}: valid, {_count(len(config.lanes), 'lane')}", ""]
    lines += _lane_table(config)
    lines += ["", *_roles(config), ""]
    router = config.router
    lines.append(
        f"router   {router.listen}  policy {router.text_policy.value}, "
        f"long text >= {router.long_text_min_tokens} tokens"
        + (", no key needed (allow_unauthenticated = true)" if router.allow_unauthenticated else "")
    )
    lines.append(f"console  {_console(config)}")
    active = config.default_active()
    for index, endpoint in enumerate(config.public.endpoints):
        label = "public  " if index == 0 else "        "
        role = endpoint.role
        target = endpoint.target if role is None else f"{endpoint.target} ({active.get(role, '-')})"
        lines.append(f"{label} {endpoint.listen} -> {target}")
    lines.append(f"api keys {_keys(config)}")
    monitor = config.monitor
    npu_smi = f'"{monitor.npu_smi}" every {monitor.interval_s:g} s' if monitor.enabled else "off"
    lines.append(f"monitor  {npu_smi}")
    daemon = config.daemon
    lines.append(
        f"daemon   socket {daemon.control_socket}, state {daemon.state_dir}, logs {daemon.log_dir}"
    )
    lines += _cluster(config)
    return "\n".join(lines)


def _cluster(config: Config) -> list[str]:
    cluster = config.cluster
    if cluster.listen is None and not config.peers:
        return []
    if cluster.listen is None:
        listener = "no peer listener"
    else:
        credentials = [
            label
            for label, on in (
                ("token", cluster.token_file is not None),
                ("client certificates", cluster.tls_client_ca is not None),
            )
            if on
        ]
        scheme = "https" if cluster.tls else "http"
        listener = f"peers connect to {scheme}://{cluster.listen} ({' + '.join(credentials)})"
    lines = [f"cluster  this host is {cluster.name or '(unnamed)'}, {listener}"]
    lines += [f"peer     {peer.name} {peer.url}" for peer in config.peers]
    return lines


def _console(config: Config) -> str:
    public = config.public
    if public.console_listen is None:
        return "disabled"
    compress = "history compression on" if public.console_compress else "no compression"
    return (
        f"{public.console_listen.url}/  images <= {public.console_image_max_side} px,"
        f" {compress}, same keys as the public ports"
    )


def _keys(config: Config) -> str:
    public = config.public
    if public.api_keys_file is not None:
        return str(public.api_keys_file)
    if public.allow_unauthenticated:
        return "none: public ports need no key (allow_unauthenticated = true)"
    return "none: public ports need no key, so they must listen on loopback"


def _lane_table(config: Config) -> list[str]:
    if not config.lanes:
        return [f"no lanes in {config.daemon.lanes_dir}: the router answers 503 until one is added"]
    header = ("LANE", "ROLE", "VARIANT", "STATE", "NPUS", "PORT", "SERVES")
    return table(header, [_lane_row(lane) for lane in _ordered(config.lanes)]).splitlines()


def _lane_row(lane: LaneConfig) -> tuple[str, ...]:
    serves = "+".join(
        k for k, on in (("text", lane.capabilities.text), ("image", lane.capabilities.image)) if on
    )
    if lane.kv_role is not None:
        serves += f" ({lane.kv_role.value})"
    if lane.is_headless:
        serves = "-"  # no API: never routed
    if lane.remote is not None:
        npus = "remote"
    elif lane.runs_on is not None:
        npus = f"{lane.runs_on}'s"  # the group members' NPUs, on every member host
    else:
        npus = ",".join(str(n) for n in lane.npus)
    return (
        lane.name,
        lane.role,
        lane.variant,
        _state(lane),
        npus,
        lane.remote.url if lane.remote is not None else str(lane.port or "-"),
        serves,
    )


def _state(lane: LaneConfig) -> str:
    state = "standby" if lane.standby else "active"
    if lane.runs_on is not None:
        return f"{state}, runs on {lane.runs_on}"
    if lane.group is None:
        return state
    ray = parse_ray_start(lane.command) if lane.remote is None else None
    if ray is not None and ray.head:
        return f"Ray head, leads {'+'.join(lane.group.followers)}"
    if ray is not None:
        return f"Ray worker, joins {lane.group.leader}"
    if lane.group.is_leader:
        return f"{state}, leads {'+'.join(lane.group.followers)}"
    return f"member, led by {lane.group.leader}"


def _ordered(lanes: Sequence[LaneConfig]) -> list[LaneConfig]:
    """By role, the active lane before its candidates."""
    return sorted(lanes, key=lambda lane: (lane.role, lane.standby, lane.name))


def _roles(config: Config) -> list[str]:
    active = config.default_active()
    lines = []
    for role in sorted(config.roles):
        incumbent = config.lane(active[role])
        candidates = [
            f"{lane.name} ({_promotion_kind(lane, incumbent)})"
            for lane in config.lanes
            if lane.role == role and lane.standby
        ]
        extra = f"; candidates: {', '.join(candidates)}" if candidates else ""
        lines.append(f"role {role:<12} active {incumbent.name}{extra}")
    return lines


def _promotion_kind(candidate: LaneConfig, incumbent: LaneConfig) -> str:
    return "in place" if promotes_in_place(candidate, incumbent) else "blue/green"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"
