"""The lane group state machine (pure): members' states -> group state -> actions.

A multi-node lane (``[lane.group]``) has one member lane per host, each supervised by
its host's qwend; the leader host's qwend runs the group. The group is ready only when
every member is; when one member fails, every member is stopped and the group is
started again as a unit, member after member in the engine's order (vLLM's data
parallel leader first, its headless ranks joining it), each next member once the
previous one runs. HBM release is waited for by each member host's own start (its
pre-start check), so a restarted member never lands on NPUs still held by its
predecessor. Restarts of the group back off and stop in a crash loop, as a lane's do.

``GroupMachine.observe`` turns a poll of the members into events for the transition
table, and returns the actions the coordinator carries out (start or stop a member,
route the leader or not).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from qwend.config.model import GroupConfig, RestartConfig
from qwend.supervisor.restart import RestartPolicy
from qwend.supervisor.states import LaneState


class GroupState(StrEnum):
    """Where a lane group is in its life."""

    STOPPED = "stopped"
    """No member wanted."""
    STARTING = "starting"
    """Members are being started in order; not every member is up yet."""
    READY = "ready"
    """Every member is up and the leader passes readiness: the leader's lane is routed."""
    RESTARTING = "restarting"
    """A member failed: every member is being stopped before the group starts again."""
    BACKOFF = "backoff"
    """Every member stopped after a failure; waiting the restart delay."""
    STOPPING = "stopping"
    """An operator, reload or shutdown asked the group to stop; members are stopping."""
    FAILED = "failed"
    """Crash loop: too many group restarts in the window. Stays down until started."""


class MemberStatus(StrEnum):
    """One member as the group sees it (from its lane state on its host)."""

    STOPPED = "stopped"
    """No process: stopped, or never started."""
    STARTING = "starting"
    """Its process runs; readiness not passed yet."""
    READY = "ready"
    """Its process runs and passes its host's readiness."""
    DOWN = "down"
    """It ended or went unhealthy unasked: the group must restart."""
    STOPPING = "stopping"
    """Its process is being stopped."""
    UNREACHABLE = "unreachable"
    """Its host's qwend does not answer: the member's state is unknown."""


_MEMBER: dict[LaneState, MemberStatus] = {
    LaneState.STOPPED: MemberStatus.STOPPED,
    LaneState.STARTING: MemberStatus.STARTING,
    LaneState.READY: MemberStatus.READY,
    LaneState.DRAINING: MemberStatus.READY,
    LaneState.UNHEALTHY: MemberStatus.DOWN,
    LaneState.BACKOFF: MemberStatus.DOWN,
    LaneState.FAILED: MemberStatus.DOWN,
    LaneState.STOPPING: MemberStatus.STOPPING,
}


def member_status(state: LaneState | None) -> MemberStatus:
    """A member's status from its lane state on its host (None: the host did not answer)."""
    return MemberStatus.UNREACHABLE if state is None else _MEMBER[state]


UP: frozenset[MemberStatus] = frozenset({MemberStatus.STARTING, MemberStatus.READY})
"""A member whose process runs (the next member in the start order may start)."""

STOP_AGAIN: frozenset[MemberStatus] = UP | {MemberStatus.DOWN}
"""Members a stopping group asks to stop (again): running, or down but not yet stopped."""


class GroupEvent(StrEnum):
    """What can happen to a group."""

    START = "start"
    """An operator or the daemon asks the group to run."""
    MEMBER_UP = "member_up"
    """The member started last runs: start the next one."""
    ALL_READY = "all_ready"
    """Every member runs and the leader is ready."""
    MEMBER_LOST = "member_lost"
    """A member is down, or stopped without being asked to."""
    ALL_STOPPED = "all_stopped"
    """Every member is stopped (confirmed by its host)."""
    CRASH_LOOP = "crash_loop"
    """Every member is stopped and the group restarted too often: give up."""
    RETRY = "retry"
    """The backoff delay is over."""
    STOP = "stop"
    """An operator, reload or shutdown asks the group to stop."""


class GroupEffect(StrEnum):
    """What the coordinator must do after a transition."""

    START_NEXT = "start_next"
    """Start the first member (in start order) that is not up."""
    STOP_ALL = "stop_all"
    """Stop every member that is not stopped."""
    ROUTE = "route"
    """Route the leader's lane."""
    UNROUTE = "unroute"
    """Take the leader's lane out of routing."""
    SCHEDULE_RESTART = "schedule_restart"
    """Wait the backoff delay, then ``RETRY``."""
    RESET_CRASHES = "reset_crashes"
    """Forget the group's restart history."""


@dataclass(frozen=True)
class GroupTransition:
    """The result of one event."""

    new_state: GroupState
    effects: tuple[GroupEffect, ...] = ()


G = GroupState
V = GroupEvent
F = GroupEffect

TRANSITIONS: dict[tuple[GroupState, GroupEvent], GroupTransition] = {
    (G.STOPPED, V.START): GroupTransition(G.STARTING, (F.START_NEXT,)),
    (G.STOPPED, V.STOP): GroupTransition(G.STOPPED),
    (G.STARTING, V.START): GroupTransition(G.STARTING),
    (G.STARTING, V.MEMBER_UP): GroupTransition(G.STARTING, (F.START_NEXT,)),
    (G.STARTING, V.ALL_READY): GroupTransition(G.READY, (F.ROUTE,)),
    (G.STARTING, V.MEMBER_LOST): GroupTransition(G.RESTARTING, (F.STOP_ALL,)),
    (G.STARTING, V.STOP): GroupTransition(G.STOPPING, (F.STOP_ALL,)),
    (G.READY, V.START): GroupTransition(G.READY),
    (G.READY, V.MEMBER_LOST): GroupTransition(G.RESTARTING, (F.UNROUTE, F.STOP_ALL)),
    (G.READY, V.STOP): GroupTransition(G.STOPPING, (F.UNROUTE, F.STOP_ALL)),
    (G.RESTARTING, V.START): GroupTransition(G.RESTARTING),
    (G.RESTARTING, V.MEMBER_LOST): GroupTransition(G.RESTARTING, (F.STOP_ALL,)),
    (G.RESTARTING, V.ALL_STOPPED): GroupTransition(G.BACKOFF, (F.SCHEDULE_RESTART,)),
    (G.RESTARTING, V.CRASH_LOOP): GroupTransition(G.FAILED),
    (G.RESTARTING, V.STOP): GroupTransition(G.STOPPING, (F.STOP_ALL,)),
    (G.BACKOFF, V.RETRY): GroupTransition(G.STARTING, (F.START_NEXT,)),
    (G.BACKOFF, V.START): GroupTransition(G.STARTING, (F.START_NEXT,)),
    (G.BACKOFF, V.STOP): GroupTransition(G.STOPPED),
    (G.STOPPING, V.ALL_STOPPED): GroupTransition(G.STOPPED),
    (G.STOPPING, V.STOP): GroupTransition(G.STOPPING, (F.STOP_ALL,)),
    (G.FAILED, V.START): GroupTransition(G.STARTING, (F.RESET_CRASHES, F.START_NEXT)),
    (G.FAILED, V.STOP): GroupTransition(G.STOPPED),
}
"""Every legal move; a pair not listed is illegal."""

del G, V, F


class IllegalGroupTransition(ValueError):
    """An event the group's state does not allow (a coordinator bug)."""

    def __init__(self, state: GroupState, event: GroupEvent) -> None:
        super().__init__(f"event {event.value!r} is not allowed in group state {state.value!r}")
        self.state = state
        self.event = event


def group_transition(state: GroupState, event: GroupEvent) -> GroupTransition:
    """Apply ``event`` to a group in ``state``; IllegalGroupTransition for illegal moves."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalGroupTransition(state, event) from None


@dataclass(frozen=True)
class GroupView:
    """A lane group as operators see it."""

    lane: str
    leader: str
    """The member host that runs the group."""
    state: GroupState | None
    """None on a follower's host: the group is run by its leader's host."""
    reason: str | None
    restarts: int
    """Restarts of the whole group since the leader's qwend started."""
    members: tuple[tuple[str, MemberStatus | None], ...]
    """Every member host and its member's status at the last poll (None: not polled
    here), in configuration order."""


class ActionKind(StrEnum):
    """An action on the group's members or its routing."""

    START = "start"
    STOP = "stop"
    ROUTE = "route"
    UNROUTE = "unroute"


@dataclass(frozen=True)
class Action:
    """One thing for the coordinator to do."""

    kind: ActionKind
    member: str = ""
    """The member host (``[cluster] name``) for START and STOP."""


class GroupMachine:
    """One lane group's state, restart history and next actions (see module docstring)."""

    def __init__(
        self, group: GroupConfig, restart: RestartConfig, rng: random.Random | None = None
    ) -> None:
        self.group = group
        self.state = GroupState.STOPPED
        self.reason: str | None = None
        self.restarts = 0
        """Group restarts (after a member failure) so far."""
        self.retry_at: float | None = None
        """Monotonic time the backoff ends (in BACKOFF)."""
        self.policy = RestartPolicy(restart, rng)
        self._asked: set[str] = set()
        """Members started since the group last started (not yet seen up, maybe)."""

    # -- events from the outside -----------------------------------------------------

    def start(self, members: Mapping[str, MemberStatus]) -> tuple[Action, ...]:
        """An operator or the daemon wants the group up."""
        return self._apply(GroupEvent.START, members, "start requested")

    def stop(self, members: Mapping[str, MemberStatus], reason: str) -> tuple[Action, ...]:
        """An operator, reload or shutdown wants the group down."""
        return self._apply(GroupEvent.STOP, members, reason)

    def observe(self, now: float, members: Mapping[str, MemberStatus]) -> tuple[Action, ...]:
        """A poll of every member (by host name): the events it implies, and their actions."""
        # One event per poll: the actions change the members, so the next step needs a
        # fresh poll (a member just asked to start still shows as stopped in this one).
        event, reason = self._event(now, members)
        if event is None:
            return ()
        if event is GroupEvent.ALL_STOPPED and self.state is GroupState.RESTARTING:
            event, reason = self._after_failure(now, reason)
        return self._apply(event, members, reason)

    def start_failed(self, member: str) -> None:
        """Asking ``member``'s host to start it failed (its host did not answer): it was
        never started, so its stopped state is no loss; the next poll asks again."""
        self._asked.discard(member)

    # -- deciding ----------------------------------------------------------------------

    def _event(
        self, now: float, members: Mapping[str, MemberStatus]
    ) -> tuple[GroupEvent | None, str]:
        state = self.state
        statuses = [members.get(m, MemberStatus.UNREACHABLE) for m in self.group.members]
        if state is GroupState.BACKOFF:
            if self.retry_at is not None and now >= self.retry_at:
                return GroupEvent.RETRY, "restarting the group"
            return None, ""
        if state in (GroupState.RESTARTING, GroupState.STOPPING):
            if all(s is MemberStatus.STOPPED for s in statuses):
                return GroupEvent.ALL_STOPPED, self.reason or ""
            if any(s in STOP_AGAIN for s in statuses):
                # A member still runs or is down (its stop failed or raced a start): ask again.
                again = (
                    GroupEvent.MEMBER_LOST if state is GroupState.RESTARTING else GroupEvent.STOP
                )
                return again, self.reason or ""
            return None, ""
        if state not in (GroupState.STARTING, GroupState.READY):
            return None, ""
        lost = self._lost(members)
        if lost is not None:
            return GroupEvent.MEMBER_LOST, lost
        if state is GroupState.STARTING:
            leader = members.get(self.group.leader)
            if all(s in UP for s in statuses) and leader is MemberStatus.READY:
                return GroupEvent.ALL_READY, "every member is up"
            nxt = self.next_to_start(members)
            if nxt is not None and nxt not in self._asked and self._previous_up(nxt, members):
                return GroupEvent.MEMBER_UP, f"starting member {nxt}"
        return None, ""

    def _lost(self, members: Mapping[str, MemberStatus]) -> str | None:
        """Why the group must restart, or None. A member is lost when it is down, or when
        it stopped after it was started (nobody here asked it to stop)."""
        for name in self.group.members:
            status = members.get(name, MemberStatus.UNREACHABLE)
            if status is MemberStatus.DOWN:
                return f"member {name} failed"
            started = name in self._asked or self.state is GroupState.READY
            if started and status in (MemberStatus.STOPPED, MemberStatus.STOPPING):
                return f"member {name} stopped"
        return None

    def next_to_start(self, members: Mapping[str, MemberStatus]) -> str | None:
        """The first member in start order that is not up."""
        for name in self.group.start_sequence:
            if members.get(name, MemberStatus.UNREACHABLE) not in UP:
                return name
        return None

    def _previous_up(self, name: str, members: Mapping[str, MemberStatus]) -> bool:
        order = self.group.start_sequence
        index = order.index(name)
        return all(members.get(m) in UP for m in order[:index])

    def _after_failure(self, now: float, reason: str) -> tuple[GroupEvent, str]:
        decision = self.policy.record_crash(now)
        if decision.give_up:
            return GroupEvent.CRASH_LOOP, f"{reason}; {decision.reason}"
        self.retry_at = now + decision.delay_s
        return GroupEvent.ALL_STOPPED, f"{reason}; group {decision.reason}"

    # -- applying ------------------------------------------------------------------------

    def _apply(
        self, event: GroupEvent, members: Mapping[str, MemberStatus], reason: str
    ) -> tuple[Action, ...]:
        result = group_transition(self.state, event)
        old = self.state
        self.state = result.new_state
        self.reason = reason
        if event is GroupEvent.RETRY:
            self.restarts += 1
        if self.state is not GroupState.BACKOFF:
            self.retry_at = None
        if old is not GroupState.STARTING and self.state is GroupState.STARTING:
            self._asked.clear()
        actions: list[Action] = []
        for effect in result.effects:
            actions.extend(self._carry(effect, members))
        return tuple(actions)

    def _carry(self, effect: GroupEffect, members: Mapping[str, MemberStatus]) -> list[Action]:
        if effect is GroupEffect.RESET_CRASHES:
            self.policy.reset()
            return []
        if effect is GroupEffect.ROUTE:
            return [Action(ActionKind.ROUTE)]
        if effect is GroupEffect.UNROUTE:
            return [Action(ActionKind.UNROUTE)]
        if effect is GroupEffect.SCHEDULE_RESTART:
            return []  # retry_at is set; observe() feeds RETRY once it has passed
        if effect is GroupEffect.STOP_ALL:
            self._asked.clear()
            order = reversed(self.group.start_sequence)
            return [
                Action(ActionKind.STOP, m)
                for m in order
                if members.get(m, MemberStatus.UNREACHABLE) is not MemberStatus.STOPPED
            ]
        # START_NEXT: the first member not up, once the ones before it run
        nxt = self.next_to_start(members)
        if nxt is None or nxt in self._asked or not self._previous_up(nxt, members):
            return []
        self._asked.add(nxt)
        return [Action(ActionKind.START, nxt)]


LEADER_DOWN: frozenset[LaneState] = frozenset({LaneState.STOPPED, LaneState.FAILED})
"""Leader lane states in which a follower's member has no group to serve."""


class LeaderWatch:
    """A follower host's check on its group's leader (pure).

    A follower's qwend never restarts its member on its own (the leader decides), but it
    must not keep half a group running for ever: when the leader host stays unreachable,
    or its member stays stopped, for ``grace_s`` while this member runs, the member is
    stopped here.
    """

    def __init__(self, leader: str, grace_s: float) -> None:
        self.leader = leader
        self.grace_s = grace_s
        self._since: float | None = None
        """Since when the leader has been unreachable or down (None: it is fine)."""

    def observe(self, now: float, leader: LaneState | None, member_runs: bool) -> str | None:
        """Why to stop this host's member now, or None."""
        if leader is not None and leader not in LEADER_DOWN:
            self._since = None
            return None
        if not member_runs:
            self._since = None
            return None
        if self._since is None:
            self._since = now
        if now - self._since < self.grace_s:
            return None
        self._since = None
        what = "unreachable" if leader is None else f"{leader.value} there"
        return (
            f"the group's leader on {self.leader} has been {what} for {self.grace_s:g}s;"
            " stopping this member (no half group left running)"
        )
