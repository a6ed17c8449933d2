"""Request IDs and access-log records (pure).

Every request gets an ID: the client's ``X-Request-Id`` when it is safe to log
and to pass on (at most 128 characters of ``[A-Za-z0-9._:@+=-]``), else a new
one. The ID is echoed on the response, sent to the lane and bound to every log
line about the request. A ``Trace`` follows the request through the router and
becomes one access-log record: no prompt text, ever.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

REQUEST_ID_HEADER = "X-Request-Id"
MAX_REQUEST_ID = 128
_SAFE_ID = re.compile(rf"[A-Za-z0-9._:@+=-]{{1,{MAX_REQUEST_ID}}}")
_MAX_ROUTE = 200


_PREFIX = secrets.token_hex(8)
_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """A fresh ID: 32 hex digits, a random per-process prefix and a counter.

    Unique within the process and, through the prefix, across restarts and hosts;
    a uuid4 per request would cost a getrandom() system call on the request path."""
    return f"{_PREFIX}{next(_COUNTER):016x}"


def request_id_for(incoming: str | None, new: Callable[[], str] = new_request_id) -> str:
    """The client's ID when it is safe (length, charset), else a new one."""
    if incoming is not None and _SAFE_ID.fullmatch(incoming):
        return incoming
    return new()


@dataclass(eq=False)
class Trace:
    """What the access log records about one request, filled in as it goes."""

    request_id: str
    method: str
    route: str
    """The path (at most 200 characters; a hostile client's path is not logged whole)."""
    listener: str
    """``router`` or the public endpoint's address."""
    key: str | None = None
    """The API key's name (public endpoints), never the key."""
    lane: str | None = None
    """The lane of the last attempt."""
    attempts: int = 0
    ttft_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    usage_from_lane: bool = False
    """The token counts are the lane's own ``usage`` (else qwend's estimate)."""

    @staticmethod
    def route_of(path: str) -> str:
        """``path`` cut to a length fit for a log line."""
        return path if len(path) <= _MAX_ROUTE else path[:_MAX_ROUTE] + "…"

    def record(self, status: int, body_bytes: int, duration_s: float) -> dict[str, object]:
        """The access-log record (JSON-able)."""
        return {
            "request_id": self.request_id,
            "listener": self.listener,
            "key": self.key,
            "method": self.method,
            "route": self.route,
            "lane": self.lane,
            "status": status,
            "attempts": self.attempts,
            "ttft_s": None if self.ttft_s is None else round(self.ttft_s, 6),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "bytes": body_bytes,
            "duration_s": round(duration_s, 6),
        }
