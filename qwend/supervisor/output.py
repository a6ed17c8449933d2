"""Lane output: rotated per-start log files and an in-memory ring with followers."""

from __future__ import annotations

import contextlib
import os
from collections import deque
from pathlib import Path

from qwend.broadcast import Broadcast, Subscription

RING_LINES = 2000
"""Lines of lane output kept in memory."""
FOLLOW_BUFFER = 10000
"""Lines a follower may fall behind by before it loses the oldest."""


def rotate_logs(path: Path, keep: int) -> None:
    """NAME.log -> NAME.log.1 -> ... -> NAME.log.KEEP (the oldest dropped)."""
    for n in range(keep, 0, -1):
        src = path if n == 1 else path.with_name(f"{path.name}.{n - 1}")
        if src.exists():
            src.replace(path.with_name(f"{path.name}.{n}"))
    oldest = path.with_name(f"{path.name}.{keep + 1}")
    with contextlib.suppress(FileNotFoundError):
        oldest.unlink()
    if keep <= 0:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class LogRing:
    """The last lines of a lane's output, with live followers."""

    def __init__(self, size: int = RING_LINES) -> None:
        self._lines: deque[str] = deque(maxlen=size)
        self._partial = ""
        self._followers: Broadcast[str] = Broadcast(FOLLOW_BUFFER)

    def feed(self, text: str) -> None:
        """Add raw output; complete lines go to the ring and followers."""
        parts = (self._partial + text).split("\n")
        self._partial = parts.pop()
        for line in parts:
            self._push(line)

    def _push(self, line: str) -> None:
        self._lines.append(line)
        self._followers.publish(line)

    def flush(self) -> None:
        """End of output: emit a trailing partial line."""
        if self._partial:
            self._push(self._partial)
            self._partial = ""

    def tail(self, n: int) -> list[str]:
        """The last ``n`` lines."""
        return list(self._lines)[-n:] if n > 0 else []

    def follow(self) -> Subscription[str]:
        """New lines from this call on (across lane restarts) until the follower closes it."""
        return self._followers.subscribe()


FAILURE_LINES = 20
FAILURE_CHARS = 4096


def failure_quote(lines: list[str]) -> tuple[str, ...]:
    """The last lines of a lane's output worth quoting next to a failure: at most
    ``FAILURE_LINES`` lines and ``FAILURE_CHARS`` characters (the newest kept)."""
    kept: list[str] = []
    size = 0
    for line in reversed(lines[-FAILURE_LINES:]):
        line = line if len(line) <= 512 else line[:512] + "..."
        size += len(line) + 1
        if size > FAILURE_CHARS:
            break
        kept.append(line)
    return tuple(reversed(kept))


def read_log_tail(path: Path, n: int) -> list[str]:
    """The last ``n`` lines of a log file (empty when missing)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * n - 4096))
            data = f.read()
    except FileNotFoundError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[-n:] if n > 0 else []
