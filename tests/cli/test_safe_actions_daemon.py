"""Safe lane actions against a real daemon with real lanes, through the qwenctl process.

The refusal, the drain before a stop and ``--force`` run through the real supervisor.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from qwend.cli.exit import ExitStatus
from tests.support.daemonproc import run_daemon, write_config
from tests.support.lanescripts.factory import make_lane
from tests.support.polling import SLACK_S

QWENCTL = [sys.executable, "-c", "import sys; from qwend.cli.main import main; sys.exit(main())"]


async def qwenctl(socket: Path, *argv: str) -> tuple[int, str, str]:
    env = {**os.environ, "QWEND_SOCKET": str(socket)}
    proc = await asyncio.create_subprocess_exec(*QWENCTL, *argv, env=env, stdout=-1, stderr=-1)
    out, err = await asyncio.wait_for(proc.communicate(), 60 + SLACK_S)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_stop_is_refused_on_the_active_lane_and_drains_a_standby_first(
    tmp_path: Path,
) -> None:
    active = make_lane("a", npus=(0,))
    standby = make_lane("a2", role="a", npus=(1,), standby=True)
    cfg = write_config(tmp_path, [active, standby], drain_timeout_s=2.0)
    async with run_daemon(cfg) as d:
        await d.wait_lanes({"a": "ready"})
        code, _, _ = await qwenctl(d.control_socket, "start", "lane", "a2")
        assert code == ExitStatus.OK
        await d.wait_lanes({"a2": "ready"})

        code, out, err = await qwenctl(d.control_socket, "stop", "lane", "a")
        assert code == ExitStatus.CONFLICT, err
        assert "refusing to stop lane 'a': it is the active lane of role 'a'" in err
        assert "qwenctl promote lane a2" in err and out == ""
        assert (await d.lanes())["a"].state == "ready"

        code, out, err = await qwenctl(d.control_socket, "stop", "lane", "a2")
        assert code == ExitStatus.OK, err
        assert out.startswith("a2: stop -> stopped")

        code, out, err = await qwenctl(d.control_socket, "restart", "lane", "a", "--force")
        assert code == ExitStatus.OK, err
        await d.wait_lanes({"a": "ready"})
    log = d.stderr()
    assert '"action": "lane.stop"' in log and '"force": true' in log
    assert "forced action on an active lane" in log
    assert "draining" in log
