"""``qwend`` command line and demo wiring, in process (fast)."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from qwend.daemon.demo import Source, demo_environment, demo_path, demo_runtime_dir
from qwend.daemon.exit import ExitStatus
from qwend.daemon.lifecycle import main
from tests.support.daemonproc import write_config
from tests.support.lanescripts.factory import make_lane


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # main() configures structlog for a stream capsys closes afterwards.
    yield
    structlog.reset_defaults()


def test_config_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, [make_lane("a")])
    (tmp_path / "lanes.d" / "a.toml").write_text("[lane]\nname = 1\n")
    assert main(["--config", str(cfg), "--log-format", "json"]) == ExitStatus.CONFIG
    err = capsys.readouterr().err
    assert "configuration error" in err
    assert "a.toml" in err


def test_missing_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(tmp_path / "nope.toml")]) == ExitStatus.CONFIG
    assert "nope.toml" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("qwend ")


def test_demo_source_moves_daemon_paths_to_the_runtime_dir(tmp_path: Path) -> None:
    config = Source(demo_path(), demo_runtime=tmp_path).load()
    assert config.daemon.control_socket == tmp_path / "control.sock"
    assert config.daemon.state_dir == tmp_path / "state"
    assert config.daemon.log_dir == tmp_path / "logs"
    assert len(config.lanes) >= 3
    assert all(lane.command[0] == "qwend-sim" for lane in config.lanes)


def test_demo_environment_puts_the_interpreter_scripts_first(tmp_path: Path) -> None:
    env = demo_environment(tmp_path)
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert env["QWEND_SIM_STATE_DIR"] == str(tmp_path / "sim")


def test_demo_runtime_dir_prefers_xdg(tmp_path: Path) -> None:
    assert demo_runtime_dir({"XDG_RUNTIME_DIR": str(tmp_path)}) == tmp_path / "qwend"
    other = demo_runtime_dir({})
    try:
        assert other.name.startswith("qwend-demo-")
    finally:
        other.rmdir()


def test_busy_router_port_exits_1_with_an_actionable_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = write_config(tmp_path, [make_lane("a")], router_port=port)
        assert main(["--config", str(cfg), "--log-format", "json"]) == ExitStatus.ERROR
    out = capsys.readouterr()
    text = out.err + out.out
    assert f"cannot listen on 127.0.0.1:{port} for the router" in text
    assert "[router] listen" in text


def test_demo_and_config_are_mutually_exclusive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--demo", "--config", str(tmp_path / "qwend.toml")])
    assert exited.value.code == ExitStatus.CONFIG
    assert "argument --config: not allowed with argument --demo" in capsys.readouterr().err


def test_help_lists_check_config_signals_and_exit_statuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "qwend check-config [PATH]" in text
    assert "SIGHUP" in text and "SIGTERM" in text
    assert "2 invalid or missing configuration" in text
