"""The lanes table of ``qwenctl status`` shows why a lane is not serving."""

from __future__ import annotations

from qwend.api.messages import DaemonInfo, LaneInfo, StatusResponse
from qwend.cli.render import render_lanes, render_status


def test_an_internal_error_being_retried_shows_in_the_note() -> None:
    error = "internal error: OSError: [Errno 24] Too many open files: '/proc'"
    lane = LaneInfo("a", "stable", "v3", "starting", True, False, last_error=error)
    assert error in render_lanes([lane])


def test_the_state_reason_comes_before_the_last_error() -> None:
    lane = LaneInfo(
        "a", "stable", "v3", "backoff", True, False, reason="exit 1", last_error="internal"
    )
    assert "exit 1" in render_lanes([lane])


def test_status_quotes_the_log_of_a_lane_that_failed_to_start() -> None:
    lane = LaneInfo(
        "green", "stable", "v3", "failed", False, True, last_exit="exit 1",
        log_tail=("Traceback (most recent call last):", "OSError: model not found"),
    )  # fmt: skip
    daemon = DaemonInfo(version="0", pid=1, started_at=0.0, uptime_s=1.0, config_path="x")
    text = render_status(StatusResponse(daemon=daemon, active={}, lanes=(lane,)))
    assert "last lines of green's log:\n  | Traceback (most recent call last):\n" in text
    assert text.endswith("  | OSError: model not found\n")


def test_a_remote_lane_shows_its_url_instead_of_a_pid() -> None:
    far = LaneInfo("far", "stable", "v3", "ready", False, True, url="http://10.0.0.12:8000")
    near = LaneInfo("near", "stable", "v3", "ready", True, False, pid=4242)
    text = render_lanes([far, near])
    assert "remote http://10.0.0.12:8000" in text and "4242" in text


def test_the_halves_of_a_prefill_decode_pair_show_their_part() -> None:
    p0 = LaneInfo("p0", "pd-prefill", "v3", "ready", True, False, kv_role="prefill")
    whole = LaneInfo("c0", "stable", "v3", "ready", True, False)
    text = render_lanes([p0, whole])
    assert "pd-prefill* [prefill]" in text
    assert "stable* " in text and "stable* [" not in text
