"""Cross-host checks of lane groups and of the network settings of lanes that talk to
other hosts (pure): see ``qwend.config.crosshost``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from qwend.config.crossbase import Host, Report
from qwend.config.model import LaneConfig
from qwend.config.parallel import (
    VLLM_DP_RPC_PORT_DEFAULT,
    flag,
    is_headless,
    is_vllm,
    option,
    vllm_layout,
)

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

_DP_ADDRESS = ("--data-parallel-address", "-dpa")
_DP_RPC_PORT = ("--data-parallel-rpc-port", "-dpp")
_DP_START = ("--data-parallel-start-rank", "-dpr")
_EXPERT = ("--enable-expert-parallel", "-ep")


def _group_lanes(hosts: Mapping[str, Host]) -> dict[str, dict[str, LaneConfig]]:
    """Lane groups by lane name: member host -> its lane."""
    groups: dict[str, dict[str, LaneConfig]] = {}
    for host in hosts.values():
        for lane in host.config.lanes:
            if lane.group is not None:
                groups.setdefault(lane.name, {})[host.name] = lane
    return groups


def check_groups(hosts: Mapping[str, Host], addresses: Mapping[str, str], report: Report) -> None:
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
    report: Report,
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
    name: str, sizes: Sequence[tuple[str, LaneConfig, int, int]], report: Report
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


def _network_lanes(host: Host) -> Iterable[LaneConfig]:
    """Local lanes that talk to other hosts: group members and PD lanes."""
    for lane in host.config.lanes:
        if not lane.is_remote and (lane.group is not None or lane.kv_role is not None):
            yield lane


def check_network_env(
    hosts: Mapping[str, Host], addresses: Mapping[str, str], report: Report
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
