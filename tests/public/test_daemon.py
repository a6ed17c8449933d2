"""Public endpoints served by a real ``qwend`` daemon subprocess."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from qwend.daemon.exit import ExitStatus
from tests.support.daemonproc import add_public, free_port, run_daemon, write_config
from tests.support.lanescripts.factory import make_lane

pytestmark = pytest.mark.slow


async def test_a_public_port_in_use_stops_startup_naming_it(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [make_lane("fast", role="throughput")])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        add_public(
            cfg, {"endpoints": [{"listen": f"127.0.0.1:{port}", "target": "role:throughput"}]}
        )
        async with run_daemon(cfg, wait_ready=False) as d:
            assert await d.wait_exit(30) == ExitStatus.ERROR
    log = d.stderr()
    assert f"cannot listen on 127.0.0.1:{port} for the public endpoint role:throughput" in log
    assert "READY=1" not in d.notifications


async def test_a_missing_keys_file_stops_startup_naming_it(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [make_lane("fast", role="throughput")])
    missing = tmp_path / "no-such-keys"
    add_public(
        cfg,
        {
            "api_keys_file": str(missing),
            "endpoints": [{"listen": f"127.0.0.1:{free_port()}", "target": "router"}],
        },
    )
    async with run_daemon(cfg, wait_ready=False) as d:
        assert await d.wait_exit(30) == ExitStatus.CONFIG
    log = d.stderr()
    assert f"qwend.toml: public.api_keys_file: cannot read the API keys file {missing}" in log
