"""What to benchmark: the router, a role's active lane, one lane, or any OpenAI URL.

Lanes and roles are looked up through the control API (``qwend.api``); a plain URL
needs no daemon. Where the daemon answers, the result also records every lane's
variant (for attribution) and a digest of its configuration files.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from qwend.api.client import ControlClient
from qwend.api.messages import LaneInfo, StatusResponse
from qwend.errors import QwendError

LANE_HOST = "127.0.0.1"
"""Lanes listen on the daemon's host; qwenctl runs there too."""


class TargetError(QwendError):
    """A target that cannot be benchmarked (unknown lane, lane not running...)."""


@dataclass(frozen=True)
class Target:
    """A resolved target."""

    spec: str
    url: str
    via_router: bool = False
    model: str = ""
    lanes: dict[str, str] = field(default_factory=dict)
    """Every lane the daemon knows -> its variant (empty without a daemon)."""
    config_digest: str = ""
    lane: str = ""
    """The lane answering at ``url`` when the target is one lane (its answers carry no header)."""


def is_url(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def config_digest(config_path: str) -> str:
    """SHA-256 over the main configuration file and its lane files ("" when unreadable)."""
    try:
        main = Path(config_path)
        data = main.read_bytes()
        daemon = tomllib.loads(data.decode()).get("daemon", {})
        lanes_dir = main.parent / str(daemon.get("lanes_dir", "lanes.d"))
        digest = hashlib.sha256(data)
        for file in sorted(lanes_dir.glob("*.toml")) if lanes_dir.is_dir() else []:
            digest.update(file.name.encode() + b"\0" + file.read_bytes())
    except (OSError, ValueError):
        return ""
    return digest.hexdigest()


def _lane_url(lane: LaneInfo) -> str:
    if lane.url:  # a remote lane: its own address, wherever it runs
        return lane.url.rstrip("/")
    if lane.pid is None or not lane.port:
        raise TargetError(
            f"lane {lane.name} is {lane.state}, not running; start it first "
            f"(`qwenctl start lane {lane.name}`)"
        )
    return f"http://{LANE_HOST}:{lane.port}"


def _direct_model(lane: LaneInfo, fallback: str) -> str:
    """The name to send a lane directly: its backend's name, not the router's public one."""
    return lane.served_model or lane.model or fallback


def from_status(spec: str, status: StatusResponse) -> Target:
    """Resolve ``spec`` against the daemon's status (pure)."""
    by_name = {lane.name: lane for lane in status.lanes}
    variants = {lane.name: lane.variant for lane in status.lanes}
    digest = config_digest(status.daemon.config_path)
    model = next((lane.model for lane in status.lanes if lane.model), "")
    kind, _, name = spec.partition(":")
    if is_url(spec):
        return Target(spec, spec.rstrip("/"), False, model, variants, digest)
    if spec == "router":
        if not status.daemon.router_url:
            raise TargetError("the daemon reports no router address")
        return Target(spec, status.daemon.router_url, True, model, variants, digest)
    if kind == "lane" and name:
        lane = by_name.get(name)
        if lane is None:
            raise TargetError(f"no lane {name!r}; lanes: {', '.join(sorted(by_name))}")
        url = _lane_url(lane)
        return Target(spec, url, False, _direct_model(lane, model), variants, digest, lane.name)
    if kind == "role" and name:
        active = status.active.get(name)
        if active is None or active not in by_name:
            roles = ", ".join(sorted(status.active))
            raise TargetError(f"role {name!r} has no active lane; roles: {roles}")
        lane = by_name[active]
        url = _lane_url(lane)
        return Target(spec, url, False, _direct_model(lane, model), variants, digest, lane.name)
    raise TargetError(
        f"target {spec!r}: expected router, role:NAME, lane:NAME or an http(s):// URL"
    )


async def resolve(spec: str, client: ControlClient | None) -> Target:
    """Resolve ``spec``; a URL needs no daemon (``client`` None)."""
    if client is None:
        if not is_url(spec):
            raise TargetError(f"target {spec!r} needs the daemon; give a URL to bench without one")
        return Target(spec, spec.rstrip("/"))
    return from_status(spec, await client.status())
