"""Cross-host checks of Ray-backed lane groups and the engines on them (pure): see
``qwend.config.crosshost``.

A Ray cluster spans hosts that each read only their own files: node1's worker may join
an address node0's head does not listen on, or the engine may ask for more NPUs than the
members give Ray. Ray then waits (a worker retries, a placement group stays pending) or
vLLM fails minutes into loading. Given every host's configuration:

- every member of a Ray group runs ``ray start``;
- each follower's ``--address`` is the head's node address (its ``--node-ip-address``,
  else its host's address as its peers know it) and the head's ``--port`` (6379 unless
  given); a member's ``--node-ip-address`` is its own host's address;
- an engine running on the group (``runs_on``) uses as many NPUs as the members give Ray
  in all: tensor x pipeline (x prefill context x data) parallel = the sum of their
  ``npus``;
- the engine's ``RAY_ADDRESS``, ``VLLM_HOST_IP`` and ``HCCL_IF_IP`` (when set) are the
  head's address (and port).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from qwend.config.crossbase import Host, Report
from qwend.config.model import LaneConfig
from qwend.config.parallel import is_vllm, option
from qwend.config.rayargs import RayStart, parse_ray_start
from qwend.config.raycheck import EXECUTOR

_PARALLEL = (
    ("--tensor-parallel-size", "-tp"),
    ("--pipeline-parallel-size", "-pp"),
    ("--prefill-context-parallel-size", "-pcp"),
    ("--data-parallel-size", "-dp"),
)
"""The sizes whose product is the number of workers (NPUs) an engine asks Ray for."""
_HEAD_IP_VARS = ("VLLM_HOST_IP", "HCCL_IF_IP")
"""The engine's environment naming the head node's address: the driver runs there."""


def check_ray(hosts: Mapping[str, Host], addresses: Mapping[str, str], report: Report) -> None:
    """Every inconsistency of the Ray groups among ``hosts`` (each already valid)."""
    for name, lanes in sorted(_ray_groups(hosts).items()):
        nodes = {host: parse_ray_start(lane.command) for host, lane in lanes.items()}
        first = next(iter(lanes.values()))
        assert first.group is not None
        members = first.group.members
        if any(host not in lanes for host in members):
            continue  # a member without its lane: the group check names it
        mixed = [host for host in members if nodes[host] is None]
        for host in mixed:
            msg = (
                f"lane {name!r}: the other members run ray start, this one"
                f" {lanes[host].command[0]!r}; every member of a Ray cluster is a Ray node"
            )
            report.error(host, lanes[host].source, "lane.command", msg)
        head = nodes[members[0]]
        if mixed or head is None or not head.head:
            continue  # not a Ray cluster yet; the host's own check names a missing --head
        head_address = _check_nodes(name, members, lanes, nodes, head, addresses, report)
        leader = hosts[members[0]]
        npus = [(host, len(lanes[host].npus)) for host in members]
        for lane in leader.config.lanes:
            if lane.runs_on == name and not lane.is_remote:
                _check_engine(leader.name, lane, name, npus, head_address, head, report)


def _ray_groups(hosts: Mapping[str, Host]) -> dict[str, dict[str, LaneConfig]]:
    """Lane groups of which some member runs ``ray start``: member host -> its lane."""
    groups: dict[str, dict[str, LaneConfig]] = {}
    for host in hosts.values():
        for lane in host.config.lanes:
            if lane.group is not None and not lane.is_remote:
                groups.setdefault(lane.name, {})[host.name] = lane
    return {
        name: lanes
        for name, lanes in groups.items()
        if any(parse_ray_start(lane.command) is not None for lane in lanes.values())
    }


def _check_nodes(
    name: str,
    members: Sequence[str],
    lanes: Mapping[str, LaneConfig],
    nodes: Mapping[str, RayStart | None],
    head: RayStart,
    addresses: Mapping[str, str],
    report: Report,
) -> str | None:
    """Each node's address and the followers' way to the head; the head's address."""
    leader_host = members[0]
    for host in members:
        node = nodes[host]
        known = addresses.get(host)
        if node is not None and node.node_ip is not None and known and node.node_ip != known:
            msg = (
                f"lane {name!r}: --node-ip-address {node.node_ip} is not this host's address"
                f" {known} (its [cluster] listen and its peers' urls); Ray would announce"
                " this node at an address the other nodes do not reach it by"
            )
            report.error(host, lanes[host].source, "lane.command --node-ip-address", msg)
    head_address = head.node_ip or addresses.get(leader_host)
    expected = f"{head_address or leader_host + ' address'}:{head.port}"
    for host in members[1:]:
        node = nodes[host]
        joined = node.join_address() if node is not None else None
        if joined is None:
            continue  # no --address: the host's own check names it
        address, port = joined
        key = "lane.command --address"
        source = lanes[host].source
        if port is None:
            msg = (
                f"lane {name!r}: --address {address} names no port; the head on"
                f" {leader_host} listens on {head.port}: join {expected}"
            )
            report.error(host, source, key, msg)
        elif port != head.port:
            msg = (
                f"lane {name!r}: --address {address}:{port}, but the Ray head on"
                f" {leader_host} listens on port {head.port} ({_port_origin(head)});"
                f" join {expected}"
            )
            report.error(host, source, key, msg)
        if head_address is None:
            report.warnings.append(
                f"{host}: lane {name} joins the Ray head at {address}, but {leader_host}'s"
                " address is stated nowhere (no --node-ip-address on the head, no [cluster]"
                " listen or peer url): not compared"
            )
        elif address != head_address:
            msg = (
                f"lane {name!r}: --address {address} is not the Ray head's address"
                f" {head_address} ({_address_origin(head)} of {leader_host}); the worker"
                f" would wait for a head that is not there: join {expected}"
            )
            report.error(host, source, key, msg)
    return head_address


def _port_origin(head: RayStart) -> str:
    return "its --port" if head.port_given else "Ray's default, no --port"


def _address_origin(head: RayStart) -> str:
    return "its --node-ip-address" if head.node_ip else "the [cluster] listen and peers' urls"


def _check_engine(
    host: str,
    lane: LaneConfig,
    group: str,
    npus: Sequence[tuple[str, int]],
    head_address: str | None,
    head: RayStart,
    report: Report,
) -> None:
    argv = lane.argv()
    # vLLM, or an engine speaking its flags (qwend-sim): another program's are unknown.
    vllm_like = is_vllm(argv) or option(argv, EXECUTOR) is not None
    sizes = [(names[0], _size(option(argv, names))) for names in _PARALLEL]
    world = 1
    for _, size in sizes:
        world *= size
    total = sum(count for _, count in npus)
    if vllm_like and world != total:
        shown = " x ".join(f"{flag.removeprefix('--')} {size}" for flag, size in sizes if size > 1)
        parts = " + ".join(f"{count} ({member})" for member, count in npus)
        msg = (
            f"lane {lane.name!r} runs on Ray lane group {group!r}: {shown or 'one worker'} ="
            f" {world} NPU{'s' if world != 1 else ''}, but the members give Ray {parts} ="
            f" {total}; make the parallel sizes use every member's NPUs (or change npus)"
        )
        report.error(host, lane.source, "lane.command --tensor-parallel-size", msg)
    if head_address is None:
        return
    ray_address = lane.env.get("RAY_ADDRESS")
    expected = f"{head_address}:{head.port}"
    if ray_address is not None and ray_address not in (expected, "auto"):
        msg = (
            f"lane {lane.name!r}: RAY_ADDRESS {ray_address} is not the Ray head of lane"
            f" group {group!r} ({expected}); the engine would join another cluster or none"
        )
        report.error(host, lane.source, "lane.env.RAY_ADDRESS", msg)
    for var in _HEAD_IP_VARS:
        value = lane.env.get(var)
        if value is not None and value != head_address:
            msg = (
                f"lane {lane.name!r}: {var} {value} is not the Ray head's address"
                f" {head_address}: the engine runs on the head node and its workers reach"
                " it there"
            )
            report.error(host, lane.source, f"lane.env.{var}", msg)


def _size(text: str | None) -> int:
    """A parallel size as vLLM reads it; 1 when absent (or unreadable: the host's own
    check names that)."""
    return int(text) if text is not None and text.isdigit() and int(text) > 0 else 1
