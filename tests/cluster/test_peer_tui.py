"""qwen-tui watching a peer's lanes through the local daemon (``qwen-tui --host NAME``):
the stats and event streams are relayed over the peer link as they come."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from textual.widgets import Static

from qwen_tui.app import QwenTui
from qwend.api.client import ControlClient
from tests.cluster.peerrig import free_port, host_config, token_file
from tests.support.daemonproc import run_daemon
from tests.support.lanescripts.factory import make_lane
from tests.tui.test_app import cell, event_lines, wait_for


async def test_the_dashboard_of_a_peer(tmp_path: Path) -> None:
    token = token_file(tmp_path)
    p0, p1 = free_port(), free_port()
    cfg0 = host_config(
        tmp_path, "node0", [make_lane("a", npus=(0,))], port=p0, token=token, peers={"node1": p1}
    )
    cfg1 = host_config(
        tmp_path, "node1", [make_lane("b", npus=(0,))], port=p1, token=token, peers={}
    )
    async with run_daemon(cfg0) as d0, run_daemon(cfg1) as d1:
        await d1.wait_lanes({"b": "ready"})
        app = QwenTui(
            d0.control_socket,
            refresh_s=0.2,
            client_factory=partial(ControlClient, host="node1"),
        )
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_for(pilot.pause, lambda: cell(app, "b", "state") == "ready", 30)
            await wait_for(pilot.pause, lambda: "connected to qwend" in " ".join(event_lines(app)))
            summary = str(app.dashboard.query_one("#summary", Static).render())
            assert f"pid {d1.pid}" in summary, summary
