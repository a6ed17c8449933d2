"""The media URL policy's I/O half: resolve the names media URLs give, judge every address.

``qwend.routing.media`` says what a URL may be; this module resolves the host
names it leaves open (``Resolve``) with the event loop's ``getaddrinfo``, each
under ``[router] media_resolve_timeout_s``, and refuses the request when any
resolved address is not public, when a name does not resolve, or when a request
names more than ``MAX_RESOLVED_HOSTS`` hosts. Both the router's port and the
public endpoints call ``check_media`` (through ``qwend.router.handlers``) before
a request is admitted, so a refused request never reaches a lane.

A lane resolves the name again when it fetches, so a name whose DNS answer
changes between the two lookups (DNS rebinding) is not stopped here: see
docs/security.md for the lane-side settings that close that gap.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence

from qwend.routing.media import (
    MAX_RESOLVED_HOSTS,
    IPAddress,
    MediaPolicy,
    MediaSource,
    Refused,
    Resolve,
    address_refusal,
    judge_source,
)

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``(host, port) -> addresses`` as text; raises ``OSError`` when the name does not resolve."""


class MediaRefused(Exception):
    """A media URL of the request is refused: ``message`` for the client, at ``param``."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses ``getaddrinfo`` gives ``host`` (run in the loop's executor)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def check_media(
    sources: Iterable[MediaSource],
    policy: MediaPolicy,
    timeout: float,
    resolve: Resolver = system_resolve,
) -> None:
    """Raise ``MediaRefused`` for the first source the policy refuses; return when all pass."""
    pending: dict[str, list[tuple[MediaSource, Resolve]]] = {}
    for source in sources:
        verdict = judge_source(source.url, policy)
        if isinstance(verdict, Refused):
            raise MediaRefused(_message(source, verdict.message), source.param)
        if isinstance(verdict, Resolve):
            pending.setdefault(verdict.host, []).append((source, verdict))
    if len(pending) > MAX_RESOLVED_HOSTS:
        first = next(iter(pending.values()))[0][0]
        raise MediaRefused(
            f"The request's media URLs name {len(pending)} different hosts; at most"
            f" {MAX_RESOLVED_HOSTS} are accepted.",
            first.param,
        )
    waits = [_judge_name(uses[0], timeout, resolve) for uses in pending.values()]
    for refusal in await asyncio.gather(*waits):
        if refusal is not None:
            raise refusal


async def _judge_name(
    use: tuple[MediaSource, Resolve], timeout: float, resolve: Resolver
) -> MediaRefused | None:
    source, name = use
    try:
        async with asyncio.timeout(timeout):
            found = await resolve(name.host, name.port)
    except TimeoutError:
        return _refused(
            source, f"names the host {name.host}, which did not resolve in {timeout:g} s"
        )
    except OSError as exc:  # socket.gaierror: no such name, no address, resolver down
        return _refused(source, f"names the host {name.host}, which does not resolve ({exc})")
    addresses = [_address(text) for text in found]
    if not addresses:
        return _refused(source, f"names the host {name.host}, which has no address")
    for address in addresses:
        reason = "not an IP address" if address is None else address_refusal(address)
        if reason is not None:
            return _refused(
                source, f"names the host {name.host}, which resolves to {address}: {reason}"
            )
    return None


def _address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.partition("%")[0])  # drop an IPv6 zone (fe80::1%eth0)
    except ValueError:
        return None


def _refused(source: MediaSource, why: str) -> MediaRefused:
    return MediaRefused(_message(source, why), source.param)


def _message(source: MediaSource, why: str) -> str:
    return f"The media URL at '{source.param}' {why}."
