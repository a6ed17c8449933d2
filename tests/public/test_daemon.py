"""Public endpoints served by a real ``qwend`` daemon subprocess."""

from __future__ import annotations

import signal
import socket
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import tomli_w

from qwend.daemon.exit import ExitStatus
from qwend.daemon.listeners import CONSOLE_IGNORED
from tests.support.daemonproc import free_port, run_daemon, write_config
from tests.support.lanescripts.factory import make_lane

pytestmark = pytest.mark.slow

KEY = "sk-daemon-key-1"
NEW_KEY = "sk-daemon-key-2"


def add_public(config: Path, public: dict[str, Any]) -> None:
    """Add a [public] section to a qwend.toml written by ``write_config``."""
    doc = tomllib.loads(config.read_text())
    doc["public"] = public
    config.write_bytes(tomli_w.dumps(doc).encode())


async def chat(url: str, key: str | None) -> tuple[int, str | None, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    doc = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url + "/v1/chat/completions", json=doc, headers=headers) as resp,
    ):
        return resp.status, resp.headers.get("X-Qwend-Lane"), await resp.json()


async def test_public_ports_answer_with_keys_and_reload_them(tmp_path: Path) -> None:
    fast = make_lane("fast", role="throughput", npus=(0,))
    safe = make_lane("safe", role="stable", npus=(1,))
    cfg = write_config(tmp_path, [fast, safe])
    keys = tmp_path / "api-keys"
    keys.write_text(f"# the lab\n{KEY}\n")
    router_port, role_port = free_port(), free_port()
    add_public(
        cfg,
        {
            "console_listen": f"127.0.0.1:{free_port()}",
            "api_keys_file": str(keys),
            "endpoints": [
                {"listen": f"127.0.0.1:{router_port}", "target": "router"},
                {"listen": f"127.0.0.1:{role_port}", "target": "role:stable"},
            ],
        },
    )
    router_url, role_url = f"http://127.0.0.1:{router_port}", f"http://127.0.0.1:{role_port}"
    async with run_daemon(cfg) as d:
        await d.wait_notify(lambda m: m == "STATUS=2/2 lanes ready")
        status, lane, _ = await chat(role_url, KEY)
        assert (status, lane) == (200, "safe")
        status, lane, _ = await chat(router_url, KEY)
        assert (status, lane) == (200, "fast")  # short text: the throughput role
        status, _, doc = await chat(role_url, None)
        assert status == 401 and doc["error"]["code"] == "invalid_api_key"
        assert (await chat(router_url, "sk-wrong"))[0] == 401

        keys.write_text("# emptied by mistake\n")
        mark = len(d.notifications)
        d.send(signal.SIGHUP)
        await d.wait_notify(lambda m: m == "READY=1", after=mark)
        assert (await chat(role_url, KEY))[0] == 200  # broken file: old keys kept
        assert "API keys not reloaded" in d.stderr()

        keys.write_text(f"{NEW_KEY}\n")
        mark = len(d.notifications)
        d.send(signal.SIGHUP)
        await d.wait_notify(lambda m: m == "READY=1", after=mark)
        assert (await chat(role_url, NEW_KEY))[0] == 200
        assert (await chat(role_url, KEY))[0] == 401

        d.send(signal.SIGTERM)
        assert await d.wait_exit(30) == ExitStatus.OK
    log = d.stderr()
    assert log.count(CONSOLE_IGNORED) == 1
    assert KEY not in log and NEW_KEY not in log
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", role_port)) != 0


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
        assert await d.wait_exit(30) == ExitStatus.ERROR
    assert f"cannot read the API keys file {missing}" in d.stderr()
