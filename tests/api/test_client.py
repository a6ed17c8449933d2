"""The control client turns a stream the daemon cut into an error a person can act on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from qwend.api.client import ControlClient, DaemonNotRunning
from qwend.api.messages import DaemonInfo, Event, EventKind

HELLO = Event.of(DaemonInfo(version="0.1.0", pid=1, started_at=0.0, uptime_s=0.0, config_path="x"))


async def events_then_die(request: web.Request) -> web.StreamResponse:
    """One ``hello``, then the connection drops as when the daemon is killed."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(f"event: hello\ndata: {json.dumps(HELLO.to_dict())}\n\n".encode())
    await response.drain()
    assert request.transport is not None
    request.transport.abort()
    return response


@contextlib.asynccontextmanager
async def serve(path: Path) -> AsyncIterator[None]:
    app = web.Application()
    app.router.add_get("/v1/events", events_then_die)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.UnixSite(runner, str(path)).start()
    try:
        yield
    finally:
        await runner.cleanup()


async def test_an_event_stream_cut_by_the_daemon_is_daemon_not_running() -> None:
    with tempfile.TemporaryDirectory(prefix="qc", dir="/tmp") as tmp:
        path = Path(tmp) / "control.sock"
        kinds: list[EventKind] = []
        async with serve(path), ControlClient(path, timeout_s=10) as client:
            with pytest.raises(DaemonNotRunning, match="closed the event stream"):
                async with asyncio.timeout(10):
                    async for event in client.events():
                        kinds.append(event.kind)
        assert kinds == [EventKind.HELLO]
