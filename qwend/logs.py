"""structlog, configured once for the daemon and the sim.

Three renderings: native journal entries when stderr is the journal (systemd
``StandardError=journal``: each entry carries ``PRIORITY``, ``LANE``,
``COMPONENT``, ``REQUEST_ID`` and ``CODE_*`` fields, so ``journalctl -p warning``
and ``journalctl LANE=stable`` work; ``<N>`` sd-daemon priority prefixes on
stderr when the socket refuses an entry); readable console lines on a terminal
(one ISO-8601 UTC timestamp format, colour unless ``NO_COLOR`` or a dumb
terminal, tracebacks without locals); JSON lines everywhere else. Lane lines
carry ``lane=``: bind it with ``lane_logger(name)``. Records of the standard
``logging`` module (aiohttp, asyncio) go through the same chain.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from contextvars import ContextVar
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

import structlog

from qwend.journal import JournalSender, field_name, stderr_is_journal


class LogFormat(StrEnum):
    """How log records are rendered."""

    AUTO = "auto"
    """``journal`` when stderr is the journal, ``console`` on a terminal, ``json`` otherwise."""
    JSON = "json"
    CONSOLE = "console"
    JOURNAL = "journal"
    """Native journal entries with fields (falls back to ``<N>`` prefixed lines)."""


SYSLOG_PRIORITY = {
    "critical": 2,
    "exception": 3,
    "error": 3,
    "warning": 4,
    "warn": 4,
    "notice": 5,
    "info": 6,
    "debug": 7,
}
"""structlog level -> syslog priority (journalctl -p)."""
_FIELDS = {
    "lane": "LANE",
    "component": "COMPONENT",
    "request_id": "REQUEST_ID",
    "pathname": "CODE_FILE",
    "lineno": "CODE_LINE",
    "func_name": "CODE_FUNC",
}
"""Event keys with a journal field of their own; other keys become ``QWEND_<KEY>``."""
_NOT_IN_MESSAGE = frozenset({"event", "level", "exception", "pathname", "lineno", "func_name"})


REQUEST_ID: ContextVar[str | None] = ContextVar("qwend_request_id", default=None)
"""The ID of the request being handled in this task (set by the router's tracing).

One variable of our own instead of ``structlog.contextvars.bound_contextvars``: that
copies every bound variable on entry and exit, tens of microseconds per request."""


def add_request_id(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Processor: ``request_id=`` on every line written while a request is handled."""
    rid = REQUEST_ID.get()
    if rid is not None:
        event.setdefault("request_id", rid)
    return event


def resolve_format(requested: LogFormat, stream: TextIO, env: Mapping[str, str]) -> LogFormat:
    """Pick the concrete format for ``AUTO``."""
    if requested is not LogFormat.AUTO:
        return requested
    if stderr_is_journal(env, stream):
        return LogFormat.JOURNAL
    return LogFormat.CONSOLE if stream.isatty() else LogFormat.JSON


def wants_colour(stream: TextIO, env: Mapping[str, str]) -> bool:
    """Colour on a terminal, unless ``NO_COLOR`` is set (no-color.org) or ``TERM=dumb``."""
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    return stream.isatty()


def message_of(event: Mapping[str, Any]) -> str:
    """A journal ``MESSAGE``: the event, its other keys as ``k=v``, then any traceback."""
    parts = [str(event.get("event", ""))]
    parts += [f"{k}={v}" for k, v in event.items() if k not in _NOT_IN_MESSAGE]
    text = " ".join(parts)
    exc = event.get("exception")
    return f"{text}\n{exc}" if exc else text


def journal_fields(event: Mapping[str, Any], identifier: str) -> Iterator[tuple[str, str]]:
    """The journal fields of one event (pure)."""
    level = str(event.get("level", "info"))
    yield "PRIORITY", str(SYSLOG_PRIORITY.get(level, 6))
    yield "MESSAGE", message_of(event)
    yield "SYSLOG_IDENTIFIER", identifier
    for key, value in event.items():
        if key in ("event", "level") or value is None:
            continue
        name = _FIELDS.get(key) or field_name("qwend_" + key)
        if name is not None:
            yield name, str(value)


class JournalRenderer:
    """The last processor under the journal: sends the entry and drops the event, or
    returns a ``<N>``-prefixed line for stderr when the journal socket refuses it."""

    def __init__(self, sender: JournalSender, identifier: str) -> None:
        self.sender = sender
        self.identifier = identifier

    def __call__(self, _logger: Any, _method: str, event: MutableMapping[str, Any]) -> str:
        if self.sender.send(journal_fields(event, self.identifier)):
            raise structlog.DropEvent
        priority = SYSLOG_PRIORITY.get(str(event.get("level", "info")), 6)
        # sd-daemon(3) prefixes: journald reads the priority off each stderr line.
        return "\n".join(f"<{priority}>{line}" for line in message_of(event).splitlines())


def build_processors(
    fmt: LogFormat,
    env: Mapping[str, str],
    *,
    colour: bool = False,
    sender: JournalSender | None = None,
) -> list[structlog.typing.Processor]:
    """The structlog processor chain for ``fmt``."""
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_request_id,
        structlog.processors.add_log_level,
    ]
    if fmt is LogFormat.JOURNAL:
        Param = structlog.processors.CallsiteParameter
        processors += [
            structlog.processors.CallsiteParameterAdder(
                [Param.PATHNAME, Param.LINENO, Param.FUNC_NAME],
                # The bridge and the logging module are never where a record came from.
                additional_ignores=["qwend.logs", "logging"],
            ),
            structlog.processors.format_exc_info,
            JournalRenderer(sender or JournalSender(), _identifier()),
        ]
        return processors
    if "JOURNAL_STREAM" not in env:  # the journal stamps every line itself
        processors.append(structlog.processors.TimeStamper(fmt="iso", utc=True))
    if fmt is LogFormat.JSON:
        processors.append(structlog.processors.format_exc_info)
        processors.append(structlog.processors.JSONRenderer(sort_keys=False))
    else:
        processors.append(
            structlog.dev.ConsoleRenderer(
                colors=colour, exception_formatter=structlog.dev.plain_traceback
            )
        )
    return processors


def _identifier() -> str:
    """``SYSLOG_IDENTIFIER``: the program (``qwend``, ``qwend-sim``), ``qwend`` for
    ``python -m qwend``."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return name if name.startswith("qwend") else "qwend"


class _StdlibBridge(logging.Handler):
    """Records of the ``logging`` module (aiohttp, asyncio) into the structlog chain."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            log = structlog.get_logger(component=record.name)
            kw: dict[str, Any] = {"exc_info": record.exc_info} if record.exc_info else {}
            log.log(record.levelno, record.getMessage(), **kw)
        except Exception:  # a logging failure must not take the caller down
            self.handleError(record)


def configure_logging(
    fmt: LogFormat = LogFormat.AUTO,
    level: str = "info",
    stream: TextIO | None = None,
    env: Mapping[str, str] | None = None,
    *,
    sender: JournalSender | None = None,
) -> LogFormat:
    """Configure structlog (and route ``logging`` through it); returns the format chosen.

    ``sender``: where journal entries go (tests pass one bound to their own socket).
    """
    out = stream if stream is not None else sys.stderr
    environ = os.environ if env is None else env
    chosen = resolve_format(fmt, out, environ)
    structlog.configure(
        processors=build_processors(
            chosen, environ, colour=wants_colour(out, environ), sender=sender
        ),
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h, _StdlibBridge)]
    root.addHandler(_StdlibBridge())
    root.setLevel(logging.WARNING)  # library chatter at info stays out
    return chosen


def get_logger(component: str, **bound: Any) -> Any:
    """A logger whose lines carry ``component=`` (and any extra keys).

    Safe to create at import time: it is structlog's lazy proxy, which assembles a
    logger from the configuration in force at each call (``configure_logging`` turns
    caching off), so a module-level logger honours ``--log-format`` set up later.
    Binding eagerly instead (``structlog.get_logger().bind(...)``) would freeze the
    default configuration: console lines on stdout.
    """
    return structlog.get_logger(component=component, **bound)


def lane_logger(lane: str, **bound: Any) -> Any:
    """A logger whose every line carries ``lane=NAME`` (lazy, like ``get_logger``)."""
    return structlog.get_logger(lane=lane, **bound)
