"""The daemon's TCP listeners: the address they log, the limits they apply."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from structlog.testing import capture_logs

from qwend.config.model import (
    Config,
    ConnectionsConfig,
    DaemonConfig,
    ListenAddress,
    MonitorConfig,
    PublicConfig,
    PublicEndpoint,
    RouterConfig,
)
from qwend.daemon.lifecycle import connection_limits
from qwend.daemon.listeners import ListenerLimits, Listeners
from qwend.daemon.wiring import build_services
from tests.support.control_fakes import demo_config
from tests.support.daemonproc import free_port
from tests.support.polling import SLACK_S
from tests.support.router_fakes import trickled


async def test_a_wildcard_listener_is_logged_as_the_wildcard_it_binds() -> None:
    # An empty app (every path 404) for the moment it takes to read the log line.
    listen = ListenAddress("0.0.0.0", free_port())
    listeners = Listeners()
    with capture_logs() as logs:
        await listeners.open_router(web.Application(), listen, ListenerLimits(16, 10.0, 30.0))
    try:
        (line,) = [entry for entry in logs if entry["event"] == "router listening"]
        assert line["address"] == f"0.0.0.0:{listen.port}"
        assert "127.0.0.1" not in str(line)  # it was once logged as the loopback URL
    finally:
        await listeners.close()


async def test_the_body_deadline_reaches_the_router_and_public_listeners(tmp_path: Path) -> None:
    # [connections] body_timeout_s as the daemon wires it: build_services for the router's
    # app, connection_limits for the public endpoints', each behind its connection guard.
    router_listen = ListenAddress("127.0.0.1", free_port())
    endpoint = PublicEndpoint(ListenAddress("127.0.0.1", free_port()), "router")
    config = Config(
        daemon=DaemonConfig(state_dir=tmp_path / "state", log_dir=tmp_path / "logs"),
        router=RouterConfig(listen=router_listen),
        public=PublicConfig(endpoints=(endpoint,)),
        monitor=MonitorConfig(enabled=False),
        connections=ConnectionsConfig(body_timeout_s=0.5),
        lanes=demo_config().lanes,
    )
    services = build_services(config, extra_env={}, keys=None)
    limits = connection_limits(config)
    listeners = Listeners()
    try:
        await listeners.open_router(services.router_app, router_listen, limits)
        await listeners.open_public(config.public, services.router, services.api_keys, limits)
        for listen in (router_listen, endpoint.listen):
            url = f"http://127.0.0.1:{listen.port}"
            with capture_logs() as logs:
                answer, _ = await trickled(url, "/v1/chat/completions", within_s=0.5 + SLACK_S)
            assert answer.startswith(b"HTTP/1.1 408 "), (listen, answer)
            assert b'"request_timeout"' in answer
            loud = [e["event"] for e in logs if e["log_level"] != "info"]
            assert loud == ["request body too slow"], logs  # once, and no traceback
    finally:
        await listeners.close()
