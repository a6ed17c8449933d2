"""Two real daemons on loopback, peers of each other over a token-protected TCP listener.

Every host's lanes are seen from either host; an action and a promotion on a peer's lane
go through the local daemon, which forwards them with its own credentials; a hostile
client of the peer listener gets 401/403 (never 5xx); a peer that stops answering is
shown unreachable while the local part still answers at once.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import secrets
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from qwend.api.client import (
    ControlClient,
    PeerRefused,
    PeerTarget,
    PeerUnreachable,
    RemoteError,
)
from qwend.api.messages import ErrorCode, LaneAction
from qwend.cli.exit import ExitStatus
from qwend.cli.main import main as qwenctl
from tests.cluster.peerrig import free_port, host_config, token_file
from tests.support.daemonproc import run_daemon
from tests.support.lanescripts.factory import make_lane
from tests.support.polling import until

QWENCTL = (str(Path(sys.executable).with_name("qwenctl")),)


async def _raw(
    url: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, object]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.request(method, url, headers=headers or {}) as resp,
    ):
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text


def rotate(token: Path) -> str:
    """A new token in ``token``'s file, written aside and renamed over it (as an operator
    or a secrets agent does); returns it."""
    new = secrets.token_hex(32)
    aside = token.with_suffix(".new")
    aside.write_text(new + "\n")
    aside.chmod(0o600)
    aside.replace(token)
    return new


async def _qwenctl(socket: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *QWENCTL, *args, env={**os.environ, "QWEND_SOCKET": str(socket)}, stdout=-1, stderr=-1
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_two_hosts_see_and_drive_each_other(tmp_path: Path) -> None:
    token = token_file(tmp_path)
    p0, p1 = free_port(), free_port()
    cfg0 = host_config(
        tmp_path, "node0", [make_lane("a", npus=(0,))], port=p0, token=token, peers={"node1": p1}
    )
    cfg1 = host_config(
        tmp_path,
        "node1",
        [make_lane("b", npus=(0,)), make_lane("b2", role="b", npus=(1,), standby=True)],
        port=p1,
        token=token,
        peers={"node0": p0},
    )
    async with run_daemon(cfg0) as d0, run_daemon(cfg1) as d1:
        await d0.wait_lanes({"a": "ready"})
        await d1.wait_lanes({"b": "ready"})

        # Every host's lanes, from either host.
        async with d0.client() as c0:
            view = await c0.cluster()
        assert [h.name for h in view.hosts] == ["node0", "node1"]
        assert view.this == "node0" and view.hosts[0].local and not view.hosts[1].local
        assert all(h.reachable and h.status is not None for h in view.hosts)
        lanes = {h.name: {lane.name for lane in h.status.lanes} for h in view.hosts if h.status}
        assert lanes == {"node0": {"a"}, "node1": {"b", "b2"}}

        # An action on a peer's lane through the local daemon (the client has no token).
        async with ControlClient(d0.control_socket, timeout_s=60, host="node1") as remote:
            info = await remote.lane("b2")
            assert info.name == "b2"
            done = await remote.lane_action("b2", LaneAction.START)
            assert done.lane.name == "b2"
            await d1.wait_lanes({"b2": "ready"})
            # A promotion on the peer with qwenctl (HOST/LANE), streamed back as it goes.
            code, out, err = await _qwenctl(
                d0.control_socket, "promote", "lane", "node1/b2", "--wait", "--json"
            )
            assert code == 0, (out, err)
            lines = [json.loads(line) for line in out.splitlines()]
            assert lines[-1]["kind"] == "promotion_result", lines
            assert lines[-1]["data"]["outcome"] == "promoted", lines[-1]
            status = await remote.status()
            assert status.active["b"] == "b2"
            # The peer's own answers keep their meaning: an unknown lane is a 404 there.
            with pytest.raises(RemoteError) as missing:
                await remote.lane("nope")
            assert missing.value.code is ErrorCode.NOT_FOUND
        async with d1.client() as c1:
            assert (await c1.status()).active["b"] == "b2"

        # qwenctl status: every host's lanes with a host column; --local: this host only.
        code, out, err = await _qwenctl(d0.control_socket, "status")
        assert code == 0, err
        rows = {tuple(line.split()[:2]) for line in out.splitlines()}
        assert {("node0", "a"), ("node1", "b"), ("node1", "b2")} <= rows, out
        assert "node1: qwend" in out and "active: b=b2" in out, out
        code, out, err = await _qwenctl(d0.control_socket, "status", "--json")
        assert code == 0, err
        hosts = json.loads(out)["hosts"]
        assert [h["name"] for h in hosts] == ["node0", "node1"], hosts
        assert hosts[1]["status"]["active"] == {"b": "b2"}
        code, out, err = await _qwenctl(d0.control_socket, "status", "--local", "--json")
        assert code == 0, err
        assert [lane["name"] for lane in json.loads(out)["lanes"]] == ["a"]
        # A rollback on the peer with --host.
        code, out, err = await _qwenctl(
            d0.control_socket, "rollback", "role", "b", "--host", "node1", "--wait"
        )
        assert code == 0, (out, err)
        async with d1.client() as c1:
            assert (await c1.status()).active["b"] == "b"

        # A forwarded log follow: lines come through; when the local client leaves, node0
        # closes the link's stream at once and node1 sees its client go.
        async with ControlClient(d0.control_socket, timeout_s=30, host="node1") as remote:
            async for first in remote.follow_logs("b", 5):
                assert first.lane == "b"
                break  # leaving the loop closes the stream
        await until(
            lambda: '"what": "log follow"' in d1.stderr(), timeout=20, what="node1 sees it go"
        )
        # node0 closed the link's stream because its client left (logged before node1 saw it).
        assert '"what": "forwarded stream"' in d0.stderr()

        # No second hop: node0 does not ask node1 to forward again.
        async with ControlClient(d0.control_socket, timeout_s=30, host="node1") as remote:
            remote.host = "node1/hosts/node0"
            with pytest.raises(RemoteError) as hop:
                await remote.status()
        assert hop.value.code is ErrorCode.BAD_REQUEST and "one peer link" in str(hop.value)

        # The shared token rotated: both hosts read it again; the link keeps working.
        rotate(token)
        async with d0.client() as c0:
            assert all(h.reachable for h in (await c0.cluster()).hosts)

        # Unknown peer: a 404 naming the configured ones.
        async with ControlClient(d0.control_socket, timeout_s=60, host="node9") as nowhere:
            with pytest.raises(RemoteError) as unknown:
                await nowhere.status()
        assert unknown.value.code is ErrorCode.NOT_FOUND and "node1" in str(unknown.value)

        # The audit log of node1 names where the promotion came from.
        promote_lines = [
            json.loads(line) for line in d1.stderr().splitlines() if '"action": "promote"' in line
        ]
        assert promote_lines, d1.stderr()[-2000:]
        assert promote_lines[0]["forwarded_by"].startswith("node0 uid="), promote_lines[0]


async def test_hostile_clients_of_the_peer_listener(tmp_path: Path) -> None:
    token = token_file(tmp_path)
    good = token.read_text().strip()
    p0, p1 = free_port(), free_port()
    cfg0 = host_config(
        tmp_path, "node0", [make_lane("a", npus=(0,))], port=p0, token=token, peers={"node1": p1}
    )
    async with run_daemon(cfg0) as d0:
        base = f"http://127.0.0.1:{p0}/v1"
        status, body = await _raw(f"{base}/status")
        assert status == 401 and isinstance(body, dict) and body["code"] == "bad_request", body
        status, body = await _raw(f"{base}/status", {"Authorization": "Bearer " + "x" * 64})
        assert status == 403, body
        status, body = await _raw(f"{base}/status", {"Authorization": "Basic " + good})
        assert status == 403, body
        status, body = await _raw(f"{base}/status", {"Authorization": "Bearer " + good})
        assert status == 200 and isinstance(body, dict) and body["lanes"][0]["name"] == "a"
        auth = {"Authorization": "Bearer " + good}
        # One hop per link: no forwarding and no fan-out through the peer listener.
        for path in ("/hosts/node1/status", "/cluster", "/hosts/node0/lanes/a/stop"):
            method = "POST" if path.endswith("stop") else "GET"
            status, body = await _raw(base + path, auth, method)
            assert status == 403, (path, body)
        # A bad request is still a 4xx there.
        status, body = await _raw(f"{base}/lanes/a/explode", auth, "POST")
        assert 400 <= status < 500, body
        # Refusals are logged once per address, not once per request.
        for _ in range(5):
            await _raw(f"{base}/status")
        log = d0.stderr()
        assert 1 <= log.count("peer request refused") <= 3, log.count("peer request refused")

        # A rotated token is in force at once, without a restart; the old one is refused.
        new = rotate(token)
        status, _ = await _raw(f"{base}/status", auth)
        assert status == 403
        status, _ = await _raw(f"{base}/status", {"Authorization": "Bearer " + new})
        assert status == 200
        # A token file made readable by everyone refuses every peer until it is fixed.
        token.chmod(0o644)
        status, body = await _raw(f"{base}/status", {"Authorization": "Bearer " + new})
        assert status == 403 and "cannot check peer tokens" in str(body), body
        token.chmod(0o600)
        status, _ = await _raw(f"{base}/status", {"Authorization": "Bearer " + new})
        assert status == 200
        good = new

        # Our own client with a wrong token: PeerRefused naming the peer.
        wrong = PeerTarget("node0", f"http://127.0.0.1:{p0}", token="y" * 64)
        async with ControlClient.for_peer(wrong) as client:
            with pytest.raises(PeerRefused) as refused:
                await client.status()
        assert "node0" in str(refused.value)

        # The peer node1 is not running: node0 shows it unreachable, itself at once.
        async with d0.client() as c0:
            started = time.monotonic()
            view = await c0.cluster()
            elapsed = time.monotonic() - started
        node1 = view.host("node1")
        assert node1 is not None and not node1.reachable and node1.status is None
        assert "unreachable" in node1.error and "node1" in node1.error
        assert view.hosts[0].reachable and view.hosts[0].status is not None
        assert elapsed < 3.0, elapsed  # refused at once: no deadline spent
        out = io.StringIO()
        env = {"QWEND_SOCKET": str(d0.control_socket)}
        status = await asyncio.to_thread(qwenctl, ["status"], env, out, io.StringIO())
        assert status == ExitStatus.PEER_UNREACHABLE, out.getvalue()
        assert "node1: unreachable" in out.getvalue()
        local = await asyncio.to_thread(qwenctl, ["status", "--local"], env, out, io.StringIO())
        assert local == ExitStatus.OK
        names = io.StringIO()  # what `qwenctl stop --host <TAB>` offers
        argv = ["completion", "--names", "hosts"]
        assert await asyncio.to_thread(qwenctl, argv, env, names, io.StringIO()) == 0
        assert names.getvalue().split() == ["node1"]
        async with ControlClient(d0.control_socket, timeout_s=60, host="node1") as remote:
            with pytest.raises(RemoteError) as down:
                await remote.status()
        assert down.value.code is ErrorCode.UNAVAILABLE and "node1" in str(down.value)
        unreachable = PeerTarget("node1", f"http://127.0.0.1:{p1}", token=good)
        async with ControlClient.for_peer(unreachable) as client:
            with pytest.raises(PeerUnreachable):
                await client.status()


async def test_a_peer_that_hangs_costs_its_deadline_only(tmp_path: Path) -> None:
    """A peer that accepts and never answers: shown as too slow after the deadline."""
    token = token_file(tmp_path)
    p0 = free_port()
    held: list[asyncio.StreamWriter] = []

    async def accept_and_hang(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        held.append(w)

    hung = await asyncio.start_server(accept_and_hang, "127.0.0.1", 0)
    hung_port = hung.sockets[0].getsockname()[1]
    cfg0 = host_config(
        tmp_path,
        "node0",
        [make_lane("a", npus=(0,))],
        port=p0,
        token=token,
        peers={"node1": hung_port},
    )
    try:
        async with run_daemon(cfg0) as d0, d0.client() as c0:
            started = time.monotonic()
            view = await c0.cluster()
            elapsed = time.monotonic() - started
            node1 = view.host("node1")
            assert node1 is not None and not node1.reachable
            assert "no answer within 2s" in node1.error, node1.error
            assert view.hosts[0].status is not None
            # Bounded by the deadline (2s), with slack for a loaded machine.
            assert elapsed < 10.0, elapsed
    finally:
        for writer in held:
            writer.close()
        hung.close()
        await hung.wait_closed()


async def test_a_peer_that_refuses_our_token_is_named_as_such(tmp_path: Path) -> None:
    token = token_file(tmp_path)
    stale = token_file(tmp_path, "stale.token")  # what node0 still sends node1
    p0, p1 = free_port(), free_port()
    cfg0 = host_config(
        tmp_path,
        "node0",
        [make_lane("a", npus=(0,))],
        port=p0,
        token=token,
        peers={"node1": p1},
        peer_extra={"token_file": str(stale)},
    )
    cfg1 = host_config(
        tmp_path, "node1", [make_lane("b", npus=(0,))], port=p1, token=token, peers={}
    )
    async with run_daemon(cfg0) as d0, run_daemon(cfg1):
        async with d0.client() as c0:
            view = await c0.cluster()
        node1 = view.host("node1")
        assert node1 is not None and not node1.reachable
        assert "peer node1" in node1.error and "token does not match" in node1.error, node1
        async with ControlClient(d0.control_socket, timeout_s=30, host="node1") as remote:
            with pytest.raises(RemoteError) as refused:
                await remote.lane_action("b", LaneAction.DRAIN)
        assert refused.value.code is ErrorCode.UNAVAILABLE
        assert "refused this host's credentials (HTTP 403" in str(refused.value)
        assert "[[peers]] token_file" in str(refused.value)
        # node0's own token file for node1 made unusable: named, and nothing is sent.
        stale.chmod(0o644)
        async with ControlClient(d0.control_socket, timeout_s=30, host="node1") as remote:
            with pytest.raises(RemoteError) as unusable:
                await remote.status()
        assert unusable.value.code is ErrorCode.UNAVAILABLE
        assert "no token to send" in str(unusable.value) and "readable by every user" in str(
            unusable.value
        )
        async with d0.client() as c0:
            node1 = (await c0.cluster()).host("node1")
        assert node1 is not None and "no token to send" in node1.error, node1
