"""Checks across the configurations of several hosts of one cluster (pure).

Each host's qwend reads only its own files, so ``check-config`` on one host cannot see
that node1's follower joins a coordinator at an address node0 does not have, or that a
decode lane's Mooncake layout disagrees with the prefill lane's: vLLM, HCCL and Mooncake
then hang or fail minutes into loading. Given every host's parsed ``Config`` this module
checks what must agree between them:

- peers: every ``[[peers]] url`` reaches that host's ``[cluster] listen`` (host, port,
  http/https) and the peer is one of the hosts;
- lane groups: every member host has the lane with the same members and start order;
  vLLM's multi-node data parallel flags agree (``--data-parallel-address`` is the
  leader host's address, one ``--data-parallel-rpc-port`` and ``--data-parallel-size``,
  the local sizes add up to it, the start ranks tile ``0..size-1``, followers are
  ``--headless``, the model flags are the leader's);
- the network environment of a member or PD lane: ``HCCL_IF_IP`` is its own host's
  address, ``GLOO_SOCKET_IFNAME``/``TP_SOCKET_IFNAME``/``HCCL_SOCKET_IFNAME`` name one
  interface and are set on every member alike;
- prefill/decode: ``kv_role`` agrees with the ``--kv-transfer-config`` kv_role, every
  PD lane uses one connector and states the real prefill and decode DP x TP layouts,
  Mooncake's port range (``kv_port`` + rank x TP x PP from the first local DP rank on)
  is distinct from every other port of its host, and a remote PD lane's url is a lane of
  the host it names, listening where the front host can reach it, in the same kv_role.

A host's address is what its peers' urls and its own ``[cluster] listen`` say; a check
that needs an address nobody states is skipped rather than guessed.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qwend.config.model import Config, KvRole, LaneConfig
from qwend.config.parallel import (
    VLLM_DP_RPC_PORT_DEFAULT,
    SidePort,
    flag,
    is_headless,
    is_vllm,
    option,
    side_ports,
    vllm_layout,
)
from qwend.errors import ConfigIssue

IFNAME_VARS = ("GLOO_SOCKET_IFNAME", "TP_SOCKET_IFNAME", "HCCL_SOCKET_IFNAME")
"""Environment variables binding Gloo, TP and HCCL sockets to one network interface."""

SAME_ON_EVERY_MEMBER = (
    ("--tensor-parallel-size", "-tp"),
    ("--pipeline-parallel-size", "-pp"),
    ("--quantization", "-q"),
    ("--max-model-len",),
    ("--served-model-name",),
    ("--distributed-executor-backend",),
    ("--speculative-config",),
    ("--kv-transfer-config",),
)
"""Options every data parallel rank of one model must be started with alike."""

KV_ROLES = {"kv_producer": KvRole.PREFILL, "kv_consumer": KvRole.DECODE}
"""vLLM's ``kv_role`` of a kv-transfer-config, as qwend's ``lane.kv_role``."""

_DP_ADDRESS = ("--data-parallel-address", "-dpa")
_DP_RPC_PORT = ("--data-parallel-rpc-port", "-dpp")
_DP_START = ("--data-parallel-start-rank", "-dpr")
_KV_CONFIG = ("--kv-transfer-config",)
_EXPERT = ("--enable-expert-parallel", "-ep")


@dataclass(frozen=True)
class CrossHostCheck:
    """What the cross-host check found."""

    issues: tuple[ConfigIssue, ...] = ()
    """Inconsistencies that break the cluster; empty when none."""
    warnings: tuple[str, ...] = ()
    """What may be wrong though nothing provably is."""

    @property
    def ok(self) -> bool:
        """Whether the hosts' configurations agree."""
        return not self.issues


@dataclass
class _Report:
    issues: list[ConfigIssue] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def error(self, host: str, file: Path | str | None, key: str, message: str) -> None:
        self.issues.append(ConfigIssue(str(file or "?"), key, f"[{host}] {message}"))


@dataclass(frozen=True)
class _Host:
    name: str
    config: Config

    @property
    def file(self) -> str:
        return str(self.config.path or "qwend.toml")


def check_hosts(configs: Sequence[Config]) -> CrossHostCheck:
    """Every cross-host inconsistency among ``configs`` (one per host, each valid)."""
    report = _Report()
    hosts = _hosts(configs, report)
    addresses = _addresses(hosts, report)
    _check_peers(hosts, report)
    _check_groups(hosts, addresses, report)
    _check_network_env(hosts, addresses, report)
    _check_kv(hosts, addresses, report)
    return CrossHostCheck(tuple(report.issues), tuple(report.warnings))


def _hosts(configs: Sequence[Config], report: _Report) -> dict[str, _Host]:
    hosts: dict[str, _Host] = {}
    for config in configs:
        host = _Host(config.cluster.name, config)
        if not host.name:
            report.error("?", host.file, "cluster.name", "no host name: set [cluster] name")
        elif host.name in hosts:
            msg = (
                f"{host.name!r} is also the [cluster] name in {hosts[host.name].file};"
                " each host needs a name of its own"
            )
            report.error(host.name, host.file, "cluster.name", msg)
        else:
            hosts[host.name] = host
    return hosts


def _wildcard(address: str) -> bool:
    return address in ("", "0.0.0.0", "::")


def _is_loopback(address: str) -> bool:
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _addresses(hosts: Mapping[str, _Host], report: _Report) -> dict[str, str]:
    """Each host's address on the cluster network: its listener's, else its peers' word."""
    addresses: dict[str, str] = {}
    for name, host in hosts.items():
        listen = host.config.cluster.listen
        if listen is not None and not _wildcard(listen.host) and not listen.loopback:
            addresses[name] = listen.host
    for host in hosts.values():
        for peer in host.config.peers:
            if peer.name in hosts and peer.name not in addresses:
                addresses[peer.name] = peer.host
    return addresses


def _check_peers(hosts: Mapping[str, _Host], report: _Report) -> None:
    for host in hosts.values():
        for index, peer in enumerate(host.config.peers):
            key = f"peers[{index}].url"
            other = hosts.get(peer.name)
            if other is None:
                known = ", ".join(sorted(hosts)) or "none"
                msg = (
                    f"peer {peer.name!r} is none of the hosts checked ({known}); pass its"
                    " configuration too, or remove the peer"
                )
                report.error(host.name, host.file, f"peers[{index}].name", msg)
                continue
            listen = other.config.cluster.listen
            if listen is None:
                msg = (
                    f"{peer.name} has no [cluster] listen ({other.file}): nothing answers at"
                    f" {peer.url}; set its listen"
                )
                report.error(host.name, host.file, key, msg)
                continue
            scheme = "https" if other.config.cluster.tls else "http"
            expected_host = peer.host if _wildcard(listen.host) else listen.host
            expected = f"{scheme}://{_url_host(expected_host)}:{listen.port}"
            if (peer.url.split("://")[0], peer.host, peer.port) != (
                scheme,
                expected_host,
                listen.port,
            ):
                msg = (
                    f"peer {peer.name}'s [cluster] listen is {listen}"
                    f"{' with TLS' if other.config.cluster.tls else ' (plain HTTP)'}"
                    f" ({other.file}); expected url {expected}, got {peer.url}"
                )
                report.error(host.name, host.file, key, msg)
            if not any(p.name == host.name for p in other.config.peers):
                report.warnings.append(
                    f"{host.name} lists {peer.name} as a peer but {peer.name} does not list"
                    f" {host.name} ({other.file}): {peer.name}'s status misses {host.name}"
                )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _group_lanes(hosts: Mapping[str, _Host]) -> dict[str, dict[str, LaneConfig]]:
    """Lane groups by lane name: member host -> its lane."""
    groups: dict[str, dict[str, LaneConfig]] = {}
    for host in hosts.values():
        for lane in host.config.lanes:
            if lane.group is not None:
                groups.setdefault(lane.name, {})[host.name] = lane
    return groups


def _check_groups(
    hosts: Mapping[str, _Host], addresses: Mapping[str, str], report: _Report
) -> None:
    for name, lanes in sorted(_group_lanes(hosts).items()):
        first = next(iter(lanes.values()))
        assert first.group is not None
        leader_host = first.group.leader
        reference = lanes.get(leader_host, first)
        ref_group = reference.group
        assert ref_group is not None
        complete = True
        for member in ref_group.members:
            host = hosts.get(member)
            if host is None:
                msg = (
                    f"lane {name!r} has member {member!r}, whose configuration was not"
                    " given; pass it too"
                )
                report.error(ref_group.this, reference.source, "lane.group.members", msg)
                complete = False
            elif member not in lanes:
                has = any(lane.name == name for lane in host.config.lanes)
                what = "without [lane.group]" if has else "no such lane"
                msg = (
                    f"member of lane group {name!r} (led by {ref_group.leader}) but has"
                    f" {what}; add lanes.d/{name}.toml with the same [lane.group]"
                )
                report.error(member, host.file, "lane.group", msg)
                complete = False
        for member, lane in lanes.items():
            group = lane.group
            assert group is not None
            if (group.members, group.start_order) != (ref_group.members, ref_group.start_order):
                msg = (
                    f"lane {name!r} has members {list(group.members)}, start_order"
                    f" {group.start_order.value!r}; the leader's ({reference.source}) has"
                    f" {list(ref_group.members)}, {ref_group.start_order.value!r}: use the"
                    " same [lane.group] on every member"
                )
                report.error(member, lane.source, "lane.group.members", msg)
                complete = False
        if complete and all(is_vllm(lane.command) for lane in lanes.values()):
            ordered = [(m, lanes[m]) for m in ref_group.members]
            _check_vllm_group(name, ordered, addresses, report)


def _check_vllm_group(
    name: str,
    members: Sequence[tuple[str, LaneConfig]],
    addresses: Mapping[str, str],
    report: _Report,
) -> None:
    """vLLM's multi-node data parallel flags across the members (the first one leads)."""
    leader_host, leader = members[0]
    leader_argv = leader.argv()
    leader_address = addresses.get(leader_host)
    rpc = option(leader_argv, _DP_RPC_PORT) or str(VLLM_DP_RPC_PORT_DEFAULT)
    sizes: list[tuple[str, LaneConfig, int, int]] = []
    for host, lane in members:
        argv = lane.argv()
        key = "lane.command"
        address = option(argv, _DP_ADDRESS)
        if address is None:
            msg = (
                f"lane {name!r}: --data-parallel-address is missing; every member needs the"
                f" leader's address ({leader_address or leader_host + ' address'})"
            )
            report.error(host, lane.source, key, msg)
        elif leader_address is not None and address != leader_address:
            msg = (
                f"lane {name!r}: --data-parallel-address {address} is not the leader"
                f" {leader_host}'s address {leader_address} (its [cluster] listen and its"
                " peers' urls); the ranks would wait for a coordinator that is not there"
            )
            report.error(host, lane.source, f"{key} --data-parallel-address", msg)
        port = option(argv, _DP_RPC_PORT) or str(VLLM_DP_RPC_PORT_DEFAULT)
        if port != rpc:
            msg = (
                f"lane {name!r}: --data-parallel-rpc-port {port}, the leader {leader_host}"
                f" uses {rpc}; use one port on every member"
            )
            report.error(host, lane.source, f"{key} --data-parallel-rpc-port", msg)
        headless = is_headless(argv)
        if host == leader_host and headless:
            msg = f"lane {name!r}: the leader runs the API server; remove --headless"
            report.error(host, lane.source, f"{key} --headless", msg)
        elif host != leader_host and not headless:
            msg = (
                f"lane {name!r}: a follower runs no API server; add --headless (the leader"
                f" {leader_host} serves the API)"
            )
            report.error(host, lane.source, f"{key} --headless", msg)
        for names in SAME_ON_EVERY_MEMBER:
            mine, theirs = option(argv, names), option(leader_argv, names)
            if host != leader_host and mine != theirs:
                msg = (
                    f"lane {name!r}: {names[0]} is {_shown(mine)} here and {_shown(theirs)}"
                    f" on the leader {leader_host}; every rank runs the same model alike"
                )
                report.error(host, lane.source, f"{key} {names[0]}", msg)
        if host != leader_host and flag(argv, _EXPERT) != flag(leader_argv, _EXPERT):
            msg = (
                f"lane {name!r}: --enable-expert-parallel differs from the leader"
                f" {leader_host}'s; set it alike on every member"
            )
            report.error(host, lane.source, f"{key} --enable-expert-parallel", msg)
        if host != leader_host and _model_path(argv) != _model_path(leader_argv):
            msg = (
                f"lane {name!r}: serves {_model_path(argv)}, the leader {leader_host}"
                f" {_model_path(leader_argv)}; every rank loads the same weights"
            )
            report.error(host, lane.source, key, msg)
        layout, _ = vllm_layout(argv)
        if layout is None:
            continue
        if layout.data_local is None:
            msg = (
                f"lane {name!r}: --data-parallel-size-local is missing; say how many of the"
                f" {layout.data} DP ranks run on this host"
            )
            report.error(host, lane.source, f"{key} --data-parallel-size-local", msg)
            continue
        start_text = option(argv, _DP_START)
        start = int(start_text) if start_text is not None and start_text.isdigit() else 0
        sizes.append((host, lane, start, layout.data_local))
        if layout.data != (vllm_layout(leader_argv)[0] or layout).data:
            msg = (
                f"lane {name!r}: --data-parallel-size {layout.data}, the leader"
                f" {leader_host}'s is {(vllm_layout(leader_argv)[0] or layout).data}"
            )
            report.error(host, lane.source, f"{key} --data-parallel-size", msg)
    if len(sizes) == len(members):
        _check_ranks(name, sizes, report)


def _model_path(argv: Sequence[str]) -> str:
    """``vllm serve MODEL``: the model argument (empty when given as --model only)."""
    if len(argv) > 2 and not argv[2].startswith("-"):
        return argv[2]
    return option(argv, ("--model",)) or ""


def _shown(value: str | None) -> str:
    return "unset" if value is None else repr(value)


def _check_ranks(
    name: str, sizes: Sequence[tuple[str, LaneConfig, int, int]], report: _Report
) -> None:
    """Local DP sizes add up to the global size; start ranks tile 0..size-1."""
    leader_host, leader, _, _ = sizes[0]
    layout, _ = vllm_layout(leader.argv())
    total = layout.data if layout is not None else 0
    local_sum = sum(local for *_, local in sizes)
    if local_sum != total:
        parts = " + ".join(f"{local} ({host})" for host, _, _, local in sizes)
        msg = (
            f"lane {name!r}: --data-parallel-size {total}, but the members'"
            f" --data-parallel-size-local add up to {parts} = {local_sum}"
        )
        report.error(leader_host, leader.source, "lane.command --data-parallel-size", msg)
        return
    expected = 0
    for host, lane, start, local in sizes:
        if start != expected:
            given = option(lane.argv(), _DP_START)
            shown = (
                f"--data-parallel-start-rank {start}"
                if given
                else "no --data-parallel-start-rank (0)"
            )
            msg = (
                f"lane {name!r}: {shown}; after the members before"
                f" it in [lane.group] members this host's ranks start at {expected}"
                " (ranks must cover 0..size-1 once, in member order)"
            )
            report.error(host, lane.source, "lane.command --data-parallel-start-rank", msg)
        expected += local


def _network_lanes(host: _Host) -> Iterable[LaneConfig]:
    """Local lanes that talk to other hosts: group members and PD lanes."""
    for lane in host.config.lanes:
        if not lane.is_remote and (lane.group is not None or lane.kv_role is not None):
            yield lane


def _check_network_env(
    hosts: Mapping[str, _Host], addresses: Mapping[str, str], report: _Report
) -> None:
    group_ifnames: dict[str, dict[str, frozenset[str]]] = {}
    for host in hosts.values():
        address = addresses.get(host.name)
        for lane in _network_lanes(host):
            hccl_ip = lane.env.get("HCCL_IF_IP")
            if hccl_ip is None:
                report.warnings.append(
                    f"{host.name}: lane {lane.name} ({lane.source}) sets no HCCL_IF_IP: HCCL"
                    " picks an interface itself; set it to this host's cluster address"
                    + (f" ({address})" if address else "")
                )
            elif address is not None and hccl_ip != address:
                msg = (
                    f"lane {lane.name!r}: HCCL_IF_IP {hccl_ip} is not this host's address"
                    f" {address} (its [cluster] listen and its peers' urls); HCCL would bind"
                    " another interface or fail"
                )
                report.error(host.name, lane.source, "lane.env.HCCL_IF_IP", msg)
            names = {lane.env[v] for v in IFNAME_VARS if v in lane.env}
            if len(names) > 1:
                shown = ", ".join(f"{v}={lane.env[v]}" for v in IFNAME_VARS if v in lane.env)
                msg = (
                    f"lane {lane.name!r}: {shown}: Gloo, TP and HCCL sockets must use the"
                    " interface that carries HCCL_IF_IP; name one interface"
                )
                report.error(host.name, lane.source, "lane.env.GLOO_SOCKET_IFNAME", msg)
            if lane.group is not None:
                present = frozenset(v for v in IFNAME_VARS if v in lane.env)
                group_ifnames.setdefault(lane.name, {})[host.name] = present
    for name, by_host in sorted(group_ifnames.items()):
        union = frozenset().union(*by_host.values())
        for host_name, present in sorted(by_host.items()):
            missing = sorted(union - present)
            if missing:
                lane = hosts[host_name].config.lane(name)
                msg = (
                    f"lane {name!r}: {', '.join(missing)} set on other members but not here;"
                    " set them on every member (to this host's interface)"
                )
                report.error(host_name, lane.source, f"lane.env.{missing[0]}", msg)


@dataclass(frozen=True)
class _KvLane:
    host: str
    lane: LaneConfig
    config: Mapping[str, object]
    ports: SidePort | None


def _kv_config(
    host: str, lane: LaneConfig, report: _Report
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


def _check_kv(hosts: Mapping[str, _Host], addresses: Mapping[str, str], report: _Report) -> None:
    kv_lanes: list[_KvLane] = []
    for host in hosts.values():
        for lane in host.config.lanes:
            if lane.is_remote:
                continue
            config, readable = _kv_config(host.name, lane, report)
            if not readable:
                continue
            if config is None:
                if lane.kv_role is not None and is_vllm(lane.command):
                    msg = (
                        f"lane {lane.name!r} has kv_role {lane.kv_role.value!r} but its"
                        " command has no --kv-transfer-config: the engine would not hand KV"
                        " over; add the connector's config"
                    )
                    report.error(host.name, lane.source, "lane.kv_role", msg)
                continue
            role = KV_ROLES.get(str(config.get("kv_role", "")))
            if lane.kv_role is not None and role is not None and role != lane.kv_role:
                msg = (
                    f"lane {lane.name!r}: kv_role {lane.kv_role.value!r} but its"
                    f" --kv-transfer-config says kv_role {config.get('kv_role')!r}; prefill"
                    " lanes are kv_producer, decode lanes kv_consumer"
                )
                report.error(host.name, lane.source, "lane.kv_role", msg)
            kv_lanes.append(_KvLane(host.name, lane, config, _kv_ports(lane, config)))
    _check_kv_ports(hosts, kv_lanes, report)
    _check_kv_layouts(kv_lanes, report)
    _check_remote_pd(hosts, addresses, report)


def _host_ports(host: _Host) -> list[SidePort]:
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


def _check_kv_ports(
    hosts: Mapping[str, _Host], kv_lanes: Sequence[_KvLane], report: _Report
) -> None:
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


def _check_kv_layouts(kv_lanes: Sequence[_KvLane], report: _Report) -> None:
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
    hosts: Mapping[str, _Host], addresses: Mapping[str, str], report: _Report
) -> None:
    """A remote PD lane is a lane of the host it names, reachable, in the same kv_role."""
    by_address = {address: name for name, address in addresses.items()}
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
            if _is_loopback(other.host):
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
