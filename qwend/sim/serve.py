"""``qwend-sim serve``: a lane process's life, like ``vllm serve``.

Load the model (the startup delay, HBM filling up in the NPU state record),
then bind the port and serve; SIGTERM/SIGINT only set a flag, and the main
coroutine then closes the listener, ends requests and exits 0. Injected faults
(``--exit-after-*``) end the process abruptly with ``--exit-code``, as a crash
would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from qwend.logs import lane_logger
from qwend.sim.app import make_sim_app
from qwend.sim.dp import DpFollower, DpJoinError, DpLeader
from qwend.sim.lane import SimLane, SimSettings
from qwend.sim.raydriver import RayDriver, RayPlacementError

LOAD_STEPS = 10
"""How many times the state record is refreshed while the model loads."""
PUBLISH_INTERVAL_S = 0.2
"""Most frequent state-record refresh while serving."""
SHUTDOWN_TIMEOUT_S = 2.0
"""How long in-flight requests get after SIGTERM before they are cancelled."""


async def serve(settings: SimSettings) -> int:
    """Run one sim lane until SIGTERM/SIGINT; returns the exit status."""
    log = lane_logger(settings.lane_name, component="sim", pid=os.getpid())
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    lane = SimLane(settings, log, on_exit_request=lambda: _schedule_crash(lane, "requests", 0.05))
    lane.tidy_state_dir()
    if settings.ray is not None:
        return await _serve_ray(lane, stop)
    if settings.dp.headless:
        return await _serve_headless(lane, stop)
    leader = DpLeader(settings.dp, log) if settings.dp.coordinates else None
    if leader is not None:
        try:
            await leader.start()
        except OSError as exc:
            log.error(
                "cannot listen for DP engines; is another process using the port?",
                address=settings.dp.address,
                rpc_port=settings.dp.rpc_port,
                error=str(exc),
            )
            return 1
    try:
        return await _serve_api(lane, stop, leader)
    finally:
        if leader is not None:
            await leader.close()


def _log_load(lane: SimLane) -> None:
    s = lane.settings
    lane.log.info(
        "loading model",
        model=s.served_model_name,
        variant=s.variant,
        npus=(s.visible_devices or "unset") if s.ray is None else "the Ray workers'",
        startup_delay_s=s.startup_delay,
        time_scale=s.time_scale,
        dp_ranks=list(s.dp.layout.ranks),
    )


async def _serve_api(lane: SimLane, stop: asyncio.Event, leader: DpLeader | None) -> int:
    """The API server's life (a leader waits for every DP rank before it binds)."""
    settings, log = lane.settings, lane.log
    _log_load(lane)
    if not await _load(lane, stop):
        lane.unpublish()
        log.info("stopped during model load")
        return 0
    if settings.faults.fail_startup:
        log.error(
            "model load failed (injected fault --fail-startup)", exit_code=settings.faults.exit_code
        )
        lane.unpublish()
        return settings.faults.exit_code
    if leader is not None and await _first(stop, leader.complete):
        lane.unpublish()
        log.info("stopped while waiting for DP engines", waiting_for=list(leader.table.missing))
        return 0
    async with _serving(lane) as bound:
        if not bound:
            lane.unpublish()
            return 1
        if settings.faults.exit_after_seconds is not None:
            _schedule_crash(lane, "seconds", settings.faults.exit_after_seconds)
        if leader is not None and await _first(leader.failed, stop):
            # vLLM's engine core dies with one of its engines and the server exits.
            lane.failure = leader.failure
            log.error("shutting down: a DP engine is lost", reason=leader.failure)
            lane.unpublish()
            return 1
        await stop.wait()
        log.info("shutting down", reason="signal")
    lane.unpublish()
    log.info("stopped")
    return 0


async def _serve_ray(lane: SimLane, stop: asyncio.Event) -> int:
    """An engine on Ray: place its workers, load, serve until stopped or a worker's node dies."""
    settings, log = lane.settings, lane.log
    assert settings.ray is not None
    driver = RayDriver(settings.ray, settings.lane_name, log)
    log.info(
        "connecting to the Ray cluster",
        address=str(settings.ray.address),
        workers=settings.ray.world_size,
        placement_timeout_s=settings.ray.placement_timeout_s,
    )
    try:
        placing = asyncio.create_task(driver.place())
        try:
            if await _first(stop, placing):
                log.info("stopped while waiting for the Ray placement group")
                return 0
            placed = placing.result()
        except RayPlacementError as exc:
            log.error("cannot place the engine's workers on Ray", error=str(exc))
            return 1
        finally:
            placing.cancel()
            with contextlib.suppress(asyncio.CancelledError, RayPlacementError):
                await placing
        log.info(
            "Ray placement group ready",
            workers={b.node.describe(): b.npus for b in placed.bundles},
        )
        return await _serve_placed(lane, stop, driver)
    finally:
        await driver.close()


async def _serve_placed(lane: SimLane, stop: asyncio.Event, driver: RayDriver) -> int:
    """A placed Ray engine: load the model on its workers, then serve."""
    settings, log = lane.settings, lane.log
    _log_load(lane)
    loading = asyncio.create_task(_load(lane, stop))
    if not await _first(loading, driver.failed):
        loading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loading
        log.error("model load failed: a Ray worker is lost", reason=driver.failure)
        return 1
    if not loading.result():
        log.info("stopped during model load")
        return 0
    if settings.faults.fail_startup:
        log.error(
            "model load failed (injected fault --fail-startup)", exit_code=settings.faults.exit_code
        )
        return settings.faults.exit_code
    async with _serving(lane) as bound:
        if not bound:
            return 1
        if settings.faults.exit_after_seconds is not None:
            _schedule_crash(lane, "seconds", settings.faults.exit_after_seconds)
        if await _first(driver.failed, stop):
            # vLLM's Ray executor fails when an actor's node dies and the server exits.
            lane.failure = driver.failure
            log.error("shutting down: a Ray worker is lost", reason=driver.failure)
            return 1
        log.info("shutting down", reason="signal")
    log.info("stopped")
    return 0


async def _serve_headless(lane: SimLane, stop: asyncio.Event) -> int:
    """A headless follower: load, join the leader, run until stopped or the link is lost."""
    log = lane.log
    _log_load(lane)
    if not await _load(lane, stop):
        lane.unpublish()
        log.info("stopped during model load")
        return 0
    follower = DpFollower(lane.settings.dp, lane.settings.lane_name, log)
    joining = asyncio.create_task(follower.join())
    try:
        if await _first(stop, joining):
            lane.unpublish()
            log.info("stopped while joining the DP leader")
            return 0
        waiting = joining.result()
    except DpJoinError as exc:
        log.error("cannot join the DP leader", error=str(exc))
        lane.unpublish()
        return 1
    finally:
        joining.cancel()
        with contextlib.suppress(asyncio.CancelledError, DpJoinError):
            await joining
    log.info(
        "joined the DP leader", ranks=list(lane.settings.dp.layout.ranks), waiting_for=list(waiting)
    )
    publisher = asyncio.create_task(_publish_loop(lane), name="sim-state")
    holding = asyncio.create_task(follower.hold())
    try:
        if await _first(stop, holding):
            log.info("shutting down", reason="signal")
            code = 0
        else:
            log.error("DP leader lost; exiting", reason=holding.result())
            code = 1
    finally:
        follower.close()
        for task in (publisher, holding):
            task.cancel()
        await asyncio.gather(publisher, holding, return_exceptions=True)
    lane.unpublish()
    return code


async def _first(
    wanted: asyncio.Event | asyncio.Task[Any], *others: asyncio.Event | asyncio.Task[Any]
) -> bool:
    """Wait until ``wanted`` or one of ``others`` is set or done; True if ``wanted`` was."""
    waits = [_waiter(w) for w in (wanted, *others)]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
    return _is_set(wanted)


def _waiter(thing: asyncio.Event | asyncio.Task[Any]) -> asyncio.Task[Any]:
    if isinstance(thing, asyncio.Event):
        return asyncio.create_task(thing.wait())
    return asyncio.create_task(asyncio.wait({thing}))


def _is_set(thing: asyncio.Event | asyncio.Task[Any]) -> bool:
    return thing.is_set() if isinstance(thing, asyncio.Event) else thing.done()


async def _load(lane: SimLane, stop: asyncio.Event) -> bool:
    """Sleep the startup delay while "HBM" fills; False if stopped meanwhile."""
    delay = lane.settings.startup_delay / lane.settings.time_scale
    for step in range(1, LOAD_STEPS + 1):
        lane.publish(force=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay / LOAD_STEPS)
        if stop.is_set():
            return False
        lane.loaded_fraction = step / LOAD_STEPS
    lane.publish(force=True)
    return True


@contextlib.asynccontextmanager
async def _serving(lane: SimLane) -> AsyncIterator[bool]:
    """Bind and serve the app; yields False if the port cannot be bound."""
    s = lane.settings
    runner = web.AppRunner(
        make_sim_app(lane),
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
    )
    await runner.setup()
    site = web.TCPSite(runner, s.host, s.port, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    try:
        await site.start()
    except OSError as exc:
        lane.log.error(
            "cannot listen; is another process using the port?",
            host=s.host,
            port=s.port,
            error=str(exc),
        )
        await runner.cleanup()
        yield False
        return
    lane.log.info("serving", url=f"http://{s.host}:{s.port}", model=s.served_model_name)
    publisher = asyncio.create_task(_publish_loop(lane), name="sim-state")
    try:
        yield True
    finally:
        publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publisher
        await runner.cleanup()


async def _publish_loop(lane: SimLane) -> None:
    while True:
        lane.publish()
        await asyncio.sleep(PUBLISH_INTERVAL_S)


def _schedule_crash(lane: SimLane, why: str, after_s: float) -> None:
    asyncio.get_running_loop().call_later(after_s, _crash, lane, why)


def _crash(lane: SimLane, why: str) -> None:
    """End the process at once (an injected fault), as a crashing server would."""
    code = lane.settings.faults.exit_code
    lane.log.error(f"exiting (injected fault --exit-after-{why})", exit_code=code)
    lane.unpublish()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
