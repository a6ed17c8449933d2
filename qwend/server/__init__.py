"""aiohttp applications of the daemon: the router, the public endpoints, the control API."""
