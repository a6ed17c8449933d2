"""qwenctl's safe actions, timeouts, JSON errors, event timestamps and Ctrl-C.

In process against the control app on a real Unix socket (fake supervisor), or as a real
``qwenctl`` subprocess where the behaviour is about signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

from structlog.testing import capture_logs

from qwend.api.messages import ReloadResponse
from qwend.cli.exit import ExitStatus
from qwend.cli.main import main
from qwend.cli.render import render_reload
from qwend.control.app import CONTROL_KEY
from tests.cli.test_main import Capture, qwenctl, wait_for
from tests.support.control_fakes import FakeSupervisor, demo_config, serve_control
from tests.support.polling import SLACK_S

QWENCTL = [sys.executable, "-c", "import sys; from qwend.cli.main import main; sys.exit(main())"]


async def test_stop_of_a_roles_active_lane_is_refused_without_force_and_says_why() -> None:
    async with serve_control() as srv:
        refused = await qwenctl(srv, "stop", "lane", "stable")
        refused_json = await qwenctl(srv, "restart", "lane", "stable", "--json")
        calls_after_refusal = list(srv.supervisor.calls)
        forced = await qwenctl(srv, "stop", "lane", "stable", "--force")
    assert refused.code == refused_json.code == ExitStatus.CONFLICT
    assert "it is the active lane of role 'stable'" in refused.err
    assert "answer 503" in refused.err and "repeat with --force" in refused.err
    assert "qwenctl promote lane recurrent_v2" in refused.err
    error = refused_json.json()
    assert isinstance(error, dict) and error["error"]["type"] == "conflict"
    assert error["error"]["exit_status"] == ExitStatus.CONFLICT
    assert calls_after_refusal == []
    assert forced.code == ExitStatus.OK
    assert srv.supervisor.calls == [("drain", "stable"), ("stop", "stable")]


async def test_stop_drains_first_and_now_skips_the_drain() -> None:
    sup = FakeSupervisor(demo_config()).with_state("recurrent_v2", "ready")
    async with serve_control(sup) as srv:
        drained = await qwenctl(srv, "stop", "lane", "recurrent_v2")
        srv.supervisor.states["recurrent_v2"] = "ready"
        srv.supervisor.calls.clear()
        at_once = await qwenctl(srv, "restart", "lane", "recurrent_v2", "--now")
    assert drained.code == at_once.code == ExitStatus.OK
    assert srv.supervisor.calls == [("restart", "recurrent_v2")]
    assert drained.out.startswith("recurrent_v2: stop -> stopped")


async def test_a_stopped_active_lane_may_be_restarted_without_force() -> None:
    sup = FakeSupervisor(demo_config()).with_state("stable", "stopped")
    async with serve_control(sup) as srv:
        run = await qwenctl(srv, "restart", "lane", "stable")
    assert run.code == ExitStatus.OK, run.err


@contextlib.asynccontextmanager
async def hung_daemon() -> AsyncIterator[Path]:
    """A control socket that accepts connections and never answers."""
    with tempfile.TemporaryDirectory(prefix="qhd", dir="/tmp") as tmp:
        path = Path(tmp) / "control.sock"
        writers: list[asyncio.StreamWriter] = []

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)

        server = await asyncio.start_unix_server(accept, path=str(path))
        try:
            yield path
        finally:
            server.close()
            for writer in writers:
                writer.transport.abort()


async def test_a_hung_daemon_makes_status_fail_in_seconds_with_exit_8() -> None:
    async with hung_daemon() as path:
        env = {**os.environ, "QWEND_SOCKET": str(path)}
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *QWENCTL, "status", "--json", env=env, stdout=-1, stderr=-1
        )
        out, err = await asyncio.wait_for(proc.communicate(), 5 + SLACK_S)
        elapsed = time.monotonic() - started
    assert proc.returncode == ExitStatus.TIMEOUT, err
    # status asks for every host's view first (/cluster): the daemon's own part included.
    assert b"did not answer GET /cluster within 5s" in err
    assert b'"type": "timeout"' in out
    assert elapsed < 5 + SLACK_S


async def test_timeout_option_sets_the_wait() -> None:
    async with hung_daemon() as path:
        env = {"QWEND_SOCKET": str(path)}
        stdout, stderr = Capture(), Capture()
        code = await asyncio.to_thread(main, ["--timeout", "0.5", "lanes"], env, stdout, stderr)
    assert code == ExitStatus.TIMEOUT
    assert "within 0.5s" in stderr.getvalue()


async def test_remote_errors_are_json_objects_on_stdout_under_json() -> None:
    async with serve_control() as srv:
        missing = await qwenctl(srv, "logs", "nope", "--json")
    assert missing.code == ExitStatus.NOT_FOUND
    error = missing.json()
    assert isinstance(error, dict)
    assert error["error"]["type"] == "not_found"
    assert "no lane named 'nope'" in error["error"]["message"]
    assert "no lane named 'nope'" in missing.err


async def test_usage_errors_under_json_are_json_too() -> None:
    run = await qwenctl(None, "promote", "role", "x", "--json")
    assert run.code == ExitStatus.USAGE
    error = run.json()
    assert isinstance(error, dict) and error["error"]["type"] == "usage"


async def test_event_json_lines_carry_a_timestamp() -> None:
    async with serve_control() as srv:
        out = Capture()
        task = asyncio.create_task(qwenctl(srv, "events", "--json", "--no-reconnect", out=out))
        await wait_for(lambda: srv.supervisor.subscribers == 1)
        await srv.supervisor.stop_lane("throughput")
        await wait_for(lambda: "throughput" in out.getvalue())
        srv.app[CONTROL_KEY].closing.set()
        run = await task
    lines = run.lines()
    assert [line["kind"] for line in lines if isinstance(line, dict)] == ["hello", "lane"]
    for line in lines:
        assert isinstance(line, dict)
        stamp = datetime.fromisoformat(line["time"])
        assert stamp.tzinfo is not None and abs(stamp.timestamp() - time.time()) < 60
    assert "the daemon closed the event stream" in run.err


async def test_ctrl_c_during_promote_wait_says_the_promotion_continues() -> None:
    sup = FakeSupervisor(demo_config())
    sup.ready_gate = asyncio.Event()  # the candidate never gets ready until released
    with capture_logs() as logs:
        async with serve_control(sup) as srv:
            env = {**os.environ, "QWEND_SOCKET": str(srv.path)}
            proc = await asyncio.create_subprocess_exec(
                *QWENCTL, "promote", "lane", "recurrent_v2", "--wait", env=env, stdout=-1, stderr=-1
            )
            assert proc.stdout is not None
            first = await asyncio.wait_for(proc.stdout.readline(), SLACK_S)
            assert b"recurrent_v2" in first
            proc.send_signal(signal.SIGINT)
            _, err = await asyncio.wait_for(proc.communicate(), SLACK_S)
            await wait_for(lambda: any("went away" in e["event"] for e in logs))
            running = srv.promoter.running()
            sup.ready_gate.set()
            await wait_for(lambda: srv.promoter.running() == ())
    assert proc.returncode == 130
    text = err.decode()
    assert "interrupted; the promotion goes on in the daemon" in text
    assert "qwenctl events" in text and "Traceback" not in text
    assert [r.to_lane for r in running] == ["recurrent_v2"]
    gone = [e for e in logs if "went away" in e["event"]]
    assert len(gone) == 1 and gone[0]["log_level"] == "info"
    assert not [e for e in logs if e.get("exc_info") or e["log_level"] in ("error", "critical")]


def test_reload_lists_added_removed_restarted_and_unchanged_lanes() -> None:
    text = render_reload(
        ReloadResponse(
            ok=True,
            restarted=("b",),
            started=("c",),
            stopped=("old",),
            unchanged=("a",),
            added=("c", "spare"),
            removed=("old",),
        )
    )
    assert text == (
        "configuration reloaded: added c, spare; removed old; restarted b; started c; unchanged a\n"
    )
