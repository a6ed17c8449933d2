"""When lanes outlive the daemon, and when a SIGTERM is the first half of a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwend.config.load import load_config
from qwend.daemon.systemd import (
    RESTART_MARKER,
    clear_restart_marker,
    lanes_survive,
    restart_requested,
)
from qwend.errors import ConfigError

SERVICE = {"INVOCATION_ID": "0123abcd", "NOTIFY_SOCKET": "/run/systemd/notify"}


@pytest.mark.parametrize(
    ("setting", "env", "ppid", "expected"),
    [
        (None, SERVICE, 1, True),  # auto: a system service (started by PID 1)
        (None, SERVICE, 4242, False),  # auto: a user manager or a test harness
        (None, {"NOTIFY_SOCKET": "/x"}, 1, False),  # auto: not a unit's invocation
        (None, {}, 4242, False),  # auto: a terminal
        (True, {}, 4242, True),  # forced on
        (False, SERVICE, 1, False),  # forced off
    ],
)
def test_lanes_survive(
    setting: bool | None, env: dict[str, str], ppid: int, expected: bool
) -> None:
    assert lanes_survive(setting, env, ppid) is expected


def test_only_the_stop_helpers_marker_means_restart(tmp_path: Path) -> None:
    env = {"RUNTIME_DIRECTORY": str(tmp_path)}
    assert not restart_requested(env)
    assert not restart_requested({})
    (tmp_path / RESTART_MARKER).touch()
    assert restart_requested(env)
    clear_restart_marker(env)
    assert not restart_requested(env)
    clear_restart_marker(env)  # nothing to clear is fine


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", None), ('lanes_survive_restart = "auto"', None), ("lanes_survive_restart = true", True)],
)
def test_the_setting_parses(tmp_path: Path, text: str, expected: bool | None) -> None:
    (tmp_path / "lanes.d").mkdir()
    (tmp_path / "qwend.toml").write_text(f"[daemon]\n{text}\n")
    config = load_config(tmp_path / "qwend.toml")
    assert config.daemon.lanes_survive_restart is expected


def test_a_wrong_setting_names_the_key_and_the_choices(tmp_path: Path) -> None:
    (tmp_path / "lanes.d").mkdir()
    (tmp_path / "qwend.toml").write_text('[daemon]\nlanes_survive_restart = "yes"\n')
    with pytest.raises(ConfigError, match=r'daemon\.lanes_survive_restart.*true, false or "auto"'):
        load_config(tmp_path / "qwend.toml")
