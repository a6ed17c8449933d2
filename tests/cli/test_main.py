"""qwenctl in process against a control app on a real socket: human and --json output."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from qwend.cli.commands import COMMANDS
from qwend.cli.exit import ExitStatus
from qwend.cli.main import build_parser, main
from qwend.control.app import CONTROL_KEY
from qwend.errors import ConfigError, ConfigIssue
from qwend.supervisor.reload import ReloadReport
from tests.support.control_fakes import FakeSupervisor, Served, demo_config, serve_control
from tests.support.paths import NPU_SMI_FIXTURES, REPO

FIXTURES = NPU_SMI_FIXTURES
DEMO = REPO / "qwend" / "demo" / "qwend.toml"


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)

    def lines(self) -> list[object]:
        return [json.loads(line) for line in self.out.splitlines()]


class Capture(io.StringIO):
    """stdout that a test can wait on while qwenctl runs in a thread."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def write(self, s: str) -> int:
        with self.changed:
            n = super().write(s)
            self.changed.notify_all()
        return n


async def qwenctl(srv: Served | None, *argv: str, out: Capture | None = None) -> Run:
    """Run ``qwenctl ARGV`` in a worker thread (it runs its own event loop)."""
    env = {"QWEND_SOCKET": str(srv.path)} if srv else {"QWEND_SOCKET": "/tmp/qwend-none.sock"}
    stdout = out or Capture()
    stderr = io.StringIO()
    code = await asyncio.to_thread(main, list(argv), env, stdout, stderr)
    return Run(code, stdout.getvalue(), stderr.getvalue())


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def header(out: str) -> list[str]:
    return out.splitlines()[0].split()


async def test_status_human_and_json() -> None:
    async with serve_control() as srv:
        human = await qwenctl(srv, "status")
        data = await qwenctl(srv, "status", "--json")
    assert human.code == ExitStatus.OK and human.err == ""
    first = human.out.splitlines()[0]
    assert first.startswith("qwend 0.1.0  pid ") and "config /etc/qwend/qwend.toml" in first
    assert "active: multimodal=multimodal  stable=stable  throughput=throughput" in human.out
    row = next(line for line in human.out.splitlines() if line.startswith("stable "))
    assert row.split()[:4] == ["stable", "stable*", "chunk_v2", "ready"]
    assert "120ms" in row
    assert data.code == ExitStatus.OK
    status = data.json()
    assert isinstance(status, dict)
    assert status["active"]["stable"] == "stable"
    assert status["daemon"]["version"] == "0.1.0"


async def test_lanes_table_is_aligned_and_json_lists_lanes() -> None:
    async with serve_control() as srv:
        human = await qwenctl(srv, "lanes")
        data = await qwenctl(srv, "--json", "lanes")
    lines = human.out.splitlines()
    assert header(human.out)[:4] == ["LANE", "ROLE", "VARIANT", "STATE"]
    col = lines[0].index("STATE")
    assert {line[col : col + 5] for line in lines[1:]} <= {"ready", "stopp"}
    assert len(lines) == 6
    payload = data.json()
    assert isinstance(payload, dict)
    assert [lane["name"] for lane in payload["lanes"]][:2] == ["multimodal", "stable"]


async def test_npus_live_and_parse() -> None:
    class Monitor:
        def view(self) -> list[int]:
            return [0]

    async with serve_control(monitor=Monitor()) as srv:
        live = await qwenctl(srv, "npus")
        live_json = await qwenctl(srv, "npus", "--json")
    assert live.out == "1 NPUs\n"
    assert live_json.json() == {"enabled": True, "view": {"npus": [0]}, "table": "1 NPUs\n"}
    fixture = FIXTURES / "310-info-1chip-idle-npu23.0.0.txt"
    parsed = await qwenctl(None, "npus", "--parse", str(fixture))
    parsed_json = await qwenctl(None, "npus", "--parse", str(fixture), "--json")
    assert parsed.code == ExitStatus.OK
    assert "Health" in parsed.out and "OK" in parsed.out
    data = parsed_json.json()
    assert isinstance(data, dict) and data["form"] == "info"


async def test_npus_parse_of_garbage_quotes_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("dcmi module initialize failed. ret is -8005\n")
    run = await qwenctl(None, "npus", "--parse", str(bad))
    assert run.code == ExitStatus.ERROR
    assert "dcmi module initialize failed" in run.err
    assert run.out == ""


async def test_promote_without_wait_returns_at_once() -> None:
    async with serve_control() as srv:
        human = await qwenctl(srv, "promote", "lane", "stable_green")
        await wait_for(lambda: srv.promoter.running() == ())
        back = await qwenctl(srv, "rollback", "role", "stable", "--json")
        await wait_for(lambda: srv.promoter.running() == ())
    assert human.code == ExitStatus.OK
    assert "stable stable -> stable_green (blue green)" in human.out
    assert "follow it with: qwenctl events" in human.err
    data = back.json()
    assert isinstance(data, dict) and data["to_lane"] == "stable" and data["mode"] == "blue_green"


async def test_promote_wait_prints_progress_and_result() -> None:
    async with serve_control() as srv:
        human = await qwenctl(srv, "promote", "lane", "recurrent_v2", "--wait")
        js = await qwenctl(srv, "rollback", "role", "stable", "--wait", "--json")
    assert human.code == ExitStatus.OK
    lines = human.out.splitlines()
    assert lines[0].endswith("stable stable -> recurrent_v2 (in place)")
    assert any("stable" in ln and "draining" in ln for ln in lines)
    assert lines[-1].startswith("promoted: recurrent_v2 now serves stable")
    assert js.code == ExitStatus.OK
    events = js.lines()
    kinds = [e["kind"] for e in events if isinstance(e, dict)]
    assert kinds[0] == "promotion_accepted" and kinds[-1] == "promotion_result"
    last = events[-1]
    assert isinstance(last, dict) and last["data"]["outcome"] == "promoted"


async def test_promote_crashing_candidate_exits_rolled_back() -> None:
    sup = FakeSupervisor(demo_config(), crashing={"recurrent_v2"})
    async with serve_control(sup) as srv:
        human = await qwenctl(srv, "promote", "lane", "recurrent_v2", "--wait", "--timeout", "3")
    assert human.code == ExitStatus.ROLLED_BACK
    assert "waiting up to 3s" in human.out
    lines = human.out.splitlines()
    result = lines.index("last lines of recurrent_v2's log:") - 1
    assert "rolled back: recurrent_v2 failed (" in lines[result]
    assert lines[result + 2 :] == [f"  | recurrent_v2 line {i}" for i in range(5)]


async def test_conflict_and_not_found_statuses() -> None:
    sup = FakeSupervisor(demo_config())
    sup.ready_gate = asyncio.Event()
    async with serve_control(sup) as srv:
        first = await qwenctl(srv, "promote", "lane", "recurrent_v2")
        conflict = await qwenctl(srv, "promote", "lane", "stable_green", "--wait")
        missing = await qwenctl(srv, "stop", "lane", "nope")
        sup.ready_gate.set()
        await wait_for(lambda: srv.promoter.running() == ())
    assert first.code == ExitStatus.OK
    assert conflict.code == ExitStatus.CONFLICT
    assert "already running" in conflict.err and conflict.out == ""
    assert missing.code == ExitStatus.NOT_FOUND
    assert "no lane named 'nope'" in missing.err


@pytest.mark.parametrize(
    ("action", "lane", "state"),
    [
        ("start", "recurrent_v2", "starting"),
        ("stop", "stable", "stopped"),
        ("restart", "stable", "starting"),
        ("drain", "stable", "draining"),
        ("reset", "stable_green", "starting"),
    ],
)
async def test_lane_actions_human_and_json(action: str, lane: str, state: str) -> None:
    sup = FakeSupervisor(demo_config()).with_state("stable_green", "failed")
    async with serve_control(sup) as srv:
        human = await qwenctl(srv, action, "lane", lane)
        sup.states[lane] = {"reset": "failed"}.get(action, sup.states[lane])
        data = await qwenctl(srv, action, "lane", lane, "--json")
    assert human.code == ExitStatus.OK
    assert human.out.startswith(f"{lane}: {action} -> {state}")
    payload = data.json()
    assert isinstance(payload, dict)
    assert payload["action"] == action and payload["lane"]["state"] == state


async def test_lane_action_error_is_error_status() -> None:
    async with serve_control() as srv:
        run = await qwenctl(srv, "reset", "lane", "stable")
    assert run.code == ExitStatus.ERROR
    assert "not failed; nothing to reset" in run.err


async def test_logs_tail_previous_json_and_follow() -> None:
    async with serve_control() as srv:
        tail = await qwenctl(srv, "logs", "stable", "-n", "2")
        prev = await qwenctl(srv, "logs", "stable", "--previous", "-n", "1", "--json")
        out = Capture()
        follow = asyncio.create_task(qwenctl(srv, "logs", "stable", "-f", "-n", "1", out=out))
        srv.supervisor.follow.put_nowait("fresh")
        await wait_for(lambda: "fresh" in out.getvalue())
        srv.app[CONTROL_KEY].closing.set()
        followed = await follow
    assert tail.out == "stable line 3\nstable line 4\n"
    assert prev.json() == {"lane": "stable", "previous": True, "lines": ["prev stable line 4"]}
    assert followed.code == ExitStatus.OK
    assert followed.out == "stable line 4\nfresh\n"


async def test_logs_follow_json_lines() -> None:
    async with serve_control() as srv:
        out = Capture()
        follow = asyncio.create_task(
            qwenctl(srv, "logs", "stable", "-f", "-n", "0", "--json", out=out)
        )
        srv.supervisor.follow.put_nowait("x")
        await wait_for(lambda: "x" in out.getvalue())
        srv.app[CONTROL_KEY].closing.set()
        run = await follow
    assert run.lines() == [{"lane": "stable", "line": "x"}]


async def test_reload_ok_and_refused() -> None:
    broken = False
    sup = FakeSupervisor(demo_config())

    async def reload_cb() -> ReloadReport:
        if broken:
            raise ConfigError([ConfigIssue("qwend.toml", "router.listen", "bad address")])
        return await sup.reload(sup.config)

    async with serve_control(sup, reload_cb=reload_cb) as srv:
        ok = await qwenctl(srv, "reload")
        ok_json = await qwenctl(srv, "reload", "--json")
        broken = True
        bad = await qwenctl(srv, "reload")
        bad_json = await qwenctl(srv, "reload", "--json")
        status = await qwenctl(srv, "status")
    assert ok.code == ExitStatus.OK
    assert ok.out == "configuration reloaded: 5 unchanged\n"
    ok_data = ok_json.json()
    assert isinstance(ok_data, dict) and ok_data["ok"] is True
    assert bad.code == ExitStatus.ERROR and bad.out == ""
    assert "qwend.toml: router.listen: bad address" in bad.err
    bad_data = bad_json.json()
    assert isinstance(bad_data, dict) and bad_data["errors"][0]["key"] == "router.listen"
    assert bad_json.code == ExitStatus.ERROR
    assert "last reload failed" in status.out


async def _events_run(srv: Served, *argv: str) -> Run:
    out = Capture()
    task = asyncio.create_task(qwenctl(srv, "events", *argv, out=out))
    await wait_for(lambda: srv.supervisor.subscribers == 1)
    await srv.supervisor.stop_lane("throughput")
    await wait_for(lambda: "throughput" in out.getvalue())
    srv.app[CONTROL_KEY].closing.set()
    return await task


async def test_events_human_and_json() -> None:
    async with serve_control() as srv:
        human = await _events_run(srv)
    async with serve_control() as srv:
        js = await _events_run(srv, "--json")
    assert human.code == ExitStatus.OK
    lines = human.out.splitlines()
    assert lines[0] == "connected to qwend 0.1.0"
    assert lines[1].endswith("lane throughput: ready -> stopped")
    kinds = [e["kind"] for e in js.lines() if isinstance(e, dict)]
    assert kinds == ["hello", "lane"]


async def test_check_config_human_and_json(tmp_path: Path) -> None:
    good = await qwenctl(None, "check-config", str(DEMO))
    good_json = await qwenctl(None, "check-config", str(DEMO), "--json")
    (tmp_path / "qwend.toml").write_text("[router]\nlisten = 5\n")
    bad = await qwenctl(None, "check-config", str(tmp_path))
    bad_json = await qwenctl(None, "check-config", str(tmp_path), "--json")
    assert good.code == ExitStatus.OK and good.out
    data = good_json.json()
    assert isinstance(data, dict) and data["ok"] is True and len(data["lanes"]) >= 3
    assert bad.code == 2 and "invalid" in bad.err
    bad_data = bad_json.json()
    assert isinstance(bad_data, dict) and bad_data["ok"] is False and bad_data["errors"]
    assert bad_json.code == 2


async def test_completion_script_is_valid_bash() -> None:
    run = await qwenctl(None, "completion", "bash")
    assert run.code == ExitStatus.OK
    assert "complete -F _qwenctl qwenctl" in run.out
    for command in ("promote", "rollback", "logs", "check-config"):
        assert command in run.out
    subprocess.run(["bash", "-n"], input=run.out, text=True, check=True)


async def test_unreachable_daemon_and_usage() -> None:
    down = await qwenctl(None, "status")
    down_json = await qwenctl(None, "status", "--json")
    usage = await qwenctl(None, "promote", "role", "x")
    assert down.code == down_json.code == ExitStatus.UNREACHABLE
    assert "qwend is not running: no control socket at /tmp/qwend-none.sock" in down.err
    assert down.out == down_json.out == ""
    assert usage.code == ExitStatus.USAGE
    assert "invalid choice: 'role'" in usage.err or usage.err == ""


def test_parser_covers_every_command() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    choices: Sequence[str] = list(sub.choices or [])
    assert sorted(choices) == sorted(COMMANDS)
