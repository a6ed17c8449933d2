"""structlog, configured once for the daemon and the sim.

JSON lines when stderr is not a terminal (or ``--log-format json``), readable
console lines on a terminal, and no timestamps under journald: it stamps every
line itself (``JOURNAL_STREAM`` is how systemd tells a service its stderr is
the journal). Lane lines carry ``lane=``: bind it with ``lane_logger(name)``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TextIO

import structlog


class LogFormat(StrEnum):
    """How log records are rendered."""

    AUTO = "auto"
    """``console`` on a terminal, ``json`` otherwise."""
    JSON = "json"
    CONSOLE = "console"


def resolve_format(requested: LogFormat, stream: TextIO, env: Mapping[str, str]) -> LogFormat:
    """Pick the concrete format for ``AUTO`` (pure, for tests)."""
    if requested is not LogFormat.AUTO:
        return requested
    if "JOURNAL_STREAM" in env:
        return LogFormat.JSON
    return LogFormat.CONSOLE if stream.isatty() else LogFormat.JSON


def build_processors(fmt: LogFormat, env: Mapping[str, str]) -> list[structlog.typing.Processor]:
    """The structlog processor chain for ``fmt`` (pure, for tests)."""
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
    ]
    if "JOURNAL_STREAM" not in env:
        processors.append(structlog.processors.TimeStamper(fmt="iso", utc=True))
    processors.append(structlog.processors.format_exc_info)
    if fmt is LogFormat.JSON:
        processors.append(structlog.processors.JSONRenderer(sort_keys=False))
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
    return processors


def configure_logging(
    fmt: LogFormat = LogFormat.AUTO,
    level: str = "info",
    stream: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> LogFormat:
    """Configure structlog for this process; returns the format chosen."""
    out = stream if stream is not None else sys.stderr
    environ = os.environ if env is None else env
    chosen = resolve_format(fmt, out, environ)
    structlog.configure(
        processors=build_processors(chosen, environ),
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
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
