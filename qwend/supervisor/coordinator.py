"""Lane groups across hosts: the leader host's coordinator and a follower host's watch.

Each member lane is supervised by its own host's qwend (spawn, HBM-release wait,
readiness, exit); none restarts its member on its own. On the leader's host a
``GroupCoordinator`` polls every member (its own through the supervisor, the others
through a ``MemberLink``: the peers' control API), feeds the polls to the pure
``GroupMachine`` and carries out what it decides: start or stop a member, route the
leader's lane or not. On a follower's host a ``FollowerWatch`` stops the local member
when the leader host stays unreachable (or its member stays down) past a grace period,
so no half group keeps NPUs busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol

from qwend.broadcast import Subscription
from qwend.config.model import LaneConfig
from qwend.errors import QwendError
from qwend.logs import lane_logger
from qwend.supervisor.group import (
    Action,
    ActionKind,
    GroupMachine,
    GroupState,
    GroupView,
    LeaderWatch,
    MemberStatus,
    member_status,
)
from qwend.supervisor.states import RUNNING, LaneState
from qwend.supervisor.supervisor import LaneEvent, Supervisor

POLL_S = 1.0
"""Seconds between polls of a group's members (a local lane change wakes it sooner)."""
SILENT_MEMBER_S = 3.0
"""How long a stop waits for a member host that does not answer before it counts the
member stopped (that host stops it itself without its leader)."""
STOP_WAIT_S = 120.0
"""Longest wait for every member to confirm it stopped when the group is stopped."""


class MemberLink(Protocol):
    """How one host's qwend reaches the lanes of another (its peer's control API)."""

    async def lane_state(self, host: str, lane: str) -> LaneState | None:
        """The lane's state on ``host``; None when the host does not answer."""
        ...

    async def start_lane(self, host: str, lane: str) -> None:
        """Ask ``host`` to start the lane (returns once it is starting); raises on failure."""
        ...

    async def stop_lane(self, host: str, lane: str) -> None:
        """Ask ``host`` to stop the lane (returns once it is stopped); raises on failure."""
        ...


class GroupCoordinator:
    """Runs one lane group from its leader's host (see module docstring)."""

    def __init__(
        self, supervisor: Supervisor, lane: LaneConfig, link: MemberLink, *, poll_s: float = POLL_S
    ) -> None:
        assert lane.group is not None and lane.group.is_leader
        self.config = lane
        """The member lane as configured when the coordinator was made."""
        self._sup = supervisor
        self.lane = lane.name
        self.group = lane.group
        self._link = link
        self.poll_s = poll_s
        self.machine = GroupMachine(lane.group, lane.restart)
        self._members: dict[str, MemberStatus] = dict.fromkeys(
            lane.group.members, MemberStatus.STOPPED
        )
        self._lock = asyncio.Lock()
        self._last_state: GroupState | None = None
        self._closed = False
        self._log = lane_logger(lane.name, component="group")

    def view(self) -> GroupView:
        """The group now."""
        m = self.machine
        members = tuple((h, self._members.get(h)) for h in self.group.members)
        return GroupView(self.lane, self.group.leader, m.state, m.reason, m.restarts, members)

    async def poll(self) -> dict[str, MemberStatus]:
        """Every member's status (the other hosts asked in parallel)."""

        async def one(host: str) -> MemberStatus:
            if host == self.group.this:
                return member_status(self._sup.lane_state(self.lane))
            try:
                return member_status(await self._link.lane_state(host, self.lane))
            except (QwendError, OSError, TimeoutError) as exc:
                self._log.warning("group member not polled", member=host, error=str(exc))
                return MemberStatus.UNREACHABLE

        hosts = self.group.members
        found = await asyncio.gather(*(one(h) for h in hosts))
        self._members = dict(zip(hosts, found, strict=True))
        return dict(self._members)

    async def start(self) -> None:
        """Start the group (returns once its first member is starting)."""
        async with self._lock:
            await self._carry(self.machine.start(await self.poll()))

    async def stop(self, reason: str, timeout_s: float = STOP_WAIT_S) -> None:
        """Stop every member, in reverse start order; returns once each host confirms (or
        after ``timeout_s``: an unreachable host stops its member itself, see
        ``FollowerWatch``)."""
        deadline = time.monotonic() + timeout_s
        silent_since: float | None = None
        async with self._lock:
            # The lanes running on the group go first, their requests drained: asked-for.
            await self._sup.stop_dependents(self.lane, drain=True)
            await self._carry(self.machine.stop(await self.poll(), reason))
            while self.machine.state is not GroupState.STOPPED:
                if time.monotonic() > deadline:
                    self._log.warning(
                        "group members not all confirmed stopped", members=self._statuses()
                    )
                    return
                await asyncio.sleep(min(self.poll_s, 0.2))
                members = await self.poll()
                now = time.monotonic()
                if _only_silent_left(members):
                    # A host that does not answer cannot confirm, and need not: its own qwend
                    # stops its member once the leader is gone (FollowerWatch), and a qwend
                    # that is down has stopped it already. Waiting the whole deadline would
                    # only hold up this host's stop.
                    silent_since = now if silent_since is None else silent_since
                    if now - silent_since >= SILENT_MEMBER_S:
                        self._log.warning(
                            "group stopped without confirmation from unreachable member hosts",
                            members=self._statuses(),
                        )
                        members = dict.fromkeys(members, MemberStatus.STOPPED)
                else:
                    silent_since = None
                await self._carry(self.machine.observe(now, members))

    async def tick(self) -> None:
        """One poll and what it implies."""
        async with self._lock:
            members = await self.poll()
            await self._carry(self.machine.observe(time.monotonic(), members))

    def close(self) -> None:
        """End ``run`` at its next step (with a cancellation: either one is enough)."""
        self._closed = True

    async def run(self) -> None:
        """Poll until closed or cancelled; a change of the local member wakes it at once."""
        with self._sup.subscribe() as changes:
            while not self._closed:
                try:
                    await self.tick()
                except asyncio.CancelledError:
                    raise
                except Exception:  # a bug or a bad answer must not end the group's care
                    self._log.exception("group coordination failed; polling again")
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
                # cancellation that lands as the inner wait ends, and the loop would go on.
                with contextlib.suppress(TimeoutError, StopAsyncIteration):
                    async with asyncio.timeout(self.poll_s):
                        await _next_local(changes, self.lane)

    def _statuses(self) -> dict[str, str]:
        return {h: s.value for h, s in self._members.items()}

    async def _carry(self, actions: tuple[Action, ...]) -> None:
        state = self.machine.state
        if state is not self._last_state:
            self._last_state = state
            self._log.info(
                "group state",
                state=state.value,
                reason=self.machine.reason,
                members=self._statuses(),
            )
        for action in actions:
            await self._do(action)

    async def _do(self, action: Action) -> None:
        if action.kind is ActionKind.ROUTE:
            self._sup.set_group_ready(self.lane, True)
            await self._sup.start_dependents(self.lane)
            return
        if action.kind is ActionKind.UNROUTE:
            self._sup.set_group_ready(self.lane, False)
            # Before any member stops: an engine whose workers vanish may hang, not exit.
            await self._sup.stop_dependents(self.lane, drain=False)
            return
        host = action.member
        self._log.info("group member action", action=action.kind.value, member=host)
        try:
            if host == self.group.this:
                if action.kind is ActionKind.START:
                    await self._sup.start_member(self.lane)
                else:
                    await self._sup.stop_member(self.lane)
            elif action.kind is ActionKind.START:
                await self._link.start_lane(host, self.lane)
            else:
                await self._link.stop_lane(host, self.lane)
        except (QwendError, OSError, TimeoutError) as exc:
            # The next poll sees the member as it is and the machine decides again.
            if action.kind is ActionKind.START:
                self.machine.start_failed(host)
            self._log.warning(
                "group member action failed", action=action.kind.value, member=host, error=str(exc)
            )


def _only_silent_left(members: dict[str, MemberStatus]) -> bool:
    """Every member is stopped but some whose host does not answer."""
    statuses = set(members.values())
    return MemberStatus.UNREACHABLE in statuses and statuses <= {
        MemberStatus.STOPPED,
        MemberStatus.UNREACHABLE,
    }


async def _next_local(changes: Subscription[LaneEvent], lane: str) -> None:
    """Wait for the next state change of ``lane`` on this host."""
    async for event in changes:
        if event.lane == lane:
            return


class FollowerWatch:
    """Stops a follower's member when its leader host is gone (see ``LeaderWatch``)."""

    def __init__(
        self,
        supervisor: Supervisor,
        lane: LaneConfig,
        link: MemberLink,
        *,
        grace_s: float | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        assert lane.group is not None and not lane.group.is_leader
        self.config = lane
        self._sup = supervisor
        self.lane = lane.name
        self.leader = lane.group.leader
        self._link = link
        self.poll_s = poll_s
        # Default grace: as long as the lane's own liveness takes to give up on a process.
        grace = (
            grace_s
            if grace_s is not None
            else lane.health.interval_s * lane.health.failure_threshold
        )
        self.watch = LeaderWatch(lane.group.leader, grace)
        self._closed = False
        self._log = lane_logger(lane.name, component="group")

    async def tick(self) -> None:
        """One look at the leader."""
        try:
            leader = await self._link.lane_state(self.leader, self.lane)
        except (QwendError, OSError, TimeoutError):
            leader = None
        runs = self._sup.lane_state(self.lane) in RUNNING
        reason = self.watch.observe(time.monotonic(), leader, runs)
        if reason is not None:
            self._log.warning("stopping group member", reason=reason)
            await self._sup.stop_member(self.lane)

    def close(self) -> None:
        """End ``run`` at its next step."""
        self._closed = True

    async def run(self) -> None:
        """Watch until closed or cancelled."""
        while not self._closed:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                self._log.exception("watching the group leader failed; trying again")
            await asyncio.sleep(self.poll_s)
