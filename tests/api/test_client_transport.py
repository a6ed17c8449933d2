"""Every transport failure of the control client is a ControlError subclass.

Each case is a real Unix-socket server misbehaving in one way: accepting and never
answering, closing mid-body, resetting mid-stream, sending a stream line that is not
JSON. The CLI and the TUI only catch QwendError, so anything else would be a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from qwend.api.client import ConnectionLost, ControlClient, ControlTimeout, DaemonNotRunning
from qwend.api.codec import ProtocolError
from qwend.api.messages import LaneAction

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handler: Serve) -> AsyncIterator[Path]:
    """A Unix socket whose every connection is ``handler``'s (after the request head)."""
    with tempfile.TemporaryDirectory(prefix="qct", dir="/tmp") as tmp:
        path = Path(tmp) / "control.sock"
        writers: list[asyncio.StreamWriter] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                await reader.readuntil(b"\r\n\r\n")
                await handler(reader, writer)
            writer.close()

        server = await asyncio.start_unix_server(serve, path=str(path))
        try:
            yield path
        finally:
            server.close()
            for writer in writers:  # the hung handlers: Server.close() leaves them open
                writer.transport.abort()
            await server.wait_closed()


async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.Event().wait()


async def half_a_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
        b'{"daemon": {'
    )
    await writer.drain()


async def ndjson_then_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nContent-Length: 9\r\n\r\n"
        b"not json\n"
    )
    await writer.drain()


async def sse_then_reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    await writer.drain()
    writer.transport.abort()


async def test_a_daemon_that_accepts_and_never_answers_times_out_in_the_given_time() -> None:
    async with raw_server(never_answer) as path, ControlClient(path, timeout_s=1.0) as client:
        started = time.monotonic()
        with pytest.raises(ControlTimeout, match="did not answer GET /status within 1s"):
            await client.status()
        assert time.monotonic() - started < 10


async def test_a_stream_whose_headers_never_come_times_out_too() -> None:
    async with raw_server(never_answer) as path, ControlClient(path, timeout_s=1.0) as client:
        with pytest.raises(ControlTimeout):
            async for _ in client.events():
                pass


async def test_a_body_cut_in_the_middle_is_connection_lost() -> None:
    async with raw_server(half_a_body) as path, ControlClient(path, timeout_s=5.0) as client:
        with pytest.raises(ConnectionLost, match="lost the connection to qwend"):
            await client.status()


async def test_a_mutating_call_cut_in_the_middle_is_connection_lost() -> None:
    async with raw_server(half_a_body) as path, ControlClient(path, timeout_s=5.0) as client:
        with pytest.raises(ConnectionLost):
            await client.lane_action("a", LaneAction.STOP)


async def test_a_reset_event_stream_is_connection_lost_and_daemon_not_running() -> None:
    async with raw_server(sse_then_reset) as path, ControlClient(path, timeout_s=5.0) as client:
        with pytest.raises(ConnectionLost) as caught:
            async for _ in client.events():
                pass
    # Older callers (the TUI) catch DaemonNotRunning for a stream the daemon cut.
    assert isinstance(caught.value, DaemonNotRunning)


async def test_a_stream_line_that_is_not_json_is_a_protocol_error() -> None:
    async with raw_server(ndjson_then_garbage) as path, ControlClient(path, timeout_s=5.0) as c:
        with pytest.raises(ProtocolError, match="not JSON"):
            async for _ in c.follow_logs("a"):
                pass
