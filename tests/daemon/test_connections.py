"""Connection guards on a real listener: the cap, the head deadline, the idle timeout."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from functools import partial

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from qwend.config.model import ListenAddress
from qwend.daemon.listeners import ListenerLimits, TcpListener, _serve_tcp
from tests.support.daemonproc import free_port
from tests.support.polling import SLACK_S, until

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
GET = b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query["s"]))  # a handler slower than the head deadline
    return web.Response(text="slow")


@contextlib.asynccontextmanager
async def serving(
    cap: int = 1000, header_timeout_s: float = 30.0, idle_timeout_s: float = 30.0
) -> AsyncIterator[TcpListener]:
    app = web.Application()
    app.router.add_get("/ok", _ok)
    app.router.add_get("/slow", _slow)
    listen = ListenAddress("127.0.0.1", free_port())
    limits = ListenerLimits(cap, header_timeout_s, idle_timeout_s)
    tcp = await _serve_tcp(app, listen, limits, what="a test", advice="-")
    try:
        yield tcp
    finally:
        tcp.server.close()
        await tcp.runner.cleanup()


def port(tcp: TcpListener) -> int:
    return tcp.guard.listen.port


async def connect(tcp: TcpListener) -> Conn:
    return await asyncio.open_connection("127.0.0.1", port(tcp))


async def read_all(reader: asyncio.StreamReader, timeout: float = SLACK_S) -> bytes:
    """Everything up to EOF (the server closed the connection)."""
    async with asyncio.timeout(timeout):
        return await reader.read()


async def get(conn: Conn, path: bytes = b"/ok") -> bytes:
    reader, writer = conn
    writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(SLACK_S):
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        return head + await reader.readexactly(length)


def close(*conns: Conn) -> None:
    for _, writer in conns:
        writer.close()


async def test_past_the_cap_a_connection_gets_503_and_is_closed() -> None:
    async with serving(cap=3) as tcp:
        held = [await connect(tcp) for _ in range(3)]
        await until(lambda: tcp.guard.active == 3)
        reader, writer = await connect(tcp)
        answer = await read_all(reader)  # closed at once, without a request
        writer.close()
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"Retry-After: 1" in answer and b'"too_many_connections"' in answer
        assert tcp.guard.rejected == 1 and tcp.guard.active == 3
        assert b"200 OK" in await get(held[0])  # the held ones are served
        close(held[1])
        await until(lambda: tcp.guard.active == 2)
        fresh = await connect(tcp)  # room again
        assert b"200 OK" in await get(fresh)
        close(fresh, held[0], held[2])
        await until(lambda: tcp.guard.active == 0)


async def test_a_silent_connection_gets_408_at_the_head_deadline() -> None:
    async with serving(header_timeout_s=0.5) as tcp:
        reader, writer = await connect(tcp)
        started = time.monotonic()
        answer = await read_all(reader)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < 0.5 + SLACK_S
    assert tcp.guard.timed_out == 1


async def test_slowloris_is_cut_off_however_it_trickles() -> None:
    async with serving(header_timeout_s=1.0, idle_timeout_s=60.0) as tcp:
        reader, writer = await connect(tcp)
        started = time.monotonic()
        got = b""
        for byte in GET[:-2]:  # a byte every 0.2 s, never the final empty line
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    got = await reader.read(1)
            if got or reader.at_eof():
                break
        answer = got + await read_all(reader)
        writer.close()
    assert time.monotonic() - started < 1.0 + SLACK_S
    assert tcp.guard.timed_out == 1
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_a_head_split_anywhere_is_seen_whole_and_not_timed_out() -> None:
    # The handler outlives the head deadline: the guard must have seen the head's end,
    # whichever read it straddled, or it would cut the request off.
    request = b"GET /slow?s=1.0 HTTP/1.1\r\nHost: x\r\n\r\n"
    async with serving(header_timeout_s=0.5) as tcp:
        for cut in (len(request) - 1, len(request) - 2, len(request) - 3):
            reader, writer = await connect(tcp)
            writer.write(request[:cut])
            await writer.drain()
            await asyncio.sleep(0.05)  # two separate reads on the server; nothing to await
            writer.write(request[cut:])
            async with asyncio.timeout(SLACK_S):
                head = await reader.readuntil(b"\r\n\r\n")
            writer.close()
            assert head.startswith(b"HTTP/1.1 200 "), (cut, head)
        assert tcp.guard.timed_out == 0


async def test_an_idle_keep_alive_connection_is_closed() -> None:
    async with serving(header_timeout_s=30.0, idle_timeout_s=0.5) as tcp:
        conn = await connect(tcp)
        assert b"200 OK" in await get(conn)
        started = time.monotonic()
        assert await read_all(conn[0]) == b""  # closed by the server, idle
        close(conn)
        await until(lambda: tcp.guard.active == 0)
    assert 0.3 < time.monotonic() - started < 0.5 + SLACK_S


async def test_a_busy_keep_alive_connection_stays_open() -> None:
    async with serving(header_timeout_s=0.3, idle_timeout_s=5.0) as tcp:
        conn = await connect(tcp)
        for _ in range(3):  # past the head deadline: later heads are the idle timeout's
            assert b"200 OK" in await get(conn)
            await asyncio.sleep(0.2)
        close(conn)
    assert tcp.guard.timed_out == 0


@pytest.mark.parametrize("cap", [1, 5])
async def test_the_count_follows_closes_by_either_side(cap: int) -> None:
    async with serving(cap=cap, header_timeout_s=0.3) as tcp:
        conns = [await connect(tcp) for _ in range(cap)]
        await until(lambda: tcp.guard.active == cap)
        await until(lambda: tcp.guard.active == 0)  # all timed out by the server
        close(*conns)
        again = await connect(tcp)
        assert b"200 OK" in await get(again)
        close(again)


def _limit(soft: int, hard: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_raise_nofile_lifts_the_soft_limit_to_the_hard_one() -> None:
    code = "from qwend.daemon.connections import raise_nofile; print(*raise_nofile())"
    done = subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=partial(_limit, 256, 1024),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.split() == ["1024", "1024"]


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /ok HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
        b"GET /ok HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n",
    ],
    ids=["long-line", "long-field", "many-headers"],
)
async def test_an_oversized_head_is_a_400_and_one_log_line_without_traceback(
    request_head: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serving() as tcp:
        reader, writer = await connect(tcp)
        with capture_logs() as logs:
            writer.write(request_head)
            answer = await read_all(reader)
        writer.close()
    assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request")
    assert [e["event"] for e in logs] == ["malformed request refused"]
    assert logs[0]["status"] == 400
    assert "Traceback" not in capsys.readouterr().err
