"""API keys and exposure of the public ports, on a real ``qwend`` daemon with ``qwenctl``.

Regression tests of the fail-open keys: keys turned on (or off) by a reload hold on
every public port at once; a keys file that is empty, malformed or gone is a reload
error that keeps the old keys; a public port off loopback without keys never opens.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import openai
import tomli_w

from qwend.cli.exit import ExitStatus as CliExit
from qwend.daemon.exit import ExitStatus
from tests.support.daemonproc import add_public, free_port, run_daemon, write_config
from tests.support.lanescripts.factory import make_lane

QWENCTL = str(Path(sys.executable).with_name("qwenctl"))
KEY = "sk-daemon-key-1"
NEW_KEY = "sk-daemon-key-2"


async def qwenctl(socket_path: Path, *argv: str) -> tuple[int, str, str]:
    """The installed ``qwenctl`` console script, as an operator runs it."""
    proc = await asyncio.create_subprocess_exec(
        QWENCTL,
        "--socket",
        str(socket_path),
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def answered(url: str, key: str | None) -> int:
    """The HTTP status a chat request with ``key`` gets (the openai package when there is one)."""
    messages: list[Any] = [{"role": "user", "content": "hi"}]
    if key is None:  # the SDK always sends a key: a bare HTTP client sends none
        timeout = aiohttp.ClientTimeout(total=30)
        doc = {"model": "m", "messages": messages, "max_tokens": 4}
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url + "/v1/chat/completions", json=doc) as resp,
        ):
            return resp.status
    c = openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    try:
        await c.chat.completions.create(model="m", messages=messages, max_tokens=4)
    except openai.APIStatusError as exc:
        return exc.status_code
    finally:
        await c.close()
    return 200


async def statuses(urls: list[str], key: str | None) -> list[int]:
    return [await answered(url, key) for url in urls]


def two_ports(cfg: Path, extra: dict[str, Any] | None = None) -> list[str]:
    """Give ``cfg`` a router endpoint and a role:stable endpoint on loopback; their URLs."""
    ports = [free_port(), free_port()]
    add_public(
        cfg,
        {
            **(extra or {}),
            "endpoints": [
                {"listen": f"127.0.0.1:{ports[0]}", "target": "router"},
                {"listen": f"127.0.0.1:{ports[1]}", "target": "role:stable"},
            ],
        },
    )
    return [f"http://127.0.0.1:{port}" for port in ports]


def set_keys_file(cfg: Path, keys: Path | None) -> None:
    doc = tomllib.loads(cfg.read_text())
    doc["public"].pop("api_keys_file", None)
    if keys is not None:
        doc["public"]["api_keys_file"] = str(keys)
    cfg.write_bytes(tomli_w.dumps(doc).encode())


async def test_keys_turned_on_by_reload_hold_on_every_public_port(tmp_path: Path) -> None:
    # Started without keys; each public app once got its own empty key set, so keys
    # added by a reload were logged as loaded and never checked.
    lanes = [
        make_lane("fast", role="throughput", npus=(0,), model="m"),
        make_lane("safe", role="stable", model="m"),
    ]
    cfg = write_config(tmp_path, [lanes[0], replace(lanes[1], npus=(1,))])
    urls = two_ports(cfg)
    keys = tmp_path / "api-keys"
    async with run_daemon(cfg) as d:
        await d.wait_notify(lambda m: m == "STATUS=2/2 lanes ready")
        assert await statuses(urls, None) == [200, 200]

        keys.write_text(f"{KEY}\n")
        set_keys_file(cfg, keys)
        code, out, err = await qwenctl(d.control_socket, "reload")
        assert (code, err) == (0, ""), out
        assert await statuses(urls, None) == [401, 401]
        assert await statuses(urls, "sk-wrong") == [401, 401]
        assert await statuses(urls, KEY) == [200, 200]

        set_keys_file(cfg, None)  # and off again (loopback: allowed without keys)
        code, out, err = await qwenctl(d.control_socket, "reload")
        assert (code, err) == (0, ""), out
        assert await statuses(urls, None) == [200, 200]
    log = d.stderr()
    assert "API keys loaded" in log and "API keys turned off" in log
    assert KEY not in log


async def console_status(url: str, key: str | None) -> int:
    """The status of the console's ``GET /api/targets`` with ``key``."""
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
        session.get(url + "/api/targets", headers=headers) as resp,
    ):
        return resp.status


async def test_a_broken_keys_file_is_a_reload_error_keeping_the_old_keys(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [make_lane("safe", role="stable", model="m")])
    keys = tmp_path / "api-keys"
    keys.write_text(f"# the lab\n{KEY}\n")
    console = f"127.0.0.1:{free_port()}"
    urls = two_ports(cfg, {"console_listen": console, "api_keys_file": str(keys)})
    async with run_daemon(cfg) as d:
        await d.wait_notify(lambda m: m == "STATUS=1/1 lanes ready")
        assert await statuses(urls, KEY) == [200, 200]
        assert await statuses(urls, None) == [401, 401]
        console_url = f"http://{console}"
        assert (
            await console_status(console_url, KEY),
            await console_status(console_url, None),
        ) == (
            200,
            401,
        )

        for breakage, reason in (
            (lambda: keys.write_text("# emptied by mistake\n"), "holds no keys"),
            (lambda: keys.write_text(f"{NEW_KEY} rpm=5\n"), "unknown setting 'rpm'"),
            (keys.unlink, f"cannot read the API keys file {keys}: No such file or directory"),
        ):
            breakage()
            code, out, err = await qwenctl(d.control_socket, "reload")
            assert code == CliExit.ERROR and out == ""
            assert "configuration not reloaded; still running the previous one" in err
            assert reason in err
            assert await statuses(urls, KEY) == [200, 200]  # the old keys stay in force
            assert await statuses(urls, NEW_KEY) == [401, 401]
            code, out, _ = await qwenctl(d.control_socket, "status")
            assert "last reload failed" in out and reason in out

        mark = len(d.notifications)
        d.send(signal.SIGHUP)  # the same through systemctl reload
        await d.wait_notify(lambda m: "reload failed" in m, after=mark)

        keys.write_text(f"{NEW_KEY}\n")
        code, out, err = await qwenctl(d.control_socket, "reload")
        assert (code, err) == (0, "")
        assert await statuses(urls, NEW_KEY) == [200, 200]
        assert await statuses(urls, KEY) == [401, 401]
        # The console follows the same key set: the reload swapped it there too.
        assert await console_status(console_url, NEW_KEY) == 200
        assert await console_status(console_url, KEY) == 401

        d.send(signal.SIGTERM)
        assert await d.wait_exit(30) == ExitStatus.OK
    log = d.stderr()
    assert log.count("web console listening") == 1
    assert KEY not in log and NEW_KEY not in log
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", int(urls[1].rsplit(":", 1)[1]))) != 0


async def test_a_public_port_off_loopback_without_keys_refuses_to_start(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [make_lane("fast", role="throughput", model="m")])
    add_public(cfg, {"endpoints": [{"listen": f"0.0.0.0:{free_port()}", "target": "router"}]})
    async with run_daemon(cfg, wait_ready=False) as d:
        assert await d.wait_exit(30) == ExitStatus.CONFIG
    log = d.stderr()
    assert "qwend.toml: public.endpoints[0].listen: 0.0.0.0:" in log
    assert "is not a loopback address and no API keys are configured" in log
    assert "public.allow_unauthenticated = true" in log
    assert "READY=1" not in d.notifications
