"""Logging: JSON off a TTY, console on one, no timestamps under journald, lane= on lane lines."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
import structlog

from qwend.logs import (
    LogFormat,
    configure_logging,
    get_logger,
    lane_logger,
    resolve_format,
    wants_colour,
)


@pytest.fixture(autouse=True)
def restore_structlog() -> Iterator[None]:
    """These tests configure structlog globally (levels, streams): undo it for later tests."""
    yield
    structlog.reset_defaults()


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_json_off_a_terminal() -> None:
    assert resolve_format(LogFormat.AUTO, io.StringIO(), {}) is LogFormat.JSON


def test_auto_is_console_on_a_terminal() -> None:
    assert resolve_format(LogFormat.AUTO, FakeTty(), {}) is LogFormat.CONSOLE


def test_auto_ignores_a_journal_stream_that_is_not_stderr() -> None:
    """A child whose stderr is a pipe inherits JOURNAL_STREAM, not the journal."""
    assert resolve_format(LogFormat.AUTO, FakeTty(), {"JOURNAL_STREAM": "8:1"}) is LogFormat.CONSOLE
    assert (
        resolve_format(LogFormat.AUTO, io.StringIO(), {"JOURNAL_STREAM": "8:1"}) is LogFormat.JSON
    )


def test_explicit_format_wins() -> None:
    assert resolve_format(LogFormat.CONSOLE, io.StringIO(), {}) is LogFormat.CONSOLE


def test_json_lines_carry_lane_and_timestamp() -> None:
    out = io.StringIO()
    configure_logging(LogFormat.JSON, stream=out, env={})
    lane_logger("stable").info("lane_ready", pid=42)
    record = json.loads(out.getvalue().splitlines()[-1])
    assert record["lane"] == "stable"
    assert record["event"] == "lane_ready"
    assert record["pid"] == 42
    assert record["level"] == "info"
    assert "timestamp" in record


def test_no_timestamp_under_journald() -> None:
    out = io.StringIO()
    configure_logging(LogFormat.JSON, stream=out, env={"JOURNAL_STREAM": "8:1"})
    lane_logger("mm").warning("lane_unhealthy")
    record = json.loads(out.getvalue().splitlines()[-1])
    assert "timestamp" not in record
    assert record["lane"] == "mm"


def test_console_format_is_key_value() -> None:
    out = io.StringIO()
    configure_logging(LogFormat.CONSOLE, stream=out, env={"JOURNAL_STREAM": "8:1"})
    lane_logger("throughput").info("lane_started", port=18087)
    line = out.getvalue().splitlines()[-1]
    assert "lane_started" in line
    assert "lane=throughput" in line
    assert "port=18087" in line


def test_level_filters_lower_records() -> None:
    out = io.StringIO()
    configure_logging(LogFormat.JSON, level="warning", stream=out, env={})
    lane_logger("stable").info("hidden")
    lane_logger("stable").error("shown")
    events = [json.loads(line)["event"] for line in out.getvalue().splitlines()]
    assert events == ["shown"]


def test_loggers_made_before_configuration_honour_it() -> None:
    """Modules make their loggers at import time, before ``configure_logging`` runs."""
    structlog.reset_defaults()
    component = get_logger("router", policy="fair")
    lane = lane_logger("stable")
    out = io.StringIO()
    configure_logging(LogFormat.JSON, stream=out, env={"JOURNAL_STREAM": "8:1"})
    component.info("routed", to="mm")
    lane.warning("slow")
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert records == [
        {"component": "router", "policy": "fair", "to": "mm", "event": "routed", "level": "info"},
        {"lane": "stable", "event": "slow", "level": "warning"},
    ]


def test_a_logger_follows_a_later_reconfiguration() -> None:
    log = get_logger("control")
    first, second = io.StringIO(), io.StringIO()
    configure_logging(LogFormat.JSON, stream=first, env={})
    log.info("control action")
    configure_logging(LogFormat.CONSOLE, level="warning", stream=second, env={})
    log.info("filtered out")
    log.warning("reload refused")
    assert json.loads(first.getvalue())["event"] == "control action"
    assert second.getvalue().count("\n") == 1
    assert "reload refused" in second.getvalue()
    assert "component=control" in second.getvalue()


def test_console_colour_follows_the_terminal_and_no_color() -> None:
    assert wants_colour(FakeTty(), {"TERM": "xterm-256color"})
    assert not wants_colour(FakeTty(), {"NO_COLOR": "1"})
    assert not wants_colour(FakeTty(), {"TERM": "dumb"})
    assert not wants_colour(io.StringIO(), {})


def test_console_tracebacks_are_short_and_show_no_locals() -> None:
    out = FakeTty()
    configure_logging(LogFormat.CONSOLE, stream=out, env={"NO_COLOR": "1"})
    secret_local = "a local value that must not be printed"
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        get_logger("control").exception("control action failed")
    text = out.getvalue()
    assert "RuntimeError: boom" in text
    assert secret_local not in text
    assert "\x1b[" not in text  # NO_COLOR
    assert len(text.splitlines()) < 15


def test_console_and_stdlib_records_share_one_timestamp_format() -> None:
    out = io.StringIO()
    configure_logging(LogFormat.CONSOLE, stream=out, env={})
    get_logger("daemon").warning("from structlog")
    logging.getLogger("aiohttp.server").warning("from logging")
    lines = out.getvalue().splitlines()
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z ")
    assert len(lines) == 2 and all(stamp.match(line) for line in lines), lines
    assert "component=aiohttp.server" in lines[1]
