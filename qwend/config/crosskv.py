"""Cross-host checks of prefill/decode lanes and Mooncake (pure): see
``qwend.config.crosshost``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from qwend.config.crossbase import Host, Report, is_loopback
from qwend.config.model import KvRole, LaneConfig
from qwend.config.parallel import SidePort, option, side_ports, vllm_layout

_DP_START = ("--data-parallel-start-rank", "-dpr")
_KV_CONFIG = ("--kv-transfer-config",)


@dataclass(frozen=True)
class _KvLane:
    host: str
    lane: LaneConfig
    config: Mapping[str, object]
    ports: SidePort | None


def _kv_config(
    host: str, lane: LaneConfig, report: Report
) -> tuple[Mapping[str, object] | None, bool]:
    """The lane's kv-transfer-config (None when absent) and whether it could be read."""
    text = option(lane.argv(), _KV_CONFIG)
    if text is None:
        return None, True
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        msg = f"lane {lane.name!r}: --kv-transfer-config is not JSON ({error})"
        report.error(host, lane.source, "lane.command --kv-transfer-config", msg)
        return None, False
    if not isinstance(value, dict):
        msg = f"lane {lane.name!r}: --kv-transfer-config must be a JSON object"
        report.error(host, lane.source, "lane.command --kv-transfer-config", msg)
        return None, False
    return value, True


def _kv_ports(lane: LaneConfig, config: Mapping[str, object]) -> SidePort | None:
    """Mooncake's handshake ports: kv_port + DP rank x TP x PP x PCP + the rank's device."""
    raw = config.get("kv_port")
    if raw is None:
        return None
    try:
        base = int(str(raw))
    except ValueError:
        return None
    argv = lane.argv()
    layout, _ = vllm_layout(argv)
    if layout is None:
        return SidePort("kv_port", base, base)
    start_text = option(argv, _DP_START)
    start = int(start_text) if start_text is not None and start_text.isdigit() else 0
    world = layout.tensor * layout.pipeline * layout.prefill_context
    local = layout.data if layout.data_local is None else layout.data_local
    first = base + start * world
    return SidePort("--kv-transfer-config kv_port", first, first + local * world - 1)


def check_kv(hosts: Mapping[str, Host], addresses: Mapping[str, str], report: Report) -> None:
    kv_lanes: list[_KvLane] = []
    for host in hosts.values():
        for lane in host.config.lanes:
            if lane.is_remote:
                continue
            config, readable = _kv_config(host.name, lane, report)
            if not readable:
                continue
            if config is None:
                continue
            # Whether the connector's kv_role agrees with lane.kv_role is each host's own
            # check (qwend.config.kvconfig): a configuration that got here passed it.
            kv_lanes.append(_KvLane(host.name, lane, config, _kv_ports(lane, config)))
    _check_kv_ports(hosts, kv_lanes, report)
    _check_kv_layouts(kv_lanes, report)
    _check_remote_pd(hosts, addresses, report)


def _host_ports(host: Host) -> list[SidePort]:
    """Every port the host's qwend and lanes bind but Mooncake's."""
    ports: list[SidePort] = []
    cluster = host.config.cluster
    if cluster.listen is not None:
        ports.append(SidePort("[cluster] listen", cluster.listen.port, cluster.listen.port))
    router = host.config.router.listen.port
    ports.append(SidePort("[router] listen", router, router))
    for lane in host.config.lanes:
        if lane.is_remote:
            continue
        if lane.port:
            ports.append(SidePort(f"lane {lane.name} port", lane.port, lane.port))
        found, _ = side_ports(lane.argv(), lane.env)
        ports += [SidePort(f"lane {lane.name} {p.source}", p.first, p.last) for p in found]
    return ports


def _check_kv_ports(hosts: Mapping[str, Host], kv_lanes: Sequence[_KvLane], report: Report) -> None:
    for index, kv in enumerate(kv_lanes):
        if kv.ports is None:
            continue
        clashes = [p for p in _host_ports(hosts[kv.host]) if p.overlaps(kv.ports)]
        clashes += [
            SidePort(f"lane {o.lane.name} kv_port", o.ports.first, o.ports.last)
            for o in kv_lanes[index + 1 :]
            if o.host == kv.host and o.ports is not None and o.ports.overlaps(kv.ports)
        ]
        for clash in clashes:
            msg = (
                f"lane {kv.lane.name!r}: Mooncake takes ports {kv.ports.first}-{kv.ports.last}"
                f" (kv_port + DP rank x TP) and {clash.source} uses {clash.first}"
                + (f"-{clash.last}" if clash.last != clash.first else "")
                + "; move kv_port so the ranges are apart"
            )
            report.error(kv.host, kv.lane.source, "lane.command --kv-transfer-config", msg)


def _sizes(config: Mapping[str, object], side: str) -> tuple[object, object] | None:
    extra = config.get("kv_connector_extra_config")
    if not isinstance(extra, dict):
        return None
    part = extra.get(side)
    if not isinstance(part, dict):
        return None
    return part.get("dp_size"), part.get("tp_size")


def _check_kv_layouts(kv_lanes: Sequence[_KvLane], report: Report) -> None:
    """One connector, and the prefill/decode sizes every PD lane states are the real ones."""
    pd = [kv for kv in kv_lanes if kv.lane.kv_role is not None]
    if not pd:
        return
    connectors = {str(kv.config.get("kv_connector")) for kv in pd}
    if len(connectors) > 1:
        for kv in pd[1:]:
            if kv.config.get("kv_connector") != pd[0].config.get("kv_connector"):
                msg = (
                    f"lane {kv.lane.name!r}: kv_connector {kv.config.get('kv_connector')!r},"
                    f" {pd[0].host}'s lane {pd[0].lane.name!r} uses"
                    f" {pd[0].config.get('kv_connector')!r}: both ends need one connector"
                )
                key = "lane.command --kv-transfer-config"
                report.error(kv.host, kv.lane.source, key, msg)
    for side, role in (("prefill", KvRole.PREFILL), ("decode", KvRole.DECODE)):
        actual = {
            (layout.data, layout.tensor)
            for kv in pd
            if kv.lane.kv_role is role and (layout := vllm_layout(kv.lane.argv())[0]) is not None
        }
        if len(actual) != 1:
            continue  # none, or instances of different shapes: nothing one value could state
        data, tensor = next(iter(actual))
        for kv in pd:
            stated = _sizes(kv.config, side)
            if stated is None:
                continue
            if stated != (data, tensor):
                msg = (
                    f"lane {kv.lane.name!r}: kv_connector_extra_config.{side} says dp_size"
                    f" {stated[0]}, tp_size {stated[1]}; the {side} lanes run"
                    f" --data-parallel-size {data} x --tensor-parallel-size {tensor}"
                )
                key = "lane.command --kv-transfer-config"
                report.error(kv.host, kv.lane.source, key, msg)


def _check_remote_pd(
    hosts: Mapping[str, Host], addresses: Mapping[str, str], report: Report
) -> None:
    """A remote PD lane is a lane of the host it names, reachable, in the same kv_role;
    a PD lane that no router pairs with the other half is pointed out."""
    by_address = {address: name for name, address in addresses.items()}
    reached = {
        (by_address.get(lane.remote.host), lane.remote.port)
        for host in hosts.values()
        for lane in host.config.lanes
        if lane.remote is not None
    }
    for host in hosts.values():
        roles = {lane.kv_role for lane in host.config.lanes if lane.kv_role is not None}
        for lane in host.config.lanes:
            alone = roles == {lane.kv_role}  # no other half on this host's router
            if lane.kv_role is None or lane.is_remote or lane.is_follower or not alone:
                continue
            if (host.name, lane.port) not in reached:
                report.warnings.append(
                    f"{host.name}: {lane.kv_role.value} lane {lane.name} ({lane.source}) is"
                    " reached as a remote lane from none of the hosts checked, and this"
                    " host has no lane of the other half: no router pairs it"
                )
    for host in hosts.values():
        for lane in host.config.lanes:
            remote = lane.remote
            if remote is None or lane.kv_role is None:
                continue
            target_name = by_address.get(remote.host)
            if target_name is None:
                report.warnings.append(
                    f"{host.name}: remote lane {lane.name} ({lane.source}) at {remote.url} is"
                    " on none of the hosts checked; its kv_role was not compared"
                )
                continue
            target = hosts[target_name]
            found = [
                other
                for other in target.config.lanes
                if not other.is_remote and other.port == remote.port
            ]
            if not found:
                msg = (
                    f"remote lane {lane.name!r}: {remote.url} is {target_name}'s address, but"
                    f" no lane of {target_name} ({target.file}) has port {remote.port}"
                )
                report.error(host.name, lane.source, "lane.url", msg)
                continue
            other = found[0]
            if is_loopback(other.host):
                msg = (
                    f"remote lane {lane.name!r}: {target_name}'s lane {other.name!r} listens"
                    f" on {other.host} ({other.source}): unreachable from {host.name}; set"
                    f" its host (and --host) to {remote.host}"
                )
                report.error(host.name, lane.source, "lane.url", msg)
            if other.kv_role != lane.kv_role:
                theirs = other.kv_role.value if other.kv_role else "unset"
                msg = (
                    f"remote lane {lane.name!r}: kv_role {lane.kv_role.value!r}, but"
                    f" {target_name}'s lane {other.name!r} ({other.source}) is {theirs!r}"
                )
                report.error(host.name, lane.source, "lane.kv_role", msg)
