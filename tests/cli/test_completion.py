"""Completion scripts generated from the parser: bash, zsh and fish, with live names.

The scripts run in the real shells against a control socket served by the fake
supervisor, so ``qwenctl completion --names`` answers with the configured lanes.
zsh and fish are optional on a developer's machine; ``make completion`` (CI) sets
QWEND_REQUIRE_SHELLS=1 and installs them, so there a missing shell fails.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import pytest

from qwend.cli.completion import FILES, HOSTS, LANES, ROLES, spec
from qwend.cli.main import build_parser
from tests.cli.test_main import qwenctl
from tests.support.control_fakes import Served, serve_control

BIN = Path(sys.executable).parent
"""Where the venv's qwenctl is: the scripts call ``qwenctl completion --names``."""


def need(shell: str) -> str:
    path = shutil.which(shell)
    if path is None:
        if os.environ.get("QWEND_REQUIRE_SHELLS") == "1":
            pytest.fail(f"{shell} is not installed (make completion installs it)")
        pytest.skip(f"{shell} is not installed")
    return path


async def script(shell: str, tmp_path: Path) -> Path:
    run = await qwenctl(None, "completion", shell)
    assert run.code == 0, run.err
    path = tmp_path / f"qwenctl.{shell}"
    path.write_text(run.out)
    return path


async def run_shell(srv: Served, *argv: str) -> str:
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "QWEND_SOCKET": str(srv.path),
        "HOME": str(srv.path.parent),
    }
    proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=-1, stderr=-1)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


BASH_DRIVER = """
source "$1"
shift
COMP_WORDS=("$@")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_qwenctl
printf '%s\\n' "${COMPREPLY[@]}"
"""


async def bash_complete(srv: Served, path: Path, line: str) -> list[str]:
    words = line.split(" ")
    out = await run_shell(srv, need("bash"), "-c", BASH_DRIVER, "bash", str(path), *words)
    return sorted(w for w in out.splitlines() if w)


def test_the_spec_follows_the_parser() -> None:
    completion = spec(build_parser())
    commands = {c.name: c for c in completion.commands}
    assert "completion" in commands and "stop" in commands
    stop = commands["stop"]
    assert stop.positionals[0].values == ("lane",)
    assert stop.positionals[1].complete == LANES
    assert commands["rollback"].positionals[1].complete == ROLES
    assert commands["check-config"].positionals[0].complete == FILES
    assert {"--force", "--now", "--timeout"} <= {f for o in stop.options for f in o.flags}
    assert "--socket" in completion.value_flags and "--json" not in completion.value_flags
    host = next(o for o in stop.options if "--host" in o.flags)
    assert host.complete == HOSTS, "--host completes the daemon's peers"
    init = next(o for o in commands["init"].options if "--host" in o.flags)
    assert init.complete == "", "init --host names a preset's host, not a peer"


async def test_bash_completes_commands_options_and_live_lane_names(tmp_path: Path) -> None:
    path = await script("bash", tmp_path)
    async with serve_control() as srv:
        assert await bash_complete(srv, path, "qwenctl pro") == ["promote"]
        assert await bash_complete(srv, path, "qwenctl promote ") == ["lane"]
        assert await bash_complete(srv, path, "qwenctl promote lane re") == ["recurrent_v2"]
        assert await bash_complete(srv, path, "qwenctl --json stop lane st") == [
            "stable",
            "stable_green",
        ]
        assert await bash_complete(srv, path, "qwenctl rollback role t") == ["throughput"]
        assert await bash_complete(srv, path, "qwenctl stop lane stable --f") == ["--force"]
        assert await bash_complete(srv, path, "qwenctl completion ") == ["bash", "fish", "zsh"]
        assert await bash_complete(srv, path, "qwenctl --socket /x logs mu") == []
        # --host asks the daemon for its peers (none here: nothing, and no error).
        assert "_qwenctl_names hosts" in path.read_text()
        assert await bash_complete(srv, path, "qwenctl stop --host ") == []
        assert await bash_complete(srv, path, "qwenctl init --host ") == []


async def test_fish_completes_commands_and_live_lane_names(tmp_path: Path) -> None:
    fish = need("fish")
    path = await script("fish", tmp_path)

    async def complete(line: str) -> list[str]:
        out = await run_shell(srv, fish, "-c", f"source {path}; complete -C '{line}'")
        return sorted(row.split("\t")[0] for row in out.splitlines() if row)

    async with serve_control() as srv:
        assert "promote" in await complete("qwenctl pro")
        assert await complete("qwenctl promote ") == ["lane"]
        assert await complete("qwenctl promote lane ") == [
            "multimodal",
            "recurrent_v2",
            "stable",
            "stable_green",
            "throughput",
        ]
        assert "--force" in await complete("qwenctl stop lane stable --")
        assert await complete("qwenctl rollback role ") == ["multimodal", "stable", "throughput"]


async def test_zsh_script_parses_and_defines_its_functions(tmp_path: Path) -> None:
    zsh = need("zsh")
    path = await script("zsh", tmp_path)
    async with serve_control() as srv:
        out = await run_shell(
            srv,
            zsh,
            "-c",
            f"autoload -Uz compinit && compinit -u -D && source {path} 2>/dev/null;"
            " whence -w _qwenctl _qwenctl_lanes; qwenctl completion --names lanes",
        )
    assert "_qwenctl: function" in out and "_qwenctl_lanes: function" in out
    assert "recurrent_v2" in out.splitlines()


async def test_names_are_silent_when_the_daemon_is_down() -> None:
    run = await qwenctl(None, "completion", "--names", "lanes")
    assert run.out == ""
    assert run.code == 3
