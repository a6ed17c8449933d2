"""The several-hosts rig itself: every host reaches every other across the bridge, an
unplugged cable cuts exactly that host off, and nothing is left behind."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.netns import Cluster, cluster_hosts, namespaces, require_netns

pytestmark = pytest.mark.netns

PORT = 18299
SERVE = (
    "import socket\n"
    f"s = socket.create_server(('0.0.0.0', {PORT}))\n"
    "print('ready', flush=True)\n"
    "while True:\n"
    "    c, _ = s.accept(); c.sendall(b'hi'); c.close()\n"
)
CONNECT = (
    "import socket, sys\n"
    "try:\n"
    f"    c = socket.create_connection((sys.argv[1], {PORT}), timeout=1.5)\n"
    "    print(c.recv(2).decode())\n"
    "except OSError as e:\n"
    "    print('unreachable', type(e).__name__)\n"
)


def reach(net: Cluster, src: str, dst: str) -> str:
    out = subprocess.run(
        [*net.exec_in(src), sys.executable, "-c", CONNECT, net.addr[dst]],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return out.stdout.split()[0]


def test_hosts_reach_each_other_and_a_pulled_cable_cuts_one_off() -> None:
    require_netns()
    with cluster_hosts(["a", "b", "c"]) as net:
        servers = {
            host: subprocess.Popen(
                [*net.exec_in(host), sys.executable, "-c", SERVE],
                stdout=subprocess.PIPE,
                text=True,
            )
            for host in net.names
        }
        try:
            for proc in servers.values():
                assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            assert {(s, d): reach(net, s, d) for s in net.names for d in net.names if s != d} == {
                (s, d): "hi" for s in net.names for d in net.names if s != d
            }
            net.link("c", up=False)
            assert reach(net, "a", "c") == "unreachable"
            assert reach(net, "c", "b") == "unreachable"
            assert reach(net, "a", "b") == "hi"  # the others still talk
            net.link("c", up=True)
            assert reach(net, "a", "c") == "hi"
        finally:
            for proc in servers.values():
                proc.kill()
                proc.wait(timeout=10)
                if proc.stdout is not None:
                    proc.stdout.close()
        made = {*net.namespace.values(), net.bridge}
    assert not made & set(namespaces())
