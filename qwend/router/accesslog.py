"""Access-log sinks: one JSON line per request to a size-rotated file, or to the journal.

``[access_log] target``: ``off``, ``journal`` (one entry per request through the
daemon's log, with ``REQUEST_ID`` and ``QWEND_STATUS``... fields) or ``file``
(``path``, rotated past ``max_bytes`` keeping ``keep`` older files). A write
failure (disk full) is logged once and never fails the request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import IO, Protocol

from qwend.config.model import AccessLogConfig, AccessLogTarget
from qwend.logs import get_logger

log = get_logger("access")


class AccessLog(Protocol):
    """Where access records go."""

    def write(self, record: Mapping[str, object]) -> None:
        """Record one finished request."""

    def close(self) -> None:
        """Release the sink's file, if any."""


class JournalAccessLog:
    """Access records as log entries of component ``access`` (the journal under systemd)."""

    def write(self, record: Mapping[str, object]) -> None:
        log.info("request", **{k: v for k, v in record.items() if v is not None})

    def close(self) -> None:
        return None


class FileAccessLog:
    """JSON lines appended to ``path``; past ``max_bytes`` it becomes ``path.1`` (and so on)."""

    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self._file: IO[str] | None = None
        self._failed = False

    def _open(self) -> IO[str]:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        return self._file

    def _rotate(self) -> None:
        self.close()
        for n in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        if self.keep > 0:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()

    def write(self, record: Mapping[str, object]) -> None:
        line = json.dumps({"ts": round(time.time(), 3), **record}, ensure_ascii=False) + "\n"
        try:
            out = self._open()
            out.write(line)
            out.flush()
            if out.tell() >= self.max_bytes:
                self._rotate()
            self._failed = False
        except OSError as exc:
            if not self._failed:  # once per failure streak: a full disk must not flood the log
                log.error("access log write failed", path=str(self.path), error=str(exc))
            self._failed = True
            self.close()

    def close(self) -> None:
        if self._file is not None:
            with suppress(OSError):
                self._file.close()
            self._file = None


def make_access_log(config: AccessLogConfig) -> AccessLog | None:
    """The sink ``config`` asks for (None: off)."""
    if config.target is AccessLogTarget.JOURNAL:
        return JournalAccessLog()
    if config.target is AccessLogTarget.FILE:
        return FileAccessLog(config.path, config.max_bytes, config.keep)
    return None


class AccessLogSlot:
    """The sink in force, shared by the router port and every public endpoint."""

    def __init__(self) -> None:
        self.sink: AccessLog | None = None

    def swap(self, sink: AccessLog | None) -> None:
        """Put ``sink`` in force (None: off) and close the previous one."""
        old, self.sink = self.sink, sink
        if old is not None and old is not sink:
            old.close()
