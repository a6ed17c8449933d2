"""Guards on client connections, at accept time, for each TCP listener of the daemon.

aiohttp bounds the size of request heads and closes idle keep-alive connections
(``keepalive_timeout``), but it does not bound how many connections a listener holds,
nor how long a new connection may take to send its first request head. A client that
opens connections and sends nothing, or a byte now and then (slowloris), would hold
them, and a file descriptor each, for as long as it likes. So every connection goes
through a ``ConnectionGuard`` first:

- past the listener's cap a new connection gets ``503`` with ``Retry-After`` and is
  closed at once: its descriptor is back before the next accept;
- a connection whose first request head is not complete within ``header_timeout_s``
  gets ``408`` and is closed. Later heads on a keep-alive connection are bounded by
  the idle timeout (aiohttp closes a connection still waiting for a complete request
  ``idle_timeout_s`` after its last response).

The head is complete at its first empty line (``CRLF CRLF``, or a bare ``LF LF``, which
aiohttp's parser also accepts); the guard only looks for that, it parses nothing.
``raise_nofile`` lifts the daemon's descriptor limit as far as it may go; ``ServerLog``
keeps malformed requests from writing tracebacks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import resource
import time
from collections.abc import Callable

from aiohttp.http_exceptions import HttpProcessingError

from qwend.config.model import ListenAddress
from qwend.logs import get_logger

log = get_logger("daemon")

HEAD_END = re.compile(rb"\n\r?\n")
"""The empty line that ends a request head."""


def _response(status: str, headers: str, code: str, kind: str, message: str) -> bytes:
    """A whole HTTP/1.1 response that ends the connection, with an OpenAI-style error body."""
    body = json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{headers}"
        f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


FULL_RESPONSE = _response(
    "503 Service Unavailable",
    "Retry-After: 1\r\n",
    "too_many_connections",
    "server_error",
    "Too many open connections to this port; retry shortly.",
)
TIMEOUT_RESPONSE = _response(
    "408 Request Timeout",
    "",
    "request_timeout",
    "invalid_request_error",
    "The request headers did not arrive in time.",
)

FULL_LOG_EVERY_S = 10.0
"""While a listener stays full, how often its rejections are summed up in the log."""


class ServerLog(logging.Logger):
    """aiohttp's server logger for a guarded listener: structlog lines, no client tracebacks.

    aiohttp logs a request it cannot parse (a line or header past its limits: 8190
    bytes, 128 headers) with a full traceback on stderr; any client could fill the
    journal that way. Such a request was answered 400: one warning line says so.
    """

    def __init__(self, listen: ListenAddress) -> None:
        super().__init__("qwend.http", logging.WARNING)
        self._listen = str(listen)

    def handle(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            log.warning(
                "malformed request refused",
                listen=self._listen,
                status=exc.code,
                error=exc.message.splitlines()[0][:200] if exc.message else type(exc).__name__,
            )
        else:  # not the client's doing: keep the traceback
            log.error(record.getMessage(), listen=self._listen, exc_info=record.exc_info)


def raise_nofile() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard one; the (soft, hard) limits in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:  # a container may refuse; keep what we have
            log.warning("cannot raise the file-descriptor limit", soft=soft, error=str(exc))
    return soft, hard


class ConnectionGuard:
    """Counts one listener's connections and wraps its protocol factory (see the module)."""

    def __init__(self, listen: ListenAddress, *, cap: int, header_timeout_s: float) -> None:
        self.listen = listen
        self.cap = cap
        self.header_timeout_s = header_timeout_s
        self.active = 0
        """Connections open now (those closed at once past the cap not counted)."""
        self.rejected = 0
        """Connections closed at once because the listener was full, since start."""
        self.timed_out = 0
        """Connections closed because their first request head did not arrive in time."""
        self._full_since: float | None = None
        self._full_logged = 0.0
        self._rejected_logged = 0

    def factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server`` that guards ``inner``'s protocols."""
        return lambda: _Guarded(self, inner)

    def admit(self) -> bool:
        """Count a new connection in, or say it must be turned away."""
        if self.active >= self.cap:
            self.rejected += 1
            self._note_full()
            return False
        self.active += 1
        return True

    def release(self) -> None:
        """A counted connection closed."""
        self.active -= 1
        if self._full_since is not None and self.active < self.cap:
            log.info(
                "connections below the cap again",
                listen=str(self.listen),
                cap=self.cap,
                rejected=self.rejected - self._rejected_logged,
                full_for_s=round(time.monotonic() - self._full_since, 1),
            )
            self._full_since = None
            self._rejected_logged = self.rejected

    def _note_full(self) -> None:
        now = time.monotonic()
        if self._full_since is None:
            self._full_since = now
            self._full_logged = now
            log.warning(
                "connection cap reached; new connections get 503 and are closed",
                listen=str(self.listen),
                cap=self.cap,
                hint="raise [connections] max_per_listener (and LimitNOFILE) if these are "
                "real clients",
            )
        elif now - self._full_logged >= FULL_LOG_EVERY_S:
            self._full_logged = now
            log.warning(
                "connection cap still reached",
                listen=str(self.listen),
                cap=self.cap,
                rejected=self.rejected - self._rejected_logged,
            )


class _Guarded(asyncio.Protocol):
    """One accepted connection: turned away, or handed to aiohttp under a head deadline."""

    def __init__(self, guard: ConnectionGuard, inner: Callable[[], asyncio.Protocol]) -> None:
        self._guard = guard
        self._make_inner = inner
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if not self._guard.admit():
            transport.write(FULL_RESPONSE)
            transport.close()  # the kernel takes the few bytes; the descriptor goes now
            return
        self._transport = transport
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._guard.header_timeout_s, self._head_too_slow)
        self._inner = self._make_inner()
        self._inner.connection_made(transport)

    def _head_too_slow(self) -> None:
        self._deadline = None
        self._guard.timed_out += 1
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(TIMEOUT_RESPONSE)
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        if self._deadline is not None:
            seen = self._tail + data
            if HEAD_END.search(seen):
                self._deadline.cancel()
                self._deadline = None
            else:
                self._tail = seen[-2:]  # enough to find an end split across reads
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is None:
            return  # turned away: never counted
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._guard.release()
        inner, self._inner, self._transport = self._inner, None, None
        inner.connection_lost(exc)
