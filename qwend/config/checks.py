"""Checks across keys and files: lane names, roles, ports, NPUs, exposure (pure).

Per-key checks live in ``parse`` (through ``schema``); these need the whole picture, which
they read from the lane drafts. Each issue is filed where the operator has to act (the
later of two clashing files) and names the other party, so the fix is obvious from the
message alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from qwend.config.draft import LaneDraft
from qwend.config.kvconfig import kv_role_problem
from qwend.config.model import GroupConfig, KvRole, PublicConfig, RouterConfig
from qwend.config.parallel import SidePort, side_ports, vllm_layout
from qwend.config.raycheck import check_engines_per_group, check_ray_members
from qwend.errors import ConfigIssue


def check_all(
    issues: list[ConfigIssue],
    main_name: str,
    router: RouterConfig,
    public: PublicConfig,
    endpoint_keys: Sequence[str],
    drafts: Sequence[LaneDraft],
    *,
    partial: bool,
    extra: Sequence[tuple[str, int]] = (),
) -> None:
    """Append every cross-file problem to ``issues`` (``extra``: more listeners of
    qwend.toml as (key, port), e.g. the peer listener)."""
    check_names(issues, drafts)
    # A lane file that did not load (or has no valid role) may hold a role's active lane:
    # judging roles then would only add misleading errors.
    uncertain = partial or any(d.role is None for d in drafts)
    if not uncertain:
        check_roles(issues, drafts)
    check_lane_resources(issues, drafts)
    check_runs_on(issues, drafts)
    check_ray_members(issues, drafts)
    check_engines_per_group(issues, drafts)
    check_parallel(issues, drafts)
    check_kv_roles(issues, drafts)
    check_side_ports(issues, drafts)
    check_ports(issues, main_name, router, public, endpoint_keys, drafts, extra)
    check_exposure(issues, main_name, router, public, endpoint_keys)
    if drafts and not uncertain:
        check_endpoint_roles(issues, main_name, public, endpoint_keys, drafts)


def check_names(issues: list[ConfigIssue], drafts: Sequence[LaneDraft]) -> None:
    """Lane names are unique."""
    first: dict[str, str] = {}
    for d in drafts:
        if d.name is None:
            continue
        if d.name in first:
            msg = f'lane name "{d.name}" is already used by {first[d.name]}; rename one of them'
            issues.append(ConfigIssue(d.file, "lane.name", msg))
        else:
            first[d.name] = d.file


def check_roles(issues: list[ConfigIssue], drafts: Sequence[LaneDraft]) -> None:
    """Each role has exactly one active (``standby = false``) lane."""
    roles: dict[str, list[LaneDraft]] = {}
    for d in drafts:
        if d.role is not None:
            roles.setdefault(d.role, []).append(d)
    for role, lanes in roles.items():
        active = [d for d in lanes if not d.standby]
        if not active:
            for d in lanes:
                msg = (
                    f'role "{role}" has no active lane: every lane of it is standby; '
                    "set standby = false on the one to serve it"
                )
                issues.append(ConfigIssue(d.file, "lane.standby", msg))
        for d in active[1:]:
            msg = (
                f'role "{role}" already has an active lane ({active[0].file}); '
                "set standby = true on all but one"
            )
            issues.append(ConfigIssue(d.file, "lane.standby", msg))


def check_lane_resources(issues: list[ConfigIssue], drafts: Sequence[LaneDraft]) -> None:
    """Active lanes do not share ports or NPUs; standby lanes share only with their own role.

    A standby lane on its role's NPUs/port is an in-place candidate (promotion stops the
    incumbent first). Sharing with another role's lane could never start without
    breaking that role, so it is refused.
    """
    active = [d for d in drafts if not d.standby]
    for index, d in enumerate(active):
        for other in active[:index]:
            _clash(issues, d, other, "active lanes cannot share")
    for d in drafts:
        if not d.standby or d.role is None:
            continue
        for other in active:
            if other.role is not None and other.role != d.role:
                _clash(issues, d, other, f'standby lane of role "{d.role}" cannot share')


def check_runs_on(issues: list[ConfigIssue], drafts: Sequence[LaneDraft]) -> None:
    """``runs_on`` names a lane group this host leads (its engine is started there)."""
    by_name = {d.name: d for d in drafts if d.name is not None}
    for d in drafts:
        target = d.values.get("runs_on")
        if not isinstance(target, str):
            continue
        other = by_name.get(target)
        group = other.values.get("group") if other is not None else None
        if other is None:
            msg = f"no lane is called {target}; name the lane group this lane runs on"
        elif not isinstance(group, GroupConfig):
            msg = (
                f"lane {target} ({other.file}) is not a lane group; runs_on names the"
                " group (a lane with [lane.group]) whose members this lane's engine uses"
            )
        elif not group.is_leader:
            msg = (
                f"this host only follows lane group {target} (led by {group.leader}); a lane"
                f" runs on a group from the leader's host: move this lane to {group.leader}"
            )
        else:
            continue
        issues.append(ConfigIssue(d.file, "lane.runs_on", msg))
    served = {d.values.get("runs_on") for d in drafts}
    for d in drafts:
        group = d.values.get("group")
        headless_leader = isinstance(group, GroupConfig) and group.is_leader and d.port is None
        if headless_leader and d.name is not None and d.name not in served:
            msg = (
                f"lane {d.name} leads a lane group but has no port, and no lane runs on"
                " it: nothing would serve its API; set port (the leader serves the API)"
                f' or add a lane with runs_on = "{d.name}" (e.g. vLLM on a Ray cluster)'
            )
            issues.append(ConfigIssue(d.file, "lane.port", msg))


def _clash(issues: list[ConfigIssue], d: LaneDraft, other: LaneDraft, what: str) -> None:
    name = other.name or "?"
    if d.port is not None and d.port == other.port:
        msg = f"port {d.port} is also the port of lane {name} ({other.file}); {what} a port"
        issues.append(ConfigIssue(d.file, "lane.port", msg))
    shared = sorted(set(d.npus or ()) & set(other.npus or ()))
    if shared:
        npus = ", ".join(str(n) for n in shared)
        msg = f"NPU {npus} also used by lane {name} ({other.file}); {what} NPUs"
        issues.append(ConfigIssue(d.file, "lane.npus", msg))


def _argv(d: LaneDraft) -> tuple[str, ...] | None:
    command = d.values.get("command")
    return command if isinstance(command, tuple) else None


def _env(d: LaneDraft) -> dict[str, str]:
    env = d.values.get("env")
    return env if isinstance(env, dict) else {}


def check_parallel(issues: list[ConfigIssue], drafts: Sequence[LaneDraft]) -> None:
    """A vLLM lane's tensor x pipeline x local data parallel size is its number of NPUs."""
    for d in drafts:
        argv = _argv(d)
        if argv is None:
            continue
        layout, problems = vllm_layout(argv)
        for problem in problems:
            issues.append(ConfigIssue(d.file, "lane.command", problem))
        if layout is None or problems or d.npus is None or d.values.get("runs_on"):
            continue  # a runs_on lane's NPUs are its group's, on every member host
        if layout.npus != len(d.npus):
            listed = ", ".join(str(n) for n in d.npus)
            msg = (
                f"the command runs {layout.describe()}, but npus lists {len(d.npus)}"
                f" ({listed}); list {layout.npus} NPU{'s' if layout.npus != 1 else ''}"
                " or change the parallel sizes"
            )
            issues.append(ConfigIssue(d.file, "lane.npus", msg))


def check_kv_roles(issues: list[ConfigIssue], drafts: Sequence[LaneDraft]) -> None:
    """A vLLM lane's KV connector role (``--kv-transfer-config``) agrees with ``kv_role``."""
    for d in drafts:
        argv = _argv(d)
        if argv is None:
            continue
        kv_role = d.values.get("kv_role")
        found = kv_role_problem(argv, kv_role if isinstance(kv_role, KvRole) else None)
        if found is not None:
            issues.append(ConfigIssue(d.file, *found))


def _run_together(d: LaneDraft, other: LaneDraft) -> bool:
    """Whether two lanes can run at the same time: not an in-place pair of one role.

    Lanes sharing NPUs or their port never run together (the config refuses that across
    roles, and promotion stops one before starting the other within a role).
    """
    if d.port is not None and d.port == other.port:
        return False
    return not set(d.npus or ()) & set(other.npus or ())


def check_side_ports(issues: list[ConfigIssue], drafts: Sequence[LaneDraft]) -> None:
    """Side ports (DP RPC, master, HCCL) are the lane's own on this host.

    They must not overlap within a lane, with another lane that can run at the same time
    (its side ports or its HTTP port), nor with the lane's own HTTP port.
    """
    found: list[tuple[LaneDraft, list[SidePort]]] = []
    for d in drafts:
        argv = _argv(d)
        if argv is None:
            continue
        ports, problems = side_ports(argv, _env(d))
        key = "lane.command"
        for problem in problems:
            issues.append(ConfigIssue(d.file, "lane.env" if "env " in problem else key, problem))
        for index, side in enumerate(ports):
            if d.port is not None and side.contains(d.port):
                msg = f"side port {side} includes the lane's own port {d.port}; pick another"
                issues.append(ConfigIssue(d.file, key, msg))
            for earlier in ports[:index]:
                if side.overlaps(earlier):
                    msg = f"side ports {side} and {earlier} overlap; give each its own ports"
                    issues.append(ConfigIssue(d.file, key, msg))
        found.append((d, ports))
    for index, (d, ports) in enumerate(found):
        for other, other_ports in found[:index]:
            if not _run_together(d, other):
                continue
            name = other.name or "?"
            for side in ports:
                clash = [str(o) for o in other_ports if side.overlaps(o)]
                if other.port is not None and side.contains(other.port):
                    clash.append(f"{other.port} (its port)")
                if clash:
                    msg = (
                        f"side port {side} collides with lane {name} ({other.file}):"
                        f" {', '.join(clash)}; lanes running at the same time need their own"
                        " ports on this host"
                    )
                    issues.append(ConfigIssue(d.file, key, msg))
            for side in other_ports:
                if d.port is not None and side.contains(d.port):
                    msg = (
                        f"port {d.port} is a side port of lane {name} ({other.file}):"
                        f" {side}; lanes running at the same time need their own ports"
                    )
                    issues.append(ConfigIssue(d.file, "lane.port", msg))


def check_ports(
    issues: list[ConfigIssue],
    main_name: str,
    router: RouterConfig,
    public: PublicConfig,
    endpoint_keys: Sequence[str],
    drafts: Sequence[LaneDraft],
    extra: Sequence[tuple[str, int]] = (),
) -> None:
    """The router, console, public endpoints (and ``extra`` listeners) use distinct ports,
    none a lane's."""
    listeners: list[tuple[str, int]] = [("router.listen", router.listen.port), *extra]
    if public.console_listen is not None:
        listeners.append(("public.console_listen", public.console_listen.port))
    listeners += [
        (f"{key}.listen", e.listen.port)
        for key, e in zip(endpoint_keys, public.endpoints, strict=True)
    ]
    owner: dict[int, str] = {}
    for key, port in listeners:
        if port in owner:
            msg = f"port {port} is already used by {owner[port]}; give each listener its own port"
            issues.append(ConfigIssue(main_name, key, msg))
        else:
            owner[port] = key
    for d in drafts:
        if d.port is not None and d.port in owner:
            msg = (
                f"port {d.port} is already used by {owner[d.port]} in {main_name}; "
                "lanes need ports of their own"
            )
            issues.append(ConfigIssue(d.file, "lane.port", msg))


_TRUSTED = "if every client that can reach it is trusted"


def check_exposure(
    issues: list[ConfigIssue],
    main_name: str,
    router: RouterConfig,
    public: PublicConfig,
    endpoint_keys: Sequence[str],
) -> None:
    """No port that serves the lanes without a key is reachable from elsewhere by accident.

    The router's port never asks for a key; public endpoints do when ``api_keys_file``
    is set. Either on a non-loopback address without keys needs an explicit
    ``allow_unauthenticated = true`` in its section.
    """
    if not router.listen.loopback and not router.allow_unauthenticated:
        msg = (
            f"{router.listen} is not a loopback address, and the router's port never asks"
            " for an API key: anyone who reaches it can use the lanes. Listen on"
            ' 127.0.0.1 and serve clients through a [[public.endpoints]] with target = "router"'
            " and [public] api_keys_file, or set router.allow_unauthenticated = true"
            f" {_TRUSTED}"
        )
        issues.append(ConfigIssue(main_name, "router.listen", msg))
    if public.api_keys_file is not None or public.allow_unauthenticated:
        return
    for key, endpoint in zip(endpoint_keys, public.endpoints, strict=True):
        if endpoint.listen.loopback:
            continue
        msg = (
            f"{endpoint.listen} is not a loopback address and no API keys are configured:"
            " anyone who reaches it can use the lanes. Set public.api_keys_file, listen on"
            f" 127.0.0.1, or set public.allow_unauthenticated = true {_TRUSTED}"
        )
        issues.append(ConfigIssue(main_name, f"{key}.listen", msg))


def check_endpoint_roles(
    issues: list[ConfigIssue],
    main_name: str,
    public: PublicConfig,
    endpoint_keys: Sequence[str],
    drafts: Sequence[LaneDraft],
) -> None:
    """A ``role:NAME`` endpoint names a role some lane has."""
    roles = sorted({d.role for d in drafts if d.role is not None})
    for key, endpoint in zip(endpoint_keys, public.endpoints, strict=True):
        role = endpoint.role
        if role is not None and role not in roles:
            msg = f'role "{role}" has no lane (roles: {", ".join(roles)})'
            issues.append(ConfigIssue(main_name, f"{key}.target", msg))
