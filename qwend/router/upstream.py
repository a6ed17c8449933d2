"""The router's pooled HTTP session to its lanes (open while the router's app runs)."""

from __future__ import annotations

from aiohttp import ClientSession, ClientTimeout, TCPConnector

from qwend.config.model import RouterConfig


def _timeout(config: RouterConfig) -> ClientTimeout:
    # No total: streams last as long as they last; the router's own deadlines bound them.
    return ClientTimeout(total=None, sock_connect=config.connect_timeout_s)


class Upstream:
    """One connection pool for every lane, and the timeout each request to a lane gets."""

    def __init__(self, config: RouterConfig) -> None:
        self._config = config
        self._timeout = _timeout(config)
        self._session: ClientSession | None = None

    def configure(self, config: RouterConfig) -> None:
        """Take a reloaded configuration; the keep-alive setting applies on the next open."""
        self._config = config
        self._timeout = _timeout(config)

    @property
    def timeout(self) -> ClientTimeout:
        """The timeout of a request to a lane (connect timeout only)."""
        return self._timeout

    @property
    def session(self) -> ClientSession:
        """The pooled session (exists while the app runs)."""
        if self._session is None:
            raise RuntimeError("the router's client session is not open (app not started)")
        return self._session

    async def open(self) -> None:
        """Create the pooled session."""
        connector = TCPConnector(
            limit=0, keepalive_timeout=self._config.upstream_keepalive_s, ttl_dns_cache=None
        )
        self._session = ClientSession(
            connector=connector, auto_decompress=False, timeout=self._timeout
        )

    async def close(self) -> None:
        """Close the pooled session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
