"""This host's checks of Ray-backed lane groups and the lanes that run on them (pure).

A Ray cluster is a lane group whose members run ``ray start``: the head on the leader
host, a worker joining it on every other one; the engine (``vllm serve
--distributed-executor-backend ray``) is a lane with ``runs_on`` on the leader host.
What one host's files can tell:

- errors: a member that does not stay in the foreground (``--block``), a leader that is
  not the head, a follower that is the head or joins no address, a value Ray refuses;
- warnings: a member declaring Ray a different number of NPUs than its ``npus``, a member
  without ``RAY_EXPERIMENTAL_NOSET_ASCEND_RT_VISIBLE_DEVICES=1`` or stopped as a whole
  group (``[lane.stop] mode``), an engine on a Ray group not using Ray as its executor;
- notes: the engine's NPUs are its group's members', on every member host, so its
  tensor x pipeline size is compared across hosts (``check-config --cluster``), not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath

from qwend.config.draft import LaneDraft
from qwend.config.model import Config, GroupConfig, LaneConfig, StopMode
from qwend.config.parallel import is_vllm, option, vllm_layout
from qwend.config.rayargs import RayStart, parse_ray_start
from qwend.errors import ConfigIssue

EXECUTOR = ("--distributed-executor-backend",)
NOSET_VAR = "RAY_EXPERIMENTAL_NOSET_ASCEND_RT_VISIBLE_DEVICES"
"""Set to 1, Ray leaves each actor's ``ASCEND_RT_VISIBLE_DEVICES`` as the node has it."""


def check_ray_members(issues: list[ConfigIssue], drafts: Sequence[LaneDraft]) -> None:
    """Errors of lanes running ``ray start`` (their role in the group, ``--block``)."""
    for d in drafts:
        command = d.values.get("command")
        if not isinstance(command, tuple):
            continue
        ray = parse_ray_start(command)
        if ray is None:
            continue
        for problem in ray.problems:
            issues.append(ConfigIssue(d.file, "lane.command", problem))
        if not ray.block:
            msg = (
                "ray start without --block starts Ray's daemons in the background and exits:"
                " qwend would supervise nothing (and restart it over and over); add --block"
            )
            issues.append(ConfigIssue(d.file, "lane.command", msg))
        group = d.values.get("group")
        if isinstance(group, GroupConfig):
            _check_member_role(issues, d.file, ray, group)


def check_engines_per_group(issues: list[ConfigIssue], drafts: Sequence[LaneDraft]) -> None:
    """One active lane runs on a group, and standby lanes of its role only: each engine
    asks the cluster for every NPU its members give it, so a second one would wait for
    NPUs that never come free."""
    first: dict[str, LaneDraft] = {}
    for d in drafts:
        group = d.values.get("runs_on")
        if not isinstance(group, str) or d.standby:
            continue
        if group not in first:
            first[group] = d
            continue
        other = first[group]
        msg = (
            f"lane {other.name} ({other.file}) already runs on lane group {group}: an engine"
            " takes every NPU of the group's members, so a second active one never gets"
            " any; set standby = true on one of them"
        )
        issues.append(ConfigIssue(d.file, "lane.runs_on", msg))
    for d in drafts:
        group = d.values.get("runs_on")
        active = first.get(group) if isinstance(group, str) and d.standby else None
        if active is not None and d.role is not None and d.role != active.role:
            msg = (
                f"standby lane of role {d.role!r} runs on lane group {group}, whose engine is"
                f" lane {active.name} of role {active.role!r} ({active.file}): promoted, it"
                " would need the NPUs that engine holds; run on it only a candidate of that role"
            )
            issues.append(ConfigIssue(d.file, "lane.runs_on", msg))


def _check_member_role(
    issues: list[ConfigIssue], file: str, ray: RayStart, group: GroupConfig
) -> None:
    if group.is_leader and not ray.head:
        msg = (
            f"this host ({group.this}) leads the lane group, so its member is Ray's head:"
            " add --head (the followers join it with --address)"
        )
        issues.append(ConfigIssue(file, "lane.command", msg))
    elif not group.is_leader and ray.head:
        msg = (
            f"this host follows {group.leader} in the lane group, whose member is Ray's"
            f" head: remove --head and join it with --address {group.leader}'s address:port"
        )
        issues.append(ConfigIssue(file, "lane.command", msg))
    elif not group.is_leader and ray.address is None:
        msg = (
            f"a Ray worker joins the head: add --address HOST:PORT of {group.leader}'s"
            " Ray head (its node address and --port, 6379 by default)"
        )
        issues.append(ConfigIssue(file, "lane.command", msg))


def ray_node(lane: LaneConfig) -> RayStart | None:
    """The Ray node a lane group member starts; None for any other lane."""
    if lane.group is None or lane.is_remote:
        return None
    return parse_ray_start(lane.command)


def _ray_group(config: Config, name: str) -> LaneConfig | None:
    lane = next((lane for lane in config.lanes if lane.name == name), None)
    return lane if lane is not None and ray_node(lane) is not None else None


def ray_warnings(config: Config) -> list[str]:
    """What check-config points out about Ray members and their engines on this host."""
    warnings = []
    for lane in config.lanes:
        ray = ray_node(lane)
        if ray is not None:
            warnings += _member_warnings(lane, ray)
        if lane.runs_on is None or _ray_group(config, lane.runs_on) is None:
            continue
        argv = lane.argv()
        executor = option(argv, EXECUTOR)
        if _serves_like_vllm(argv) and executor != "ray":
            given = f"--distributed-executor-backend {executor}" if executor else "no executor"
            warnings.append(
                f"lane {lane.name} ({_where(lane)}) runs on Ray lane group {lane.runs_on}"
                f" but its command gives {given}: vLLM then picks its executor itself"
                " (processes on this host alone unless it finds the Ray cluster); add"
                " --distributed-executor-backend ray"
            )
    return warnings


def _serves_like_vllm(argv: Sequence[str]) -> bool:
    """vLLM's server, or the simulator's (same flags): another program, such as a Ray
    driver of its own, has no executor flag to check."""
    simulated = len(argv) > 1 and PurePath(argv[0]).name == "qwend-sim" and argv[1] == "serve"
    return is_vllm(argv) or simulated


def _member_warnings(lane: LaneConfig, ray: RayStart) -> list[str]:
    warnings = []
    declared = ray.declared_npus
    if declared is not None and declared[0] != len(lane.npus):
        count, flag = declared
        warnings.append(
            f"lane {lane.name} ({_where(lane)}): {flag} {count} declares {count} NPU"
            f"{'s' if count != 1 else ''} to Ray, but npus lists {len(lane.npus)}:"
            " Ray would place workers on NPUs this host does not give the lane (or leave"
            " some idle); make them agree"
        )
    if lane.env.get(NOSET_VAR) != "1":
        warnings.append(
            f'lane {lane.name} ({_where(lane)}): set env {NOSET_VAR} = "1" as'
            " vLLM-Ascend's Ray recipe does: otherwise Ray sets each worker's"
            " ASCEND_RT_VISIBLE_DEVICES to the NPUs it assigned that worker, which"
            " vLLM-Ascend's workers do not expect"
        )
    if lane.stop.mode is not StopMode.MAIN:
        warnings.append(
            f'lane {lane.name} ({_where(lane)}): set [lane.stop] mode = "main": given the'
            " stop signal alone, ray start shuts its node down itself in seconds; sent to"
            " every Ray process at once, the shutdown can outlast timeout_s, and each group"
            " restart waits for it"
        )
    return warnings


def ray_notes(config: Config) -> list[str]:
    """Checks left to ``--cluster``: an engine's NPUs are on every member host."""
    notes = []
    for lane in config.lanes:
        if lane.runs_on is None or lane.is_remote:
            continue
        layout, problems = vllm_layout(lane.argv())
        if layout is None or problems:
            continue
        group = next((g for g in config.lanes if g.name == lane.runs_on), None)
        here = f", {len(group.npus)} of them on this host" if group is not None else ""
        notes.append(
            f"lane {lane.name} runs {layout.describe()} on the NPUs of lane group"
            f" {lane.runs_on}'s members{here}: their sum over the hosts is checked with"
            " --cluster"
        )
    return notes


def _where(lane: LaneConfig) -> str:
    return lane.source.name if lane.source is not None else lane.name
