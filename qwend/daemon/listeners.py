"""The daemon's listeners: the router's TCP port, the public endpoints, the web console,
the control socket, the peer listener (``[cluster] listen``).

Opened in that order at start-up. At shutdown the TCP ports stop accepting first
(the public ones before the router's) while in-flight requests go on; everything
is closed, and the control socket file removed, once the lanes are stopped.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.log import access_logger

from qwend.cluster.secrets import CredentialError, TokenCheck, read_token
from qwend.cluster.tls import listener_context
from qwend.config.model import (
    ClusterConfig,
    ConnectionsConfig,
    DaemonConfig,
    ListenAddress,
    PublicConfig,
)
from qwend.control.app import (
    CONTROL_KEY,
    ControlContext,
    create_control_socket,
    make_peer_app,
    remove_control_socket,
)
from qwend.control.peerauth import peer_gate
from qwend.daemon.connections import ConnectionGuard, ServerLog
from qwend.errors import QwendError
from qwend.logs import get_logger
from qwend.public.app import make_public_app
from qwend.public.console.app import make_console_app
from qwend.public.historyplan import HistoryHook
from qwend.public.keys import ApiKeys
from qwend.router.router import Router

log = get_logger("daemon")


@dataclass(frozen=True)
class ListenerLimits:
    """What guards each TCP listener's client connections (``[connections]``, fd plan)."""

    cap: int
    """Connections one listener holds (the fd plan's, at most the configured one)."""
    header_timeout_s: float
    idle_timeout_s: float
    body_timeout_s: float = ConnectionsConfig().body_timeout_s
    """The deadline of a request body, kept by the public endpoints' apps (the router's
    app gets it from ``build_services``)."""


@dataclass
class TcpListener:
    """One TCP port: aiohttp's runner, the asyncio server accepting for it, its guard."""

    runner: web.AppRunner
    server: asyncio.AbstractServer
    guard: ConnectionGuard


async def _serve_tcp(
    app: web.Application,
    listen: ListenAddress,
    limits: ListenerLimits,
    *,
    what: str,
    advice: str,
    access_log: logging.Logger | None = access_logger,
    tls: ssl.SSLContext | None = None,
) -> TcpListener:
    """Run ``app`` on ``listen`` behind a connection guard; a QwendError naming ``what``."""
    runner = web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=1.0,
        access_log=access_log,
        keepalive_timeout=limits.idle_timeout_s,
        logger=ServerLog(listen),
    )
    await runner.setup()
    handler = runner.server
    assert handler is not None  # set by setup()
    guard = ConnectionGuard(listen, cap=limits.cap, header_timeout_s=limits.header_timeout_s)
    loop = asyncio.get_running_loop()
    try:
        # Our own asyncio server rather than a web.TCPSite: every accepted connection
        # goes through the guard before aiohttp sees it.
        server = await loop.create_server(
            guard.factory(handler),
            listen.host,
            listen.port,
            reuse_address=True,
            ssl=tls,
            # A client that never finishes the handshake holds a slot no longer than
            # one that never finishes its request head.
            ssl_handshake_timeout=limits.header_timeout_s if tls is not None else None,
        )
    except OSError as exc:
        await runner.cleanup()
        raise QwendError(
            f"cannot listen on {listen} for {what}: {exc.strerror or exc}; {advice}"
        ) from None
    return TcpListener(runner, server, guard)


class Listeners:
    """What the daemon listens on; each ``open_*`` may fail with a QwendError that says why."""

    def __init__(self) -> None:
        self._router: TcpListener | None = None
        self._public: list[TcpListener] = []
        self._control: web.AppRunner | None = None
        self._socket: Path | None = None
        self.control: ControlContext | None = None
        """The control API's context, once its socket listens."""

    async def open_router(
        self, app: web.Application, listen: ListenAddress, limits: ListenerLimits
    ) -> None:
        self._router = await _serve_tcp(
            app,
            listen,
            limits,
            what="the router",
            advice="stop what uses that port or change [router] listen",
            access_log=None,  # the hot path: no access-log line per proxied request
        )
        # The address bound, as configured: 0.0.0.0 stays 0.0.0.0 (not the URL to reach it).
        log.info("router listening", address=str(listen))

    async def open_public(
        self,
        public: PublicConfig,
        router: Router,
        keys: ApiKeys,
        limits: ListenerLimits,
        history: HistoryHook | None = None,
    ) -> None:
        """One listener per ``[[public.endpoints]]``, each handing requests to the router.

        Every endpoint checks the same ``keys``: a reload swaps the key set inside it.
        ``history``: compresses chat histories when an endpoint or a request asks.
        """
        for endpoint in public.endpoints:
            app = make_public_app(
                endpoint, router, keys, body_timeout_s=limits.body_timeout_s, history=history
            )
            listen = endpoint.listen
            runner = await _serve_tcp(
                app,
                listen,
                limits,
                what=f"the public endpoint {endpoint.target}",
                advice=(
                    f"stop what uses port {listen.port} or change its [[public.endpoints]] listen"
                ),
            )
            self._public.append(runner)
            log.info(
                "public endpoint listening",
                address=str(listen),
                target=endpoint.target,
                api_keys=keys.enabled,
                compress=endpoint.compress,
            )

    async def open_console(
        self,
        public: PublicConfig,
        router: Router,
        keys: ApiKeys,
        limits: ListenerLimits,
        history: HistoryHook | None = None,
    ) -> None:
        """The web console on ``[public] console_listen`` (nothing when it is not set)."""
        listen = public.console_listen
        if listen is None:
            return
        app = make_console_app(public, router, keys, history, body_timeout_s=limits.body_timeout_s)
        self._public.append(
            await _serve_tcp(
                app,
                listen,
                limits,
                what="the web console",
                advice=f"stop what uses port {listen.port} or change [public] console_listen",
            )
        )
        log.info(
            "web console listening",
            address=str(listen),
            url=f"{listen.url}/",
            api_keys=keys.enabled,
            image_max_side=public.console_image_max_side,
            compress=public.console_compress and history is not None,
        )

    async def open_control(self, app: web.Application, daemon: DaemonConfig) -> None:
        """The control API on its Unix socket (ControlError when another qwend has it)."""
        path = daemon.control_socket
        sock = create_control_socket(path, daemon.socket_group)
        self._socket = path  # ours from now on: removed at close
        self._control = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._control.setup()
        await web.SockSite(self._control, sock).start()
        self.control = app[CONTROL_KEY]
        log.info("control socket listening", path=str(path))

    async def open_peers(
        self, ctx: ControlContext, cluster: ClusterConfig, limits: ListenerLimits
    ) -> None:
        """The control API for peers on ``[cluster] listen`` (nothing when it is not set).

        Refuses to start without a credential (the configuration already does; this keeps
        the promise whatever built the config) or with an unusable token or TLS file.
        """
        listen = cluster.listen
        if listen is None:
            return
        if cluster.token_file is None and cluster.tls_client_ca is None:
            raise CredentialError(
                f"refusing to open the peer listener on {listen} without a credential:"
                " set [cluster] token_file or tls_client_ca"
            )
        token = None
        if cluster.token_file is not None:
            token = TokenCheck.of(read_token(cluster.token_file, "[cluster] token_file"))
        tls = listener_context(cluster)
        app = make_peer_app(ctx, peer_gate(token))
        self._public.append(
            await _serve_tcp(
                app,
                listen,
                limits,
                what="the peer listener",
                advice=f"stop what uses port {listen.port} or change [cluster] listen",
                tls=tls,
            )
        )
        log.info(
            "peer listener listening",
            address=str(listen),
            tls=tls is not None,
            client_certificates=cluster.tls_client_ca is not None,
            token=token is not None,
        )

    async def stop_accepting(self) -> None:
        """No new connections on the TCP ports (public first); in-flight requests go on.

        Streaming control responses (event streams, log follows) are told to end.
        """
        if self.control is not None:
            self.control.closing.set()
        for tcp in self.tcp():
            tcp.server.close()

    def tcp(self) -> list[TcpListener]:
        """The TCP listeners open now: the public endpoints, then the router's."""
        return [*self._public, *([self._router] if self._router is not None else [])]

    async def close(self) -> None:
        """Close every listener and remove the control socket file."""
        for tcp in self.tcp():
            tcp.server.close()  # already, unless start-up failed half-way
            await tcp.runner.cleanup()
        if self._control is not None:
            await self._control.cleanup()
        if self._socket is not None:
            remove_control_socket(self._socket)
