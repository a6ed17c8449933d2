"""The daemon's TCP listeners log the address they bound, not a URL derived from it."""

from __future__ import annotations

from aiohttp import web
from structlog.testing import capture_logs

from qwend.config.model import ListenAddress
from qwend.daemon.listeners import ListenerLimits, Listeners
from tests.support.daemonproc import free_port


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
