"""One heartbeat-kept JSON-lines link of the sim's Ray mode (see ``qwend.sim.raycluster``).

Both ends ping every ``heartbeat_s``; ``receive`` hands over every other message and
raises ``LinkLost`` (with the reason) on an end of stream, a protocol error or silence
longer than ``heartbeat_timeout_s``, since a pulled cable or a stopped process sends no FIN.
"""

from __future__ import annotations

import asyncio
import contextlib

from qwend.sim.raycluster import (
    MAX_LINE,
    Message,
    Ping,
    RayAddress,
    RayLinkSettings,
    RayProtocolError,
    decode,
    encode,
)


class LinkLost(Exception):
    """The link is gone; ``str()`` says why."""


class RayLink:
    """A connected link; ``start_heartbeat`` once the handshake is done."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        settings: RayLinkSettings,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.settings = settings
        self._pinger: asyncio.Task[None] | None = None

    @property
    def peer(self) -> str:
        """The other end's address, for logs."""
        peer = self.writer.get_extra_info("peername")
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    def send(self, message: Message) -> None:
        """Queue a message (a closed link drops it; ``receive`` reports the loss)."""
        if not self.writer.is_closing():
            self.writer.write(encode(message))

    async def receive(self, timeout: float | None = None) -> Message:
        """The next message other than a ping; LinkLost when the link is gone."""
        limit = self.settings.heartbeat_timeout_s if timeout is None else timeout
        while True:
            if self._pinger is not None and self._pinger.done():
                raise LinkLost(f"link write failed: {self._pinger.exception()}")
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
                async with asyncio.timeout(limit):
                    line = await self.reader.readline()
            except TimeoutError:
                raise LinkLost(f"no heartbeat for {limit:g}s") from None
            except (ConnectionError, ValueError) as exc:
                raise LinkLost(f"link error: {exc}") from None
            if not line:
                raise LinkLost("link closed by the other side")
            try:
                message = decode(line)
            except RayProtocolError as exc:
                raise LinkLost(f"protocol error: {exc}") from None
            if not isinstance(message, Ping):
                return message

    def start_heartbeat(self) -> None:
        """Ping every ``heartbeat_s`` until closed."""
        self._pinger = asyncio.create_task(self._ping())

    async def _ping(self) -> None:
        while True:
            self.send(Ping())
            await self.writer.drain()
            await asyncio.sleep(self.settings.heartbeat_s)

    async def close(self) -> None:
        """Stop pinging and close the connection."""
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await self._pinger
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


async def connect(address: RayAddress, settings: RayLinkSettings, timeout: float) -> RayLink:
    """Open a link to the head (one attempt; OSError or TimeoutError on failure)."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(
            address.host, address.port, limit=MAX_LINE + 2
        )
    return RayLink(reader, writer, settings)
