"""The peer listener's gate: credentials on every request, no forwarding through it.

With ``[cluster] tls_client_ca`` the TLS layer already refused a client without a
certificate that CA signed (a closed connection). With ``token_file`` every request must
carry ``Authorization: Bearer <token>``: none is a 401 (with ``WWW-Authenticate``), a wrong
one a 403, both as ``ErrorResponse`` JSON. A request a peer would forward again
(``/v1/hosts/...``) or fan out (``/v1/cluster``) is a 403: a link carries one hop, so a
token shared by two hosts does not open a third. Refusals are logged once per address,
then summarised once a minute (``qwend.cluster.refusals``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from qwend.api.client import FORWARD_PREFIX
from qwend.api.messages import API_PREFIX, ErrorCode, ErrorResponse
from qwend.cluster.refusals import RefusalLog
from qwend.cluster.secrets import TokenCheck
from qwend.logs import get_logger

log = get_logger("control")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ONE_HOP = (f"{API_PREFIX}{FORWARD_PREFIX}/", f"{API_PREFIX}/cluster")
"""Paths the peer listener refuses: forwarding and the cluster fan-out."""


def _refuse(status: int, message: str, *, challenge: bool = False) -> web.Response:
    code = ErrorCode.BAD_REQUEST
    response = web.json_response(ErrorResponse(code, message).to_dict(), status=status)
    if challenge:
        response.headers["WWW-Authenticate"] = 'Bearer realm="qwend peers"'
    return response


def peer_gate(
    token: TokenCheck | None,
    *,
    refusals: RefusalLog | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Middleware:
    """The middleware of the peer listener's app (``token`` None: client certificates only)."""
    quiet = refusals if refusals is not None else RefusalLog()

    def refused(request: web.Request, status: int, why: str) -> web.Response:
        address = request.remote or "?"
        suppressed = quiet.should_log(address, clock())
        if suppressed is not None:
            log.warning(
                "peer request refused",
                address=address,
                reason=why,
                path=request.path,
                refused_since_last_log=suppressed,
            )
        if status == 401:
            return _refuse(
                401,
                "this is qwend's peer listener: send Authorization: Bearer with the"
                " [cluster] token_file token",
                challenge=True,
            )
        if status == 403 and why == "wrong token":
            return _refuse(403, "the token does not match this host's [cluster] token_file")
        return _refuse(
            403,
            "the peer listener does not forward: a request crosses one peer link only;"
            " ask the host that owns the lane",
        )

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is not None:
            verdict = token.verdict(request.headers.get("Authorization"))
            if verdict == "missing":
                return refused(request, 401, "no token")
            if verdict is not None:
                return refused(request, 403, "wrong token")
        if request.path.startswith(ONE_HOP):
            return refused(request, 403, "forwarding attempt")
        return await handler(request)

    return gate
