"""Several "hosts" on one machine: network namespaces joined by veth pairs (tests as root).

``two_hosts`` joins two namespaces by one veth pair; ``cluster_hosts`` puts any number on a
bridge (in a namespace of its own), so every host reaches every other.

``Hosts`` makes namespaces ``<tag>-h`` (the far host) and ``<tag>-f`` (the front host)
with private 10.x addresses on the veth ends inside them only (the machine's own
namespace gets no address or route), brings loopback up in both, and deletes both at
exit (deleting a namespace deletes the veth ends in it). ``require_netns`` skips with the
reason when the rig cannot be built, or fails when ``QWEND_REQUIRE_NETNS=1`` (CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

REQUIRE_ENV = "QWEND_REQUIRE_NETNS"

HEALTH = {"interval_s": 0.3, "timeout_s": 0.5, "failure_threshold": 2}
"""The ``[lane.health]`` of a lane across a link: quick to notice a pulled cable."""
OUT_WITHIN_S = HEALTH["failure_threshold"] * (HEALTH["interval_s"] + HEALTH["timeout_s"])
"""Probes needed to take a lane out, each at most an interval plus its timeout."""
SLACK_S = 5.0
"""For a loaded 2-core machine: scheduling, not the health logic."""


def require_netns() -> None:
    """Skip (or fail, with ``QWEND_REQUIRE_NETNS=1``) unless namespaces can be made here."""
    why = None
    if os.geteuid() != 0:
        why = "network-namespace tests need root (ip netns add)"
    elif shutil.which("ip") is None:
        why = "network-namespace tests need iproute2's ip (apt-get install iproute2)"
    if why is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{why}; {REQUIRE_ENV}=1 forbids skipping")
    pytest.skip(why)


def ip(*argv: str) -> None:
    """Run ``ip ARGV``; CalledProcessError (with its stderr) when it fails."""
    subprocess.run(["ip", *argv], check=True, capture_output=True, text=True, timeout=30)


@dataclass(frozen=True)
class Hosts:
    """The two namespaces, their veth ends and addresses."""

    far: str
    front: str
    far_if: str
    front_if: str
    far_addr: str
    front_addr: str

    def exec_in(self, namespace: str) -> list[str]:
        """The prefix that runs a command inside ``namespace`` (``ip netns exec`` execs it,
        so the PID is the command's)."""
        return ["ip", "netns", "exec", namespace]

    def far_link(self, up: bool) -> None:
        """Plug or unplug the far host's cable (its veth end up or down)."""
        ip("-n", self.far, "link", "set", self.far_if, "up" if up else "down")


@contextmanager
def two_hosts() -> Iterator[Hosts]:
    """Build the rig; always delete the namespaces at exit."""
    tag = f"qwn{os.getpid() % 100000}"
    subnet = f"10.213.{os.getpid() % 250}"
    hosts = Hosts(
        far=f"{tag}-h",
        front=f"{tag}-f",
        far_if=f"{tag}h",
        front_if=f"{tag}f",
        far_addr=f"{subnet}.1",
        front_addr=f"{subnet}.2",
    )
    with _namespaces((hosts.far, hosts.front)):
        # Created inside the far namespace, so no end ever exists in the machine's own.
        ip("-n", hosts.far, "link", "add", hosts.far_if, "type", "veth",
           "peer", "name", hosts.front_if, "netns", hosts.front)  # fmt: skip
        _address(hosts.far, hosts.far_if, hosts.far_addr)
        _address(hosts.front, hosts.front_if, hosts.front_addr)
        yield hosts


@dataclass(frozen=True)
class Cluster:
    """Several "hosts" on one bridge: a namespace per host, the bridge in one of its own."""

    bridge: str
    """The namespace holding the bridge (no address: it only joins the cables)."""
    names: tuple[str, ...]
    namespace: Mapping[str, str]
    """Host name -> its namespace."""
    interface: Mapping[str, str]
    """Host name -> its end of the cable (inside its namespace)."""
    addr: Mapping[str, str]
    """Host name -> its private address."""

    def exec_in(self, host: str) -> list[str]:
        """The prefix that runs a command on ``host`` (``ip netns exec`` execs it, so the
        PID is the command's)."""
        return ["ip", "netns", "exec", self.namespace[host]]

    def link(self, host: str, *, up: bool) -> None:
        """Plug or unplug ``host``'s cable (its end down: no traffic either way)."""
        ip("-n", self.namespace[host], "link", "set", self.interface[host], "up" if up else "down")


@contextmanager
def cluster_hosts(
    names: Sequence[str], *, prefix: str = "qwc", net: str = "10.214"
) -> Iterator[Cluster]:
    """One namespace per name on a bridge, addresses NET.X.1, .2 ... in ``names`` order
    (X from the PID, as the namespace names ``PREFIX<pid>-i``: suites running side by side
    use prefixes and nets of their own); every namespace is deleted at exit (with the cable
    ends and the bridge in them)."""
    tag = f"{prefix}{os.getpid() % 100000}"
    subnet = f"{net}.{os.getpid() % 250}"
    cluster = Cluster(
        bridge=f"{tag}-br",
        names=tuple(names),
        namespace={name: f"{tag}-{i}" for i, name in enumerate(names)},
        interface={name: f"{tag}h{i}" for i, name in enumerate(names)},
        addr={name: f"{subnet}.{i + 1}" for i, name in enumerate(names)},
    )
    with _namespaces((cluster.bridge, *cluster.namespace.values())):
        ip("-n", cluster.bridge, "link", "add", "br0", "type", "bridge")
        ip("-n", cluster.bridge, "link", "set", "br0", "up")
        for i, name in enumerate(cluster.names):
            ns, dev, port = cluster.namespace[name], cluster.interface[name], f"{tag}b{i}"
            # Created inside the bridge's namespace: no end ever exists in the machine's own.
            ip("-n", cluster.bridge, "link", "add", port, "type", "veth",
               "peer", "name", dev, "netns", ns)  # fmt: skip
            ip("-n", cluster.bridge, "link", "set", port, "master", "br0")
            ip("-n", cluster.bridge, "link", "set", port, "up")
            _address(ns, dev, cluster.addr[name])
        yield cluster


@contextmanager
def _namespaces(names: Sequence[str]) -> Iterator[None]:
    """Make the namespaces (loopback up in each); always delete the ones made at exit."""
    made: list[str] = []
    try:
        for ns in names:
            ip("netns", "add", ns)
            made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        yield
    finally:
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def _address(namespace: str, device: str, address: str) -> None:
    """Give ``device`` in ``namespace`` its /24 address and bring it up."""
    ip("-n", namespace, "addr", "add", f"{address}/24", "dev", device)
    ip("-n", namespace, "link", "set", device, "up")


def namespaces() -> Sequence[str]:
    """The namespaces that exist now (to check the cleanup)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30)
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
