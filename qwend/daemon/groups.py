"""The daemon's lane groups: a coordinator per group this host leads, a watch per group it
follows, and the member link over the peers' control APIs.

The supervisor never starts a group member on its own (see ``Supervisor.start``): once
the lanes are up, ``LaneGroups.start`` starts each group this host leads, member after
member, and watches each group it follows. At shutdown the groups this host leads are
stopped as units (every member host stops its member) before the supervisor stops what
is left here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from qwend.api.messages import LaneAction, LaneActionResult, LaneInfo
from qwend.config.model import LaneConfig
from qwend.errors import LaneError, QwendError
from qwend.logs import get_logger
from qwend.supervisor.coordinator import FollowerWatch, GroupCoordinator, MemberLink
from qwend.supervisor.group import GroupView
from qwend.supervisor.states import LaneState
from qwend.supervisor.supervisor import Supervisor

log = get_logger("groups")

GROUP_STOP_S = 60.0
"""How long a shutdown waits for every member host to confirm its member stopped."""


class PeerLanes(Protocol):
    """What the member link needs of a peer's control client."""

    async def lane(self, name: str) -> LaneInfo:
        """The lane as the peer reports it."""
        ...

    async def lane_action(
        self, name: str, action: LaneAction, *, force: bool = False, now: bool = False
    ) -> LaneActionResult:
        """Run ``action`` on the peer's lane."""
        ...


class PeerMemberLink:
    """``MemberLink`` over the peers' control APIs, by ``[cluster] name``."""

    def __init__(self, peer: Callable[[str], Awaitable[PeerLanes]]) -> None:
        self._client = peer
        """The open control client of a peer (``Peers.client``); QwendError if unknown."""

    async def _peer(self, host: str) -> PeerLanes:
        return await self._client(host)

    async def lane_state(self, host: str, lane: str) -> LaneState | None:
        """The member's lane state on ``host``; None when the host does not answer."""
        try:
            info = await (await self._peer(host)).lane(lane)
        except (QwendError, OSError, TimeoutError) as exc:
            log.debug("group member host not answering", member=host, lane=lane, error=str(exc))
            return None
        try:
            return LaneState(info.state)
        except ValueError:
            return None

    async def start_lane(self, host: str, lane: str) -> None:
        """Start the member on ``host`` (force: it may be its role's active lane)."""
        await (await self._peer(host)).lane_action(lane, LaneAction.START, force=True)

    async def stop_lane(self, host: str, lane: str) -> None:
        """Stop the member on ``host`` at once (a group member takes no traffic to drain)."""
        await (await self._peer(host)).lane_action(lane, LaneAction.STOP, force=True, now=True)


class LaneGroups:
    """Every lane group of this host (see module docstring)."""

    def __init__(self, supervisor: Supervisor, link: MemberLink | None) -> None:
        self._sup = supervisor
        supervisor.attach_groups(self)
        self._link = link
        self.coordinators: dict[str, GroupCoordinator] = {}
        self._watches: dict[str, FollowerWatch] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start_group(self, lane: str) -> None:
        """Start the group ``lane`` leads (an operator's start of the leader lane)."""
        coord = self.coordinators.get(lane)
        if coord is None:
            raise LaneError(
                f"lane {lane} leads a lane group that cannot run here: list every member"
                " host in [[peers]]"
            )
        await coord.start()

    async def stop_group(self, lane: str, reason: str) -> None:
        """Stop every member of the group ``lane`` leads."""
        coord = self.coordinators.get(lane)
        if coord is None:
            await self._sup.stop_member(lane)
            return
        await coord.stop(reason, GROUP_STOP_S)

    def group_view(self, lane: str) -> GroupView | None:
        """The group a member lane belongs to, when this host leads it."""
        coord = self.coordinators.get(lane)
        return coord.view() if coord is not None else None

    def views(self) -> dict[str, GroupView]:
        """Lane -> its group, for the groups this host leads."""
        return {name: c.view() for name, c in self.coordinators.items()}

    async def start(self) -> None:
        """Start every group this host leads; watch every group it follows."""
        await self._take_up(self._sup.group_lanes())

    async def _take_up(self, lanes: Sequence[LaneConfig]) -> None:
        link = self._link
        if lanes and link is None:
            log.error(
                "lane groups need the peer link; their members stay stopped",
                lanes=", ".join(lane.name for lane in lanes),
                fix="list every member host in [[peers]] with a credential",
            )
            return
        for lane in lanes:
            assert lane.group is not None and link is not None
            if lane.group.is_leader:
                coord = GroupCoordinator(self._sup, lane, link)
                self.coordinators[lane.name] = coord
                try:
                    await coord.start()
                except QwendError as exc:
                    log.error("lane group did not start", lane=lane.name, error=str(exc))
                self._tasks.append(asyncio.create_task(coord.run(), name=f"group:{lane.name}"))
            else:
                watch = FollowerWatch(self._sup, lane, link)
                self._watches[lane.name] = watch
                self._tasks.append(asyncio.create_task(watch.run(), name=f"follow:{lane.name}"))

    async def reload(self) -> None:
        """After a reload: groups whose lane changed or went away are let go (the reload
        stopped their local member), and every group lane now configured is taken up again,
        each group this host leads started anew as a unit."""
        current = {lane.name: lane for lane in self._sup.group_lanes()}
        kept = {
            name for name, coord in self.coordinators.items() if current.get(name) == coord.config
        } | {name for name, watch in self._watches.items() if current.get(name) == watch.config}
        for task in list(self._tasks):
            name = task.get_name().split(":", 1)[1]
            if name not in kept:
                self._close(name)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                self._tasks.remove(task)
                if name in self.coordinators:
                    # The group starts anew: what runs on it waits for it, as at a restart.
                    self._sup.set_group_ready(name, False)
                    await self._sup.stop_dependents(name, drain=True)
        self.coordinators = {n: c for n, c in self.coordinators.items() if n in kept}
        self._watches = {n: w for n, w in self._watches.items() if n in kept}
        await self._take_up([lane for name, lane in current.items() if name not in kept])

    def _close(self, lane: str) -> None:
        for runner in (self.coordinators.get(lane), self._watches.get(lane)):
            if runner is not None:
                runner.close()

    async def stop(self, reason: str) -> None:
        """Stop watching, then stop every group this host leads as a unit."""
        for task in self._tasks:
            self._close(task.get_name().split(":", 1)[1])
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await asyncio.gather(
            *(c.stop(reason, GROUP_STOP_S) for c in self.coordinators.values()),
            return_exceptions=True,
        )
