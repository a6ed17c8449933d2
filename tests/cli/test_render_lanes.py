"""The lanes table of ``qwenctl status`` shows why a lane is not serving."""

from __future__ import annotations

from qwend.api.messages import LaneInfo
from qwend.cli.render import render_lanes


def test_an_internal_error_being_retried_shows_in_the_note() -> None:
    error = "internal error: OSError: [Errno 24] Too many open files: '/proc'"
    lane = LaneInfo("a", "stable", "v3", "starting", True, False, last_error=error)
    assert error in render_lanes([lane])


def test_the_state_reason_comes_before_the_last_error() -> None:
    lane = LaneInfo(
        "a", "stable", "v3", "backoff", True, False, reason="exit 1", last_error="internal"
    )
    assert "exit 1" in render_lanes([lane])
