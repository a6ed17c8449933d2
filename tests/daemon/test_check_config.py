"""``qwend check-config``: in-process through main(), and the installed console script."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from qwend.daemon.check_config import main
from qwend.daemon.exit import ExitStatus
from tests.support.config_fixtures import set_key, valid_lanes, valid_main, write_config
from tests.support.paths import REPO

SHIPPED = REPO / "etc" / "qwend" / "qwend.toml"
DEMO = REPO / "etc" / "qwend" / "demo" / "qwend.toml"
QWEND = Path(sys.executable).parent / "qwend"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_valid_config_prints_a_one_screen_summary() -> None:
    status, out, err = run(str(SHIPPED))
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) <= 25  # one screen
    assert lines[0] == f"{SHIPPED}: valid, 5 lanes"
    assert any(line.split() == ["stable", "stable", "baseline", "active", "4", "18084", "text"]
               for line in lines)  # fmt: skip
    assert any(line.split()[:6] == ["recurrent_v2", "stable", "recurrent_v2", "standby", "4",
                                    "18084"] for line in lines)  # fmt: skip
    assert "role stable       active stable; candidates: recurrent_v2 (in place)" in lines
    assert "role throughput   active throughput; candidates: chunk_v2 (blue/green)" in lines
    assert "router   127.0.0.1:18088  policy balanced_long_text, long text >= 32 tokens" in lines
    assert (
        "console  http://127.0.0.1:9105/  images <= 1536 px, history compression on,"
        " same keys as the public ports"
    ) in lines
    assert "127.0.0.1:9102 -> role:multimodal (mm)" in out
    assert "127.0.0.1:9111 -> role:throughput (throughput)" in out
    assert "api keys none: public ports need no key, so they must listen on loopback" in lines


def test_exit_statuses_are_stable() -> None:
    assert [(s.name, int(s)) for s in ExitStatus] == [("OK", 0), ("ERROR", 1), ("CONFIG", 2)]


def test_a_directory_means_its_qwend_toml() -> None:
    status, out, _ = run(str(DEMO.parent))
    assert status == 0 and "qwend-sim npu-smi" in out


def test_invalid_config_lists_every_error_on_stderr(tmp_path: Path) -> None:
    lanes = valid_lanes()
    set_key(lanes["lanes.d/stable.toml"], "lane.npus", ["4a"])
    set_key(lanes["lanes.d/throughput.toml"], "lane.stop", {"signal": "SIGNOPE"})
    main_data = valid_main()
    main_data["router"]["text_policy"] = "fastest"
    path = write_config(tmp_path, main_data, lanes)
    status, out, err = run(str(path))
    assert status == 2 and out == ""
    assert "3 configuration errors:" in err
    assert 'lanes.d/stable.toml: lane.npus[0]: expected an integer 0-63, got "4a"' in err
    assert "lanes.d/throughput.toml: lane.stop.signal:" in err
    assert "qwend.toml: router.text_policy:" in err


def test_missing_file_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    status, out, err = run(str(tmp_path / "nope.toml"))
    assert status == 2 and out == ""
    assert f"{tmp_path / 'nope.toml'} does not exist" in err


def test_empty_lanes_dir_is_valid_and_says_so(tmp_path: Path) -> None:
    path = write_config(tmp_path, valid_main(), {})
    status, out, _ = run(str(path))
    assert status == 0
    assert "no lanes in" in out and "503" in out


def test_usage_error_exits_2() -> None:
    status, _, _ = run("a.toml", "b.toml")
    assert status == 2


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, _ = run("--help")
    assert status == 0
    assert "qwend check-config" in capsys.readouterr().out


@pytest.mark.parametrize("config", [SHIPPED, DEMO], ids=["shipped", "demo"])
def test_console_script_accepts_the_shipped_configs(config: Path) -> None:
    done = subprocess.run(
        [str(QWEND), "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "valid, 5 lanes" in done.stdout and done.stderr == ""


def test_console_script_exits_2_on_a_broken_config(tmp_path: Path) -> None:
    lanes = valid_lanes()
    set_key(lanes["lanes.d/mm.toml"], "lane.port", 18088)  # the router's port
    path = write_config(tmp_path, valid_main(), lanes)
    done = subprocess.run(
        [str(QWEND), "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "lanes.d/mm.toml: lane.port: port 18088 is already used by router.listen" in done.stderr
