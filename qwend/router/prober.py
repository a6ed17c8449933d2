"""The router's lane prober: ejects hung lanes from live traffic and probes ejected lanes.

Every ``SCAN_S`` it looks at each lane's runtime (a handful of lanes: nothing
on the request path). A lane with requests in flight and no data from it for
``stall_timeout_s`` (a SIGSTOPped or wedged process: the kernel still accepts
connections, nothing answers) is taken out of routing at once, without
waiting for the supervisor's health probe, and probed right away for life:
``GET /v1/models``, which the lane's HTTP server answers even while its
engine is busy with a long prefill (a busy lane is not a hung one). When that
fails within ``probe_timeout_s``, the requests still waiting for the lane's
first answer are failed over to another lane (nothing reached their
clients). A lane ejected for its failures gets, after its cool-down, the
router's own probe for service: a 1-token chat completion, bounded by
``probe_timeout_s``. Client requests are never probes, so a probe that hangs
costs no client anything and leaves the role's other lanes serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiohttp import ClientTimeout

from qwend.logs import get_logger
from qwend.router.lanes import LaneRuntime
from qwend.router.proxy import REMOTE_ERRORS
from qwend.router.slots import LaneSlots
from qwend.router.upstream import Upstream
from qwend.router.watchdog import Watchdog
from qwend.routing.breaker import TripReason, stalled
from qwend.supervisor.remote import access_for

log = get_logger("router")
SCAN_S = 0.25
"""How often lanes are checked for stalls and due probes (bounds detection latency)."""
PROBE_HEADERS = {"Content-Type": "application/json", "X-Qwend-Probe": "1"}


def probe_body(model: str) -> dict[str, Any]:
    """The probe: the smallest chat completion a lane can answer."""
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": "ping"}],
        "max_tokens": 1,
        "stream": False,
    }
    if model:
        body["model"] = model
    return body


class Prober:
    """Stall detection and breaker probes for the router's lanes."""

    def __init__(self, slots: LaneSlots, upstream: Upstream, watchdog: Watchdog) -> None:
        self._slots = slots
        self._upstream = upstream
        self._watchdog = watchdog
        self._probes: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Scan the lanes every ``SCAN_S`` until cancelled (then cancel probes in flight)."""
        try:
            while True:
                await asyncio.sleep(SCAN_S)
                self.scan(time.monotonic())
        finally:
            for task in list(self._probes):
                task.cancel()
            for task in list(self._probes):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def scan(self, now: float) -> None:
        """Eject stalled lanes and start the probes that are due."""
        stall_s = self._slots.config.stall_timeout_s
        for runtime in self._slots.runtimes():
            breaker = runtime.breaker
            if breaker.closed:
                if stalled(runtime.awaited, runtime.progress_at, now, stall_s):
                    breaker.trip(now, TripReason.STALLED)
                    log.warning(
                        "lane ejected: requests in flight and no data from it",
                        lane=runtime.name,
                        in_flight=runtime.in_flight,
                        quiet_s=round(now - runtime.progress_at, 1),
                    )
                else:
                    continue
            if runtime.lane.accepting and breaker.needs_probe(now):
                breaker.on_probe_start(now)
                task = asyncio.create_task(self._probe(runtime), name=f"probe-{runtime.name}")
                self._probes.add(task)
                task.add_done_callback(self._probes.discard)

    async def _probe(self, runtime: LaneRuntime) -> None:
        alive_only = runtime.breaker.reason is TripReason.STALLED
        ok = await self._send(runtime, alive_only)
        now = time.monotonic()
        runtime.breaker.on_probe_result(now, ok)
        if ok:
            runtime.progress_at = now
            log.info("lane probe succeeded: routed again", lane=runtime.name)
            self._slots.wake()
        elif alive_only:
            # The lane is dead or hung: requests still waiting for its first answer would
            # wait for first_byte_timeout_s; nothing reached their clients, so they go
            # to another lane now.
            moved = self._watchdog.fail_over(runtime, f"lane {runtime.name!r} is not answering")
            log.warning("lane is not answering: ejected", lane=runtime.name, failed_over=moved)
        else:
            log.warning("lane probe failed: stays ejected", lane=runtime.name)

    async def _send(self, runtime: LaneRuntime, alive_only: bool) -> bool:
        """Probe for life (``GET /v1/models``) or for service (a 1-token completion)."""
        lane = runtime.lane
        timeout = ClientTimeout(total=self._slots.config.probe_timeout_s)
        session = self._upstream.session
        try:
            acc = access_for(lane.name, lane.remote)
            timeout = acc.adjust(timeout)
            if alive_only:
                request = session.get(
                    lane.base_url + "/v1/models", timeout=timeout, ssl=acc.ssl, headers=acc.headers
                )
            else:
                request = session.post(
                    lane.base_url + "/v1/chat/completions",
                    json=probe_body(lane.backend_model),
                    headers=acc.with_headers(PROBE_HEADERS),
                    timeout=timeout,
                    ssl=acc.ssl,
                )
            async with request as resp:
                await resp.read()
                return resp.status == 200
        except REMOTE_ERRORS:
            return False
