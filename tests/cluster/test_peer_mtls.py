"""The peer listener with client certificates (mutual TLS), between two real daemons.

node0 listens for peers over HTTPS and requires a client certificate its CA signed (no
token at all); node1 reaches it with such a certificate. A client without one, or with one
another CA signed, never gets an HTTP answer: the handshake fails and the connection closes.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import pytest

from qwend.api.client import ControlClient, PeerError, PeerTarget
from tests.cluster.peerrig import free_port, host_config
from tests.daemon.test_remote_tls import Authority, Pem
from tests.support.daemonproc import run_daemon
from tests.support.lanescripts.factory import make_lane


def _client_context(ca: Path, client: Pem | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    return context


async def _get(url: str, context: ssl.SSLContext) -> int:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(url, ssl=context) as resp,
    ):
        await resp.read()
        return resp.status


async def test_peers_over_mutual_tls(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    ca = Authority.make(pki, "cluster")
    other = Authority.make(pki, "unrelated")
    server = ca.issue(pki, "node0", server=True)
    client = ca.issue(pki, "node1", server=False)
    stranger = other.issue(pki, "stranger", server=False)
    p0 = free_port()
    cfg0 = host_config(
        tmp_path,
        "node0",
        [make_lane("a", npus=(0,))],
        port=p0,
        token=None,
        peers={},
        extra_cluster={
            "tls_cert": str(server.cert),
            "tls_key": str(server.key),
            "tls_client_ca": str(ca.path),
        },
    )
    cfg1 = host_config(
        tmp_path,
        "node1",
        [make_lane("b", npus=(0,))],
        port=free_port(),
        token=None,
        peers={"node0": p0},
        scheme="https",
        extra_cluster={
            "tls_cert": str(server.cert),
            "tls_key": str(server.key),
            "tls_client_ca": str(ca.path),
        },
        peer_extra={
            "tls_ca": str(ca.path),
            "tls_cert": str(client.cert),
            "tls_key": str(client.key),
        },
    )
    async with run_daemon(cfg0) as d0, run_daemon(cfg1) as d1:
        await d0.wait_lanes({"a": "ready"})
        async with d1.client() as c1:
            view = await c1.cluster()
        node0 = view.host("node0")
        assert node0 is not None and node0.reachable, node0
        assert node0.status is not None and [lane.name for lane in node0.status.lanes] == ["a"]
        async with ControlClient(d1.control_socket, timeout_s=30, host="node0") as remote:
            assert (await remote.lane("a")).name == "a"

        url = f"https://127.0.0.1:{p0}/v1/status"
        assert await _get(url, _client_context(ca.path, client)) == 200
        for who in (None, stranger):  # no certificate; one another CA signed
            with pytest.raises((aiohttp.ClientError, ConnectionError)):
                await _get(url, _client_context(ca.path, who))
        # Plain HTTP on the TLS port: no answer either, and nothing breaks.
        with pytest.raises((aiohttp.ClientError, ConnectionError)):
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
                session.get(f"http://127.0.0.1:{p0}/v1/status") as resp,
            ):
                assert resp.status < 500
                await resp.read()
                raise aiohttp.ClientError(f"answered {resp.status}")
        # Our own client without a certificate: a PeerError naming the peer.
        bare = PeerTarget("node0", f"https://127.0.0.1:{p0}", ssl=_client_context(ca.path, None))
        async with ControlClient.for_peer(bare) as c:
            with pytest.raises(PeerError, match="node0"):
                await c.status()
        # The peer listener still serves node1 after all that.
        async with d1.client() as c1:
            view = await c1.cluster()
        assert view.hosts[1].reachable
