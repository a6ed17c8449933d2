"""Reload: apply a new, already validated Config to a running Supervisor.

Only what changed is touched: lanes whose ``spawn_key()`` changed are
restarted (when running), new active lanes are started, removed lanes are
drained and stopped, and every other lane keeps its process (its health,
stop and restart settings are updated in place).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from qwend.config.model import Config
from qwend.supervisor.runner import LaneRunner
from qwend.supervisor.states import LaneState

if TYPE_CHECKING:
    from qwend.supervisor.supervisor import ReloadReport, Supervisor


async def apply_reload(sup: Supervisor, new: Config) -> ReloadReport:
    """See the module docstring; returns what was done."""
    from qwend.supervisor.supervisor import ReloadReport

    runners = sup._runners
    wanted = {lane.name: lane for lane in new.lanes}
    removed = [name for name in runners if name not in wanted]
    added = [lane for lane in new.lanes if lane.name not in runners]
    changed = [
        lane
        for lane in new.lanes
        if lane.name in runners and runners[lane.name].cfg.spawn_key() != lane.spawn_key()
    ]
    log = sup._log.bind(reload=True)

    sup._config = new
    new_active = sup._initial_active(new, sup._active)

    # 1. Removed lanes: no new requests, let in-flight ones finish, stop.
    for name in removed:
        await runners[name].drain()
    running_removed = [n for n in removed if runners[n].pid is not None]
    await sup._drain_wait(running_removed, new.daemon.drain_timeout_s)
    await asyncio.gather(*(runners[n].stop("removed from configuration") for n in removed))
    for name in removed:
        del runners[name]

    # 2. Changed lanes: stop the running ones (all first: NPUs may move between them).
    to_restart = [
        lane.name
        for lane in changed
        if runners[lane.name].state not in (LaneState.STOPPED, LaneState.FAILED)
    ]
    await asyncio.gather(*(runners[n].stop("configuration changed") for n in to_restart))

    # 3. Every kept lane gets its new settings; order follows the new config.
    ordered: dict[str, LaneRunner] = {}
    for lane in new.lanes:
        runner = runners.get(lane.name)
        if runner is None:
            runner = LaneRunner(lane, sup._context())
        runner.reconfigure(lane)
        ordered[lane.name] = runner
    sup._runners = ordered
    sup._active = new_active
    sup._publish()

    # 4. Start again what was running, and the new active lanes.
    for name in to_restart:
        await ordered[name].start()
    started = []
    for lane in added:
        if new_active.get(lane.role) == lane.name:
            await ordered[lane.name].start()
            started.append(lane.name)
    touched = set(to_restart) | {lane.name for lane in added}
    unchanged = tuple(lane.name for lane in new.lanes if lane.name not in touched)
    report = ReloadReport(
        restarted=tuple(to_restart),
        started=tuple(started),
        stopped=tuple(removed),
        unchanged=unchanged,
    )
    log.info(
        "configuration reloaded",
        restarted=report.restarted,
        started=report.started,
        stopped=report.stopped,
    )
    return report
