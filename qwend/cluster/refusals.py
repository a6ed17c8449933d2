"""Which refused peer requests to log (pure): the first per address, then a summary a minute.

A peer with a stale token retries every few seconds, and a scanner may knock from many
addresses: the log says once who was refused and why, then how many more, never a line
per request. Addresses are kept in a bounded LRU so a flood cannot grow the table.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

REPEAT_EVERY_S = 60.0
MAX_ADDRESSES = 1024


@dataclass
class _Seen:
    logged_at: float
    suppressed: int = 0


class RefusalLog:
    """``should_log(address, now)`` -> the count of refusals not logged since, or None."""

    def __init__(
        self, *, every_s: float = REPEAT_EVERY_S, max_addresses: int = MAX_ADDRESSES
    ) -> None:
        self.every_s = every_s
        self.max_addresses = max_addresses
        self._seen: OrderedDict[str, _Seen] = OrderedDict()

    def should_log(self, address: str, now: float) -> int | None:
        """None: stay quiet. An int: log now, mentioning that many suppressed refusals."""
        seen = self._seen.get(address)
        if seen is None:
            self._seen[address] = _Seen(now)
            if len(self._seen) > self.max_addresses:
                self._seen.popitem(last=False)
            return 0
        self._seen.move_to_end(address)
        if now - seen.logged_at >= self.every_s:
            suppressed, seen.suppressed, seen.logged_at = seen.suppressed, 0, now
            return suppressed
        seen.suppressed += 1
        return None
