"""Optional warm-up of a promoted candidate: one tiny completion before it takes traffic.

A freshly loaded model often answers its first request slowly (graph
compilation, caches); sending one ``max_tokens=1`` request before the routing
switch keeps that first-request cost away from users, and a candidate that
cannot answer at all is rolled back instead of promoted.
"""

from __future__ import annotations

import aiohttp

from qwend.config.model import LaneConfig
from qwend.errors import LaneError
from qwend.promotion.run import Warmup


def http_warmup(timeout_s: float = 120.0) -> Warmup:
    """A ``Warmup`` sending one chat completion (``max_tokens=1``) to the lane itself."""

    async def warm(lane: LaneConfig) -> None:
        body = {
            "model": lane.model,
            "messages": [{"role": "user", "content": "ping"}],
            "max_tokens": 1,
        }
        url = f"{lane.base_url}/v1/chat/completions"
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(url, json=body) as response,
            ):
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise LaneError(f"warm-up request to lane {lane.name} ({url}) failed: {exc}") from None
        if response.status != 200:
            raise LaneError(
                f"warm-up request to lane {lane.name} answered HTTP {response.status}: {text[:200]}"
            )

    return warm
