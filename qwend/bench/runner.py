"""Run scenarios against a base URL (asyncio + aiohttp): bursts and open-loop load."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp

from qwend.bench.results import CaseRun, RequestRecord, scaled
from qwend.bench.scenarios import Burst, Load, RequestShape, Scenario
from qwend.bench.wire import send

Progress = Callable[[str, int, int], None]
"""Called with (case, requests finished, requests in the case) as answers arrive."""

REQUEST_TIMEOUT_S = 600.0
"""A single request's limit: long enough for a queued long answer on a loaded lane."""


@dataclass(frozen=True)
class RunSettings:
    """How to run: where, which model, how many times, how fast the lanes run."""

    base_url: str
    model: str
    repeat: int = 1
    time_scale: float = 1.0
    """Sim lanes started with ``--time-scale K`` run K times faster; figures are multiplied by K."""
    warmup: bool = True
    """Send one short request first, so the first case does not pay for connection setup."""
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Sent with every request (``Authorization`` of a target that asks for a key)."""
    ssl: ssl.SSLContext | bool = True
    """TLS of an https:// target: a context with its CA, or True for the system's."""


def _noop(case: str, done: int, total: int) -> None:
    return None


async def run_scenarios(
    scenarios: Sequence[Scenario], settings: RunSettings, progress: Progress = _noop
) -> list[CaseRun]:
    """Run each scenario ``settings.repeat`` times, one after the other."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S / settings.time_scale)
    connector = aiohttp.TCPConnector(limit=0, ssl=settings.ssl)
    async with aiohttp.ClientSession(
        timeout=timeout, connector=connector, headers=dict(settings.headers)
    ) as session:
        if settings.warmup:
            await send(session, settings.base_url, settings.model, RequestShape(2), 0.0)
        runs = []
        for scenario in scenarios:
            for repeat in range(settings.repeat):
                run = await _run_one(session, scenario, repeat, settings, progress)
                runs.append(scaled(run, settings.time_scale))
        return runs


async def _run_one(
    session: aiohttp.ClientSession,
    scenario: Scenario,
    repeat: int,
    settings: RunSettings,
    progress: Progress,
) -> CaseRun:
    if isinstance(scenario, Burst):
        plan = [(0.0, shape) for shape in scenario.requests]
    else:
        plan = [(at / settings.time_scale, shape) for at, shape in scenario.schedule()]
    done = 0
    progress(scenario.name, 0, len(plan))
    began = time.perf_counter()

    async def one(at: float, shape: RequestShape) -> RequestRecord:
        nonlocal done
        delay = began + at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # open loop: start on schedule whatever came back
        stream = True if isinstance(scenario, Load) else None
        record = await send(
            session, settings.base_url, settings.model, shape, time.perf_counter() - began,
            stream=stream,
        )  # fmt: skip
        done += 1
        progress(scenario.name, done, len(plan))
        return record

    records = await asyncio.gather(*(one(at, shape) for at, shape in plan))
    return CaseRun(scenario.name, repeat, time.perf_counter() - began, tuple(records))
