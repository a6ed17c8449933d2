"""What a peer link costs: status through the local daemon, directly, and forwarded.

Two fresh ``qwend`` daemons on loopback (one lane each, the ``tests/support`` lane
script), peers of each other with a shared token; optionally over HTTPS with client
certificates (``--tls``). Each request kind is sent ``--n`` times in a row on one kept-alive
client, after a warm-up; the table gives the median and p90 in milliseconds and the
median's ratio to the local status:

- ``local status``: node0's ``/v1/status`` on its Unix socket (what ``--local`` costs);
- ``peer status direct``: node1's status on its peer listener (what node0's link does);
- ``forwarded status``: node1's status asked on node0's socket (``qwenctl --host node1``);
- ``cluster view``: ``/v1/cluster`` on node0 (node0's status and node1's, asked at once).

    .venv/bin/python benchmarks/peers.py            # about 30 seconds
    .venv/bin/python benchmarks/peers.py --tls --n 300
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

# The rig (daemons, lanes, certificates) lives with the tests: run from a checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qwend.api.client import ControlClient, PeerTarget
from qwend.cluster.tls import peer_context
from qwend.config.model import PeerConfig
from tests.cluster.peerrig import free_port, host_config, token_file
from tests.daemon.test_remote_tls import Authority
from tests.support.daemonproc import run_daemon
from tests.support.lanescripts.factory import make_lane


async def _time(n: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    for _ in range(max(5, n // 10)):  # warm-up: connections open, caches filled
        await call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000.0)
    return samples


def _p90(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=10)[-1]


async def run(n: int, tls: bool) -> int:
    base = Path(tempfile.mkdtemp(prefix="qwend-peers-bench-"))
    token = token_file(base)
    p0, p1 = free_port(), free_port()
    tls_server: dict[str, str] = {}
    tls_peer: dict[str, str] = {}
    if tls:
        ca = Authority.make(base, "bench")
        server = ca.issue(base, "server", server=True)
        client = ca.issue(base, "client", server=False)
        tls_server = {"tls_cert": str(server.cert), "tls_key": str(server.key),
                      "tls_client_ca": str(ca.path)}  # fmt: skip
        tls_peer = {"tls_ca": str(ca.path), "tls_cert": str(client.cert),
                    "tls_key": str(client.key)}  # fmt: skip
    scheme = "https" if tls else "http"
    cfg0 = host_config(base, "node0", [make_lane("a", npus=(0,))], port=p0, token=token,
                       peers={"node1": p1}, extra_cluster=tls_server, peer_extra=tls_peer,
                       scheme=scheme)  # fmt: skip
    cfg1 = host_config(base, "node1", [make_lane("b", npus=(0,))], port=p1, token=token,
                       peers={"node0": p0}, extra_cluster=tls_server, peer_extra=tls_peer,
                       scheme=scheme)  # fmt: skip
    async with run_daemon(cfg0) as d0, run_daemon(cfg1) as d1:
        await d0.wait_lanes({"a": "ready"})
        await d1.wait_lanes({"b": "ready"})  # node1 serves what is measured below
        config = PeerConfig(
            name="node1",
            url=f"{scheme}://127.0.0.1:{p1}",
            host="127.0.0.1",
            port=p1,
            token_file=token,
            tls_ca=Path(tls_peer["tls_ca"]) if tls else None,
            tls_cert=Path(tls_peer["tls_cert"]) if tls else None,
            tls_key=Path(tls_peer["tls_key"]) if tls else None,
        )
        target = PeerTarget("node1", config.url, token.read_text().strip(), peer_context(config))
        async with contextlib.AsyncExitStack() as stack:
            local = await stack.enter_async_context(ControlClient(d0.control_socket))
            direct = await stack.enter_async_context(ControlClient.for_peer(target))
            forwarded = await stack.enter_async_context(
                ControlClient(d0.control_socket, host="node1")
            )
            rows = [
                ("local status", await _time(n, local.status)),
                ("peer status direct", await _time(n, direct.status)),
                ("forwarded status", await _time(n, forwarded.status)),
                ("cluster view", await _time(n, local.cluster)),
            ]
    baseline = statistics.median(rows[0][1])
    print(f"peer link {'HTTPS + client certificates + token' if tls else 'HTTP + token'},"
          f" n={n} each, milliseconds")  # fmt: skip
    print(f"{'request':<20} {'median':>8} {'p90':>8} {'median / local':>15}")
    for name, samples in rows:
        median = statistics.median(samples)
        print(f"{name:<20} {median:8.2f} {_p90(samples):8.2f} {median / baseline:15.2f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="requests of each kind (200)")
    parser.add_argument("--tls", action="store_true", help="HTTPS with client certificates")
    args = parser.parse_args()
    return asyncio.run(run(args.n, args.tls))


if __name__ == "__main__":
    sys.exit(main())
