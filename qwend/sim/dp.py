"""Multi-node data parallelism for the sim: the leader's coordinator and a follower's link.

See ``qwend.sim.dpranks`` for the handshake. ``DpLeader`` listens on
``--data-parallel-address:--data-parallel-rpc-port``; ``complete`` is set once every
rank has joined and ``failed`` once a joined follower's link is lost afterwards (the
lane then stops serving, as vLLM's API server does when an engine core dies).
``DpFollower`` joins the leader (retrying while it is not up yet, like a headless
engine waiting for its coordinator) and then keeps the link alive until it is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from qwend.sim.dpranks import (
    MAX_LINE,
    DpLayout,
    DpProtocolError,
    DpSettings,
    Join,
    Ping,
    RankTable,
    Reject,
    Welcome,
    decode,
    encode,
)

CONNECT_RETRY_S = 0.25
"""A follower's pause between attempts to reach a leader that is not listening yet."""


class DpJoinError(Exception):
    """A follower could not join (``str()`` says why); the process exits 1."""


async def _keep_alive(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, settings: DpSettings
) -> str:
    """Ping and listen until the link is lost; why it was lost."""

    async def pinger() -> None:
        while True:
            writer.write(encode(Ping()))
            await writer.drain()
            await asyncio.sleep(settings.heartbeat_s)

    ping_task = asyncio.create_task(pinger())
    try:
        while True:
            if ping_task.done():
                exc = ping_task.exception()
                return f"link write failed: {exc}"
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
                async with asyncio.timeout(settings.heartbeat_timeout_s):
                    line = await reader.readline()
            except TimeoutError:
                return f"no heartbeat for {settings.heartbeat_timeout_s:g}s"
            except (ConnectionError, ValueError) as exc:
                return f"link error: {exc}"
            if not line:
                return "link closed by the other side"
            try:
                decode(line)
            except DpProtocolError as exc:
                return f"protocol error: {exc}"
    finally:
        ping_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
            await ping_task


class DpLeader:
    """The leader's DP coordinator (see module docstring)."""

    def __init__(self, settings: DpSettings, log: Any) -> None:
        self.settings = settings
        self.table = RankTable(settings.layout)
        self.complete = asyncio.Event()
        self.failed = asyncio.Event()
        self.failure = ""
        self._log = log
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen on the coordinator address (OSError when it cannot be bound)."""
        s = self.settings
        self._server = await asyncio.start_server(
            self._serve_link, s.address, s.rpc_port, limit=MAX_LINE + 2
        )
        self._log.info(
            "DP coordinator listening",
            address=s.address,
            rpc_port=s.rpc_port,
            waiting_for=list(self.table.missing),
        )

    async def close(self) -> None:
        """Stop listening and drop every follower link (followers then exit)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._links):
            writer.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _serve_link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        self._links.add(writer)
        joined = False
        try:
            try:
                async with asyncio.timeout(self.settings.heartbeat_timeout_s):
                    line = await reader.readline()
                message = decode(line)
            except (TimeoutError, ConnectionError, ValueError) as exc:
                self._log.warning("DP join failed", peer=str(peer), error=str(exc))
                return
            if not isinstance(message, Join):
                self._log.warning("DP link did not start with join", peer=str(peer))
                return
            answer = self.table.join(writer, message)
            writer.write(encode(answer))
            await writer.drain()
            if isinstance(answer, Reject):
                self._log.warning("DP join refused", follower=message.name, error=answer.error)
                return
            joined = True
            self._log.info(
                "DP ranks joined",
                follower=message.name,
                ranks=list(DpLayout(message.size, message.local, message.start_rank).ranks),
                waiting_for=list(answer.waiting_for),
            )
            if self.table.complete:
                self.complete.set()
            why = await _keep_alive(reader, writer, self.settings)
            self._lost(writer, message.name, why)
        except (ConnectionError, OSError) as exc:
            if joined:
                self._lost(writer, str(peer), f"link error: {exc}")
        finally:
            self._links.discard(writer)
            writer.close()

    def _lost(self, key: object, name: str, why: str) -> None:
        # The ranks are freed, but a group that was complete does not heal (vLLM's does
        # not either): the leader fails and the whole group is started again.
        self.table.leave(key)
        if self.complete.is_set() and not self.failed.is_set():
            self.failure = f"DP follower {name} lost ({why})"
            self._log.error("DP engine lost; the group cannot serve", follower=name, why=why)
            self.failed.set()
        else:
            self._log.warning("DP follower left before the group was complete", follower=name)


class DpFollower:
    """A headless follower's link to its leader (see module docstring)."""

    def __init__(self, settings: DpSettings, name: str, log: Any) -> None:
        self.settings = settings
        self.name = name
        self._log = log
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def join(self) -> tuple[int, ...]:
        """Reach the leader and join; the ranks still missing. DpJoinError on failure."""
        s = self.settings
        deadline = time.monotonic() + s.join_timeout_s
        last = ""
        while True:
            try:
                async with asyncio.timeout(
                    max(0.1, min(s.heartbeat_timeout_s, deadline - time.monotonic()))
                ):
                    reader, writer = await asyncio.open_connection(
                        s.address, s.rpc_port, limit=MAX_LINE + 2
                    )
                break
            except (OSError, TimeoutError) as exc:
                last = str(exc) or type(exc).__name__
            if time.monotonic() >= deadline:
                raise DpJoinError(
                    f"no DP coordinator at {s.address}:{s.rpc_port} within"
                    f" {s.join_timeout_s:g}s ({last}); is the leader running and"
                    " --data-parallel-address pointing at it?"
                )
            await asyncio.sleep(CONNECT_RETRY_S)
        layout = s.layout
        writer.write(encode(Join(layout.size, layout.start_rank, layout.local, self.name)))
        try:
            await writer.drain()
            async with asyncio.timeout(s.heartbeat_timeout_s):
                line = await reader.readline()
            answer = decode(line) if line else None
        except (ConnectionError, TimeoutError, DpProtocolError) as exc:
            writer.close()
            raise DpJoinError(f"DP join at {s.address}:{s.rpc_port} failed: {exc}") from None
        if isinstance(answer, Reject):
            writer.close()
            raise DpJoinError(f"the DP leader refused the join: {answer.error}")
        if not isinstance(answer, Welcome):
            writer.close()
            raise DpJoinError(f"the DP leader answered {answer!r} to the join")
        self._reader, self._writer = reader, writer
        return answer.waiting_for

    async def hold(self) -> str:
        """Keep the joined link alive; returns why it was lost."""
        assert self._reader is not None and self._writer is not None
        try:
            return await _keep_alive(self._reader, self._writer, self.settings)
        finally:
            self._writer.close()

    def close(self) -> None:
        """Close the link (at shutdown)."""
        if self._writer is not None:
            self._writer.close()
