"""``qwenctl events`` across an abrupt daemon exit: says so, reconnects, no traceback.

A real daemon is SIGKILLed under a real ``qwenctl events`` process; a second daemon on
the same configuration comes up and the same qwenctl goes on printing its events.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.support.daemonproc import run_daemon, write_config
from tests.support.polling import DEADLINE_S, until

QWENCTL = [sys.executable, "-c", "import sys; from qwend.cli.main import main; sys.exit(main())"]


class Lines:
    """Everything a stream of a subprocess wrote so far, read by a task."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.text = ""
        self.task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.text += line.decode()


async def test_events_reconnect_after_the_daemon_is_killed(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [])
    async with run_daemon(cfg) as first:
        env = {**os.environ, "QWEND_SOCKET": str(first.control_socket)}
        proc = await asyncio.create_subprocess_exec(
            *QWENCTL, "events", "--json", env=env, stdout=-1, stderr=-1
        )
        assert proc.stdout is not None and proc.stderr is not None
        out, err = Lines(proc.stdout), Lines(proc.stderr)
        try:
            await until(lambda: '"kind": "hello"' in out.text, DEADLINE_S, "first hello")
            first.proc.kill()
            await first.wait_exit(DEADLINE_S)
            await until(lambda: "reconnecting in" in err.text, DEADLINE_S, "reconnect notice")
            assert "lost the connection" in err.text or "closed the event stream" in err.text
            async with run_daemon(cfg) as second:
                await until(lambda: "reconnected to qwend" in err.text, 30, "the reconnection")
                assert f"(pid {second.pid})" in err.text
                await until(lambda: out.text.count('"kind": "hello"') == 2, DEADLINE_S, "hello")
                proc.send_signal(signal.SIGINT)
                code = await asyncio.wait_for(proc.wait(), DEADLINE_S)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await asyncio.gather(out.task, err.task)
    assert code == 0, err.text
    assert "Traceback" not in err.text + out.text
    assert all(line.startswith('{"time": ') for line in out.text.splitlines())
