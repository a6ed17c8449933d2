"""LaneConfig factories around ``lane.py`` (a real HTTP lane process)."""

from __future__ import annotations

import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from qwend.config.model import HealthConfig, LaneConfig, RestartConfig, StopConfig, StopMode

LANE_SCRIPT = Path(__file__).with_name("lane.py")

FAST_HEALTH = HealthConfig(
    startup_timeout_s=30.0, interval_s=0.3, timeout_s=2.0, failure_threshold=2
)
FAST_RESTART = RestartConfig(
    backoff_min_s=0.2, backoff_max_s=0.5, crash_loop_limit=3, crash_loop_window_s=60.0
)


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lane_argv(*extra: str) -> tuple[str, ...]:
    """The lane script command with placeholders, plus fault flags."""
    return (
        sys.executable,
        str(LANE_SCRIPT),
        "--port",
        "{port}",
        "--model",
        "{model}",
        *extra,
    )


def make_lane(
    name: str,
    *,
    port: int | None = None,
    npus: Sequence[int] = (0,),
    role: str | None = None,
    standby: bool = False,
    extra: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    health: HealthConfig = FAST_HEALTH,
    restart: RestartConfig = FAST_RESTART,
    stop_timeout: float = 5.0,
    stop_signal: signal.Signals = signal.SIGTERM,
    stop_mode: StopMode = StopMode.GROUP,
    model: str | None = None,
) -> LaneConfig:
    """A lane running ``lane.py`` on a free port, serving ``model`` (``model-NAME``)."""
    return LaneConfig(
        name=name,
        role=role or name,
        variant="test",
        npus=tuple(npus),
        port=port if port is not None else free_port(),
        model=model or f"model-{name}",
        command=lane_argv(*extra),
        standby=standby,
        env=dict(env or {}),
        health=health,
        stop=StopConfig(signal=stop_signal, timeout_s=stop_timeout, mode=stop_mode),
        restart=restart,
    )


async def get_json(url: str, timeout: float = 2.0) -> object:
    """GET ``url`` and decode JSON (aiohttp; raises on failure)."""
    import aiohttp

    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.get(url) as resp,
    ):
        resp.raise_for_status()
        return await resp.json()


async def wait_json(url: str, deadline_s: float = 20.0) -> object:
    """Poll ``url`` until it answers JSON (a lane coming up)."""
    import asyncio
    import time

    end = time.monotonic() + deadline_s
    while True:
        try:
            return await get_json(url)
        except Exception:
            if time.monotonic() > end:
                raise
            await asyncio.sleep(0.05)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


SQUATTER_SCRIPT = LANE_SCRIPT.with_name("squatter.py")


def squatter_argv(port: int, model: str = "test-model") -> list[str]:
    """A process that binds ``port`` and answers like a lane (see squatter.py)."""
    return [sys.executable, str(SQUATTER_SCRIPT), "--port", str(port), "--model", model]
