"""Lane health: readiness during start, liveness while running, inference probe.

Readiness: the health path answers 2xx, then ``/v1/models`` lists a model, and
the socket that answered belongs to the lane's own process group, all within
``startup_timeout_s``; a process that exits meanwhile ends the wait at once, and
so does a stranger answering on the lane's port (see
``qwend.supervisor.listener``). Liveness: every ``interval_s`` the port must
still be the lane's own (else unhealthy at once), and the health path (and
optionally a ``max_tokens=1`` completion) must answer within ``timeout_s``;
``failure_threshold`` failures in a row make the lane unhealthy. The inference
probe is skipped while real traffic succeeded recently: a lane busy serving is
never killed for being slow to answer a probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import aiohttp

from qwend.config.model import LaneConfig
from qwend.errors import LaneError
from qwend.routing.models import model_ids
from qwend.supervisor.listener import Listeners, Verdict
from qwend.supervisor.remote import access, tls_problem

ListenerCheck = Callable[[], Awaitable[Listeners]]
"""Who listens on the lane's port (``qwend.supervisor.identity``, run off the loop)."""

READY_POLL_S = 0.25
"""Readiness poll period (the probe is cheap; a quick ready matters on promotion)."""


class NotReady(Exception):
    """Readiness failed; ``str()`` is the reason."""


class TlsRefused(NotReady):
    """A remote lane's certificate check failed: waiting longer cannot make it ready."""


async def check_health(
    session: aiohttp.ClientSession, lane: LaneConfig, *, tls_fatal: bool = False
) -> str | None:
    """None when the health path answers 2xx, else why not; with ``tls_fatal``, a failed
    TLS handshake raises TlsRefused instead."""
    try:
        acc = access(lane)
        timeout = acc.timeout(lane.health.timeout_s)
        async with session.get(
            lane.base_url + lane.health.path, timeout=timeout, ssl=acc.ssl, headers=acc.headers
        ) as resp:
            await resp.read()
            if resp.status >= 300:
                return f"{lane.health.path} answered HTTP {resp.status}"
    except TimeoutError:
        return f"{lane.health.path} did not answer within {lane.health.timeout_s:g}s"
    except aiohttp.ClientError as exc:
        tls = tls_problem(lane.remote, exc)
        if tls is not None and tls_fatal and isinstance(exc, aiohttp.ClientSSLError):
            raise TlsRefused(tls) from None
        return f"{lane.health.path}: {tls or f'{type(exc).__name__}: {exc}'}"
    except LaneError as exc:
        return str(exc)
    return None


async def check_models(session: aiohttp.ClientSession, lane: LaneConfig) -> str | None:
    """None when ``/v1/models`` lists at least one model, else why not."""
    try:
        acc = access(lane)
        timeout = acc.timeout(lane.health.timeout_s)
        async with session.get(
            lane.base_url + "/v1/models", timeout=timeout, ssl=acc.ssl, headers=acc.headers
        ) as resp:
            if resp.status >= 300:
                return f"/v1/models answered HTTP {resp.status}"
            body = await resp.json(content_type=None)
    except TimeoutError:
        return f"/v1/models did not answer within {lane.health.timeout_s:g}s"
    except (aiohttp.ClientError, ValueError) as exc:
        return f"/v1/models: {type(exc).__name__}: {exc}"
    except LaneError as exc:
        return str(exc)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or not data:
        return "/v1/models lists no model yet"
    return None


async def served_models(session: aiohttp.ClientSession, lane: LaneConfig) -> list[str]:
    """Model ids ``/v1/models`` lists (empty when it cannot be read)."""
    try:
        acc = access(lane)
        timeout = acc.timeout(lane.health.timeout_s)
        async with session.get(
            lane.base_url + "/v1/models", timeout=timeout, ssl=acc.ssl, headers=acc.headers
        ) as resp:
            body = await resp.json(content_type=None)
    except (TimeoutError, aiohttp.ClientError, ValueError, LaneError):
        return []
    return model_ids(body)


REJECTED_STATUSES = frozenset({400, 404, 422})
"""Answers to a request naming a model the backend does not know (vLLM 404, FastAPI 422)."""


async def served_model_warning(session: aiohttp.ClientSession, lane: LaneConfig) -> str | None:
    """A warning when the backend rejects the model name qwend sends it.

    The model list alone proves nothing: llama.cpp lists its file name and accepts any
    name, transformers serve lists every model in its cache. So a name missing from the
    list is tried with a 1-token completion, and only a rejection is worth a warning.
    """
    ids = await served_models(session, lane)
    name = lane.backend_model
    if not ids or name in ids:
        return None
    rejected = await _rejects(session, lane, name)
    if rejected is None:
        return None
    return (
        f"lane {lane.name} rejects the model name {name!r} ({rejected}); it lists"
        f" {', '.join(ids[:5])}: set lane.served_model (or --served-model-name) to match"
    )


async def _rejects(session: aiohttp.ClientSession, lane: LaneConfig, name: str) -> str | None:
    """``HTTP 404`` when a 1-token completion naming ``name`` is refused as a bad request."""
    try:
        status = await _one_token(session, lane, name)
    except (TimeoutError, aiohttp.ClientError, LaneError):
        return None  # unknown: no warning on a guess
    return f"HTTP {status}" if status in REJECTED_STATUSES else None


async def _one_token(session: aiohttp.ClientSession, lane: LaneConfig, name: str) -> int:
    """The status of a ``max_tokens=1`` completion naming ``name``, sent the way the lane
    is reached (its connect timeout, TLS and key); transport errors propagate."""
    payload = {"model": name, "prompt": "ping", "max_tokens": 1}
    acc = access(lane)
    async with session.post(
        lane.base_url + "/v1/completions",
        json=payload,
        timeout=acc.timeout(lane.health.timeout_s),
        ssl=acc.ssl,
        headers=acc.headers,
    ) as resp:
        await resp.read()
        return resp.status


async def inference_probe(session: aiohttp.ClientSession, lane: LaneConfig) -> str | None:
    """None when a ``max_tokens=1`` completion succeeds, else why not."""
    try:
        status = await _one_token(session, lane, lane.backend_model)
        if status >= 300:
            return f"inference probe answered HTTP {status}"
    except TimeoutError:
        return f"inference probe did not answer within {lane.health.timeout_s:g}s"
    except aiohttp.ClientError as exc:
        return f"inference probe: {type(exc).__name__}: {exc}"
    except LaneError as exc:
        return str(exc)
    return None


async def wait_ready(
    session: aiohttp.ClientSession,
    lane: LaneConfig,
    exited: asyncio.Event,
    listeners: ListenerCheck | None = None,
) -> None:
    """Return once the lane is ready; raise NotReady on exit or after startup_timeout_s.

    With ``listeners``, the lane is ready only once its own process listens on the
    port; a stranger there raises NotReady at once (the lane cannot bind it anyway).
    """
    deadline = time.monotonic() + lane.health.startup_timeout_s
    last = "no answer yet"
    while True:
        if exited.is_set():
            raise NotReady(f"process exited during start (last probe: {last})")
        problem = await check_health(session, lane, tls_fatal=True)
        if problem is None:
            problem = await check_models(session, lane)
        if problem is None and listeners is not None:
            found = await listeners()
            if found.verdict is Verdict.FOREIGN:
                raise NotReady(found.problem or "a stranger listens on the lane's port")
            problem = found.problem
        if problem is None:
            return
        last = problem
        if time.monotonic() >= deadline:
            raise NotReady(
                f"not ready within startup_timeout_s={lane.health.startup_timeout_s:g}s"
                f" (last probe: {last})"
            )
        # Sleep, but wake at once when the process exits.
        sleep = min(READY_POLL_S, max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(exited.wait(), sleep)


class Liveness:
    """Periodic liveness probing of one running lane."""

    def __init__(
        self,
        lane: LaneConfig,
        session: aiohttp.ClientSession,
        *,
        last_traffic_ok: Callable[[], float | None],
        clock: Callable[[], float] = time.monotonic,
        listeners: ListenerCheck | None = None,
    ) -> None:
        self.lane = lane
        self._session = session
        self._listeners = listeners
        self._last_traffic_ok = last_traffic_ok
        self._clock = clock
        self.failures = 0
        """Consecutive failed probes."""
        self.last_problem: str | None = None

    def _traffic_recent(self, window: float) -> bool:
        last = self._last_traffic_ok()
        return last is not None and self._clock() - last < window

    async def probe_once(self) -> str | None:
        """One liveness probe: None when healthy, else the problem."""
        problem = await check_health(self._session, self.lane)
        health = self.lane.health
        if (
            problem is None
            and health.inference_probe
            and not self._traffic_recent(health.inference_probe_idle_s)
        ):
            problem = await inference_probe(self._session, self.lane)
        return problem

    async def stranger(self) -> str | None:
        """Why the lane's port is answered by another process, or None when it is not."""
        if self._listeners is None:
            return None
        found = await self._listeners()
        return found.problem if found.verdict is Verdict.FOREIGN else None

    def record(self, problem: str | None) -> bool:
        """Count a probe result; True when the lane just crossed the failure threshold."""
        if problem is None:
            self.failures = 0
            self.last_problem = None
            return False
        # A lane that just served real traffic is busy, not dead.
        interval = self.lane.health.interval_s
        if self._traffic_recent(interval * max(self.lane.health.failure_threshold, 1)):
            return False
        self.failures += 1
        self.last_problem = problem
        return self.failures >= self.lane.health.failure_threshold

    async def run(self, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> str:
        """Probe every ``interval_s`` until unhealthy; returns the reason."""
        while True:
            await sleep(self.lane.health.interval_s)
            stranger = await self.stranger()
            if stranger is not None:  # no threshold: its traffic would go to a stranger
                return stranger
            if self.record(await self.probe_once()):
                threshold = self.lane.health.failure_threshold
                return f"liveness failed {threshold} times in a row: {self.last_problem}"
