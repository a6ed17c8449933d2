"""``qwend-sim ray start --block``: a Ray head (GCS + its own node) or a worker node.

The head listens on ``--node-ip-address:--port`` and keeps the ``ClusterTable`` of
``qwend.sim.raycluster``: workers register and heartbeat, engines ask for placements, a
lost node link is told to every engine. A worker reaches its head (retrying while the head
is not up yet, for ``--ray-connect-timeout-s``), registers, and stays connected; it exits 1
when the head link is lost, as a raylet does when its GCS is gone. Both exit 0 on
SIGTERM/SIGINT. While engine workers are placed on a node, the node shows their HBM on
its NPUs in the fake npu-smi (one record, under the ``ray start`` process's PID).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import time
from pathlib import Path
from typing import Any

from qwend.logs import lane_logger
from qwend.sim import state
from qwend.sim.raycluster import (
    HEAD_KEY,
    MAX_LINE,
    ClusterTable,
    Hosting,
    NodeInfo,
    Place,
    RayNodeSettings,
    Register,
    Registered,
    Reject,
    Send,
)
from qwend.sim.raylink import LinkLost, RayLink, connect

CONNECT_RETRY_S = 0.25
"""A worker's pause between attempts to reach a head that is not listening yet."""

WORKER_PROCESS_NAME = "ray::RayWorkerWrapper"
"""How engine workers show in npu-smi (vLLM's Ray actor class)."""


class NodeRecord:
    """The node's entry in the sim's NPU state: the engine workers placed on it."""

    def __init__(self, settings: RayNodeSettings, state_dir: Path, log: Any) -> None:
        self._settings = settings
        self._dir = state_dir
        self._log = log
        self._started = state.process_start(os.getpid())
        self._record: state.LaneRecord | None = None

    def hosting(self, npus: int) -> None:
        """Show ``npus`` workers on this node's first NPUs (0: none)."""
        self._record = None if npus == 0 else self._make(npus)
        try:
            if self._record is None:
                state.remove_record(self._dir, os.getpid())
            else:
                state.write_record(self._dir, self._record)
        except OSError as exc:
            self._log.warning("cannot write sim state", dir=str(self._dir), error=str(exc))

    def exit(self) -> None:
        """At exit: remove the record, or leave it leaking for ``--leak-npu-memory-s``
        (workers whose HBM the driver has not released yet)."""
        leak = self._settings.leak_npu_memory_s
        try:
            if leak > 0 and self._record is not None:
                state.mark_leaking(self._dir, self._record, leak)
            else:
                state.remove_record(self._dir, os.getpid())
        except OSError as exc:
            self._log.warning("cannot update sim state", dir=str(self._dir), error=str(exc))

    def _make(self, npus: int) -> state.LaneRecord:
        return state.LaneRecord(
            pid=os.getpid(),
            lane=self._settings.name,
            variant="ray",
            npus=self._settings.npus[:npus],
            process_name=WORKER_PROCESS_NAME,
            hbm_mb=state.hbm_mb(1.0, 0, 0),
            aicore_pct=0,
            updated=time.time(),
            started=self._started,
        )


def node_info(settings: RayNodeSettings) -> NodeInfo:
    """This node as it registers (a fresh node id per process, as Ray's)."""
    return NodeInfo(
        node_id=secrets.token_hex(14),
        name=settings.name,
        ip=settings.node_ip,
        npus=len(settings.npus),
        pid=os.getpid(),
        head=settings.head,
    )


async def run_node(settings: RayNodeSettings, state_dir: Path) -> int:
    """Run a head or a worker until SIGTERM/SIGINT or a lost head; the exit status."""
    role = "head" if settings.head else "worker"
    log = lane_logger(settings.name, component=f"sim-ray-{role}", pid=os.getpid())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    record = NodeRecord(settings, state_dir, log)
    if settings.ignored:
        log.info("accepted but not modelled by the sim", flags=list(settings.ignored))
    with contextlib.suppress(OSError):
        state.prune(state_dir)
    try:
        if settings.head:
            return await RayHead(settings, record, log).run(stop)
        return await RayWorker(settings, record, log).run(stop)
    finally:
        record.exit()


class RayHead:
    """The GCS-like server and the head's own node (see module docstring)."""

    def __init__(self, settings: RayNodeSettings, record: NodeRecord, log: Any) -> None:
        self.settings = settings
        self.table = ClusterTable()
        self._record = record
        self._log = log
        self._links: dict[object, RayLink] = {}
        self._stopping = False

    async def run(self, stop: asyncio.Event) -> int:
        s = self.settings
        try:
            server = await asyncio.start_server(
                self._serve_link, s.address.host, s.address.port, limit=MAX_LINE + 2
            )
        except OSError as exc:
            self._log.error(
                "cannot listen for Ray nodes; is another process using the port?",
                address=str(s.address),
                error=str(exc),
            )
            return 1
        self._deliver(self.table.add_node(HEAD_KEY, node_info(s)))
        self._log.info(
            "Ray head started",
            address=str(s.address),
            npus=list(s.npus),
            hint=f"workers: qwend-sim ray start --block --address={s.address}",
        )
        try:
            await stop.wait()
            self._log.info("Ray head stopping", reason="signal")
        finally:
            self._stopping = True
            server.close()
            for link in list(self._links.values()):
                link.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)
        return 0

    def _deliver(self, sends: list[Send]) -> None:
        for send in sends:
            if send.key == HEAD_KEY:
                if isinstance(send.message, Hosting):
                    self._record.hosting(send.message.npus)
                continue
            link = self._links.get(send.key)
            if link is not None:
                link.send(send.message)

    async def _serve_link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = RayLink(reader, writer, self.settings.link)
        key: object = link
        self._links[key] = link
        try:
            try:
                first = await link.receive()
            except LinkLost as exc:
                self._log.warning(
                    "Ray link ended before it said who it is", peer=link.peer, why=str(exc)
                )
                return
            if isinstance(first, Register):
                await self._serve_node(key, link, first)
            elif isinstance(first, Place):
                await self._serve_driver(key, link, first)
            else:
                link.send(Reject(f"expected register or place first, got {type(first).__name__}"))
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
        finally:
            self._links.pop(key, None)
            await link.close()

    async def _serve_node(self, key: object, link: RayLink, message: Register) -> None:
        sends = self.table.add_node(key, message.node)
        refused = next((s.message for s in sends if isinstance(s.message, Reject)), None)
        self._deliver(sends)
        if isinstance(refused, Reject):
            self._log.warning("Ray node refused", node=message.node.describe(), error=refused.error)
            with contextlib.suppress(ConnectionError):
                await link.writer.drain()
            return
        link.start_heartbeat()
        self._log.info(
            "Ray node joined",
            node=message.node.describe(),
            npus=message.node.npus,
            cluster_nodes=len(self.table.nodes),
            cluster_npus=self.table.total,
        )
        why = await self._hold(link)
        if self._stopping:
            return  # the head closed the link itself: nothing died
        self._log.error("Ray node dead", node=message.node.describe(), why=why)
        self._deliver(self.table.remove_node(key, why))

    async def _serve_driver(self, key: object, link: RayLink, message: Place) -> None:
        link.start_heartbeat()
        self._log.info(
            "Ray driver asks for a placement group", driver=message.driver, bundles=message.bundles
        )
        self._deliver(self.table.place(key, message))
        why = await self._hold(link)
        self._log.info("Ray driver gone; its NPUs are free", driver=message.driver, why=why)
        self._deliver(self.table.release(key))

    async def _hold(self, link: RayLink) -> str:
        """Listen until the link is lost (nodes and drivers send nothing but pings)."""
        while True:
            try:
                message = await link.receive()
            except LinkLost as exc:
                return str(exc)
            self._log.warning(
                "unexpected Ray message", peer=link.peer, message=type(message).__name__
            )


class RayWorker:
    """A worker node's link to its head (see module docstring)."""

    def __init__(self, settings: RayNodeSettings, record: NodeRecord, log: Any) -> None:
        self.settings = settings
        self._record = record
        self._log = log

    async def run(self, stop: asyncio.Event) -> int:
        joining = asyncio.create_task(self._join())
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([joining, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not joining.done():
                joining.cancel()
        if stop.is_set():
            with contextlib.suppress(asyncio.CancelledError, LinkLost):
                link = await joining
                await link.close()
            self._log.info("Ray worker stopping", reason="signal")
            return 0
        try:
            link = joining.result()
        except LinkLost as exc:
            self._log.error("cannot join the Ray cluster", error=str(exc))
            return 1
        holding = asyncio.create_task(self._hold(link))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([holding, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (holding, stopping):
                task.cancel()
            await asyncio.gather(holding, stopping, return_exceptions=True)
            await link.close()
        if stop.is_set():
            self._log.info("Ray worker stopping", reason="signal")
            return 0
        why = holding.result() if not holding.cancelled() else "cancelled"
        self._log.error(
            "Ray head lost; exiting (a raylet cannot run without its GCS)",
            head=str(self.settings.address),
            why=why,
        )
        return 1

    async def _join(self) -> RayLink:
        """Reach the head (retrying until the connect timeout) and register."""
        s = self.settings
        deadline = time.monotonic() + s.connect_timeout_s
        last = ""
        while True:
            left = deadline - time.monotonic()
            try:
                link = await connect(
                    s.address, s.link, max(0.1, min(s.link.heartbeat_timeout_s, left))
                )
                break
            except (OSError, TimeoutError) as exc:
                last = str(exc) or type(exc).__name__
            if time.monotonic() >= deadline:
                raise LinkLost(
                    f"no Ray head at {s.address} within {s.connect_timeout_s:g}s ({last});"
                    " is the head running and --address pointing at it?"
                )
            await asyncio.sleep(CONNECT_RETRY_S)
        node = node_info(s)
        link.send(Register(node))
        try:
            answer = await link.receive()
        except LinkLost as exc:
            await link.close()
            raise LinkLost(f"registering with the Ray head at {s.address} failed: {exc}") from None
        if isinstance(answer, Reject):
            await link.close()
            raise LinkLost(f"the Ray head refused this node: {answer.error}")
        if not isinstance(answer, Registered):
            await link.close()
            raise LinkLost(f"the Ray head answered {type(answer).__name__} to the registration")
        link.start_heartbeat()
        self._log.info(
            "Ray worker joined",
            head=str(s.address),
            node=node.describe(),
            npus=list(s.npus),
            cluster_nodes=answer.nodes,
            cluster_npus=answer.npus,
        )
        return link

    async def _hold(self, link: RayLink) -> str:
        """Follow the head's messages until the link is lost; why it was."""
        while True:
            try:
                message = await link.receive()
            except LinkLost as exc:
                return str(exc)
            if isinstance(message, Hosting):
                self._log.info("engine workers on this node", npus=message.npus)
                self._record.hosting(message.npus)
            else:
                self._log.warning("unexpected Ray message", message=type(message).__name__)
