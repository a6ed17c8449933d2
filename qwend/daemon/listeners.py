"""The daemon's listeners: the router's TCP port, the public endpoints, the control socket.

Opened in that order at start-up. At shutdown the TCP ports stop accepting first
(the public ones before the router's) while in-flight requests go on; everything
is closed, and the control socket file removed, once the lanes are stopped.
"""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web
from aiohttp.log import access_logger

from qwend.config.model import DaemonConfig, ListenAddress, PublicConfig
from qwend.control.app import (
    CONTROL_KEY,
    ControlContext,
    create_control_socket,
    remove_control_socket,
)
from qwend.errors import QwendError
from qwend.logs import get_logger
from qwend.public.app import make_public_app
from qwend.public.keys import ApiKeys
from qwend.router.router import Router

CONSOLE_IGNORED = "the web console is not part of this version; console_listen is ignored"


log = get_logger("daemon")


async def _serve_tcp(
    app: web.Application,
    listen: ListenAddress,
    *,
    what: str,
    advice: str,
    access_log: logging.Logger | None = access_logger,
) -> web.AppRunner:
    """Run ``app`` on ``listen``; a QwendError naming ``what`` when that fails."""
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0, access_log=access_log)
    await runner.setup()
    site = web.TCPSite(runner, listen.host, listen.port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise QwendError(
            f"cannot listen on {listen} for {what}: {exc.strerror or exc}; {advice}"
        ) from None
    return runner


class Listeners:
    """What the daemon listens on; each ``open_*`` may fail with a QwendError that says why."""

    def __init__(self) -> None:
        self._router: web.AppRunner | None = None
        self._public: list[web.AppRunner] = []
        self._control: web.AppRunner | None = None
        self._socket: Path | None = None
        self.control: ControlContext | None = None
        """The control API's context, once its socket listens."""

    async def open_router(self, app: web.Application, listen: ListenAddress) -> None:
        self._router = await _serve_tcp(
            app,
            listen,
            what="the router",
            advice="stop what uses that port or change [router] listen",
            access_log=None,  # the hot path: no access-log line per proxied request
        )
        # The address bound, as configured: 0.0.0.0 stays 0.0.0.0 (not the URL to reach it).
        log.info("router listening", address=str(listen))

    async def open_public(self, public: PublicConfig, router: Router, keys: ApiKeys) -> None:
        """One listener per ``[[public.endpoints]]``, each handing requests to the router.

        Every endpoint checks the same ``keys``: a reload swaps the key set inside it.
        """
        if public.console_listen is not None:
            log.warning(CONSOLE_IGNORED, console_listen=str(public.console_listen))
        for endpoint in public.endpoints:
            app = make_public_app(endpoint, router, keys)
            listen = endpoint.listen
            runner = await _serve_tcp(
                app,
                listen,
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

    async def stop_accepting(self) -> None:
        """No new connections on the TCP ports (public first); in-flight requests go on.

        Streaming control responses (event streams, log follows) are told to end.
        """
        if self.control is not None:
            self.control.closing.set()
        for runner in (*self._public, *([self._router] if self._router else [])):
            for site in runner.sites:
                await site.stop()

    async def close(self) -> None:
        """Close every listener and remove the control socket file."""
        runners = (*self._public, self._router, self._control)
        for runner in runners:
            if runner is not None:
                await runner.cleanup()
        if self._socket is not None:
            remove_control_socket(self._socket)
