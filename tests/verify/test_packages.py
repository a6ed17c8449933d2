"""Finding a lane's interpreter and reading its backend packages (pure, then a real one)."""

from __future__ import annotations

import asyncio
import importlib.metadata
import subprocess
import sys

import pytest

from qwend.verify.interpreter import lane_packages
from qwend.verify.packages import describe, interpreter, is_python, parse_probe


def test_the_shebang_interpreter_of_a_console_script_is_found() -> None:
    # `transformers serve` started from its virtualenv: argv[0] is the shebang's python.
    lines = [
        ["/bin/sh", "-c", "exec transformers serve"],
        ["/opt/venv/bin/python3", "/opt/venv/bin/transformers", "serve", "m"],
    ]
    assert interpreter(lines) == "/opt/venv/bin/python3"
    assert interpreter([["python3", "-m", "vllm"]]) is None  # relative: the lane's PATH
    assert interpreter([["/usr/local/bin/vllm-server"], []]) is None
    assert is_python("/usr/bin/python3.11") and is_python("/v/bin/python")
    assert not is_python("/usr/bin/python-config") and not is_python("/opt/pythonista")


def test_probe_output_is_parsed_and_described_in_a_stable_order() -> None:
    out = '{"python": "3.11.2", "packages": {"vllm": null, "torch": "2.9.0+cpu", ' \
          '"transformers": "4.57.1"}}\n'  # fmt: skip
    found = parse_probe(out)
    assert found == {"torch": "2.9.0+cpu", "transformers": "4.57.1", "python": "3.11.2"}
    assert describe(found) == "torch 2.9.0+cpu, transformers 4.57.1"
    assert describe({}) == "unknown"
    assert parse_probe("Traceback ...") == {} and parse_probe("") == {} == parse_probe("[1]")


async def test_a_running_python_lane_reports_its_own_packages() -> None:
    """This interpreter, started as a lane would be: its packages are this venv's."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        found = await lane_packages(proc.pid, ("aiohttp", "no-such-package"))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)
    assert found == {
        "aiohttp": importlib.metadata.version("aiohttp"),
        "python": sys.version.split()[0],
        "interpreter": sys.executable,
    }


async def test_no_pid_or_no_python_means_unknown() -> None:
    assert await lane_packages(None) == {}
    proc = await asyncio.create_subprocess_exec("/bin/sleep", "30")
    try:
        assert await lane_packages(proc.pid) == {}
    finally:
        proc.kill()
        await proc.wait()


@pytest.mark.parametrize("pid", [2**22 + 12345])
async def test_a_vanished_lane_is_unknown(pid: int) -> None:
    assert await lane_packages(pid) == {}
