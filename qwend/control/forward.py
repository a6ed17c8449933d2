"""Forwarding to a peer: ``/v1/hosts/NAME/<path>`` is ``/v1/<path>`` on peer NAME.

The local daemon sends the request over its peer link with its own credentials, so
``qwenctl --host NAME`` needs only the local control socket. The peer's answer (status,
headers that matter, body) comes back as it is; a stream (``promote --wait``, ``logs -f``,
events) is relayed chunk by chunk as it arrives. The answer's head must come within the
peer's ``timeout_s``; a stream then has no deadline (a promotion takes minutes).
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from qwend.api.client import PeerError, PeerTimeout, PeerUnreachable
from qwend.api.messages import API_PREFIX, ErrorCode, ErrorResponse, error_http_status
from qwend.cluster.peers import Peers
from qwend.logs import get_logger

log = get_logger("control")

FORWARDED_BY = "X-Qwend-Forwarded-By"
"""Names the forwarding host and local caller in the peer's audit log."""
_PASSED_ON = ("Content-Type",)


def _unavailable(message: str) -> web.Response:
    code = ErrorCode.UNAVAILABLE
    return web.json_response(ErrorResponse(code, message).to_dict(), status=error_http_status(code))


async def forward(
    request: web.Request, peers: Peers, host: str, tail: str, caller: str
) -> web.StreamResponse:
    """Relay ``request`` to ``/v1/<tail>`` on peer ``host`` (UnknownPeer when not a peer)."""
    client = await peers.client(host)
    timeout_s = peers.configs[host].timeout_s
    body = await request.read()
    headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
    headers[FORWARDED_BY] = f"{peers.this} {caller}".strip()
    where = f"peer {host} ({peers.configs[host].url})"
    try:
        async with asyncio.timeout(timeout_s):
            upstream = await client.session.request(
                request.method,
                f"{API_PREFIX}/{tail}",
                params=request.query,
                data=body or None,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout_s),
            )
    except TimeoutError:
        err: PeerError = PeerTimeout(host, f"{where} did not answer within {timeout_s:g}s")
        return _unavailable(str(err))
    except aiohttp.ClientError as exc:
        err = PeerUnreachable(
            host, f"{where} is unreachable: {str(exc).strip() or type(exc).__name__}"
        )
        return _unavailable(str(err))
    async with upstream:
        if upstream.status in (401, 403):
            # The peer refused this host's credentials: that is this host's link being
            # misconfigured, not the local caller's doing; say which settings decide it.
            detail = (await upstream.text())[:300]
            return _unavailable(
                f"{where} refused this host's credentials (HTTP {upstream.status}: {detail});"
                f" check [[peers]] token_file or tls_cert/tls_key for {host} against its"
                " [cluster] token_file and tls_client_ca"
            )
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name in _PASSED_ON:
            if name in upstream.headers:
                response.headers[name] = upstream.headers[name]
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        except (aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
            # The head is sent: the local client sees the stream end early, as it would
            # had the peer itself closed it.
            log.warning("peer stream cut", peer=host, path=tail, error=str(exc))
            return response
        await response.write_eof()
    return response
