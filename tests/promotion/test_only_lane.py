"""End to end: in-place promotion of a role's only text lane, under load, with a real
qwend and qwend-sim lanes whose backend name differs from the public one.

Nothing else can take the role's traffic while the incumbent stops and the candidate
starts on the same NPU and port: requests wait in the router's admission queue and are
served once the candidate is ready. No request may fail. The lanes are known to clients
as ``qwen`` (and ``gpt-x``) while the sim serves ``Org/Qwen3.5-9B``: every answer must
carry the public name. A candidate that fails to start is rolled back and its own last
words are quoted in the result and in ``qwenctl status``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from pathlib import Path

import openai
import pytest

from qwend.cli.exit import ExitStatus
from qwend.config.model import LaneConfig
from tests.promotion.test_e2e import Load, qwenctl, router_url, sim_lane, status_json
from tests.support.daemonproc import free_port, run_daemon, write_config

pytestmark = pytest.mark.slow

PUBLIC = "qwen"
ALIAS = "gpt-x"


def only_lane_topology(*, crashing_candidate: bool = False) -> list[LaneConfig]:
    """One text role (stable) and its in-place candidate; nothing to spill to."""
    port = free_port()
    extra = ["--fail-startup", "--exit-code", "3"] if crashing_candidate else []
    lanes = [
        sim_lane("stable", "stable", "baseline", 4, port),
        sim_lane("recurrent_v2", "stable", "recurrent_v2", 4, port, standby=True, extra=extra),
    ]
    served = "Org/Qwen3.5-9B"
    renamed = []
    for lane in lanes:
        command = tuple("{served_model}" if arg == lane.model else arg for arg in lane.command)
        renamed.append(
            replace(lane, model=PUBLIC, aliases=(ALIAS,), served_model=served, command=command)
        )
    return renamed


class NamedLoad(Load):
    """``Load`` asking for the public names, checking every answer carries the one asked."""

    async def worker(self, n: int) -> None:
        client = openai.AsyncOpenAI(base_url=self.base_url, api_key="x", max_retries=0)
        try:
            i = 0
            while not self.stop.is_set():
                i += 1
                model = PUBLIC if i % 2 else ALIAS
                try:
                    raw = await client.chat.completions.with_raw_response.create(
                        model=model,
                        messages=[{"role": "user", "content": f"worker {n} request {i}"}],
                        max_tokens=40,
                        timeout=60,
                    )
                    reply = raw.parse()
                except openai.OpenAIError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                if reply.model != model:
                    self.failures.append(f"asked for {model}, answered as {reply.model}")
                self.ok += 1
                self.lanes.append(raw.headers.get("x-qwend-lane", "?"))
        finally:
            await client.close()


async def test_in_place_promotion_of_the_only_lane_fails_no_request(tmp_path: Path) -> None:
    config = write_config(tmp_path / "etc", only_lane_topology())
    async with run_daemon(config) as daemon:
        await daemon.wait_lanes({"stable": "ready"})
        load = NamedLoad(router_url(config), workers=4)
        promote = asyncio.ensure_future(
            qwenctl(daemon.control_socket, "promote", "lane", "recurrent_v2", "--wait")
        )
        code, out, err = await load.run_during(promote, served_by="recurrent_v2")
        assert code == ExitStatus.OK, out + err
        assert "promoted: recurrent_v2 now serves stable" in out
        assert load.failures == [], load.failures[:5]
        before = load.lanes.index("recurrent_v2")
        assert before > 0 and load.lanes[before - 1] == "stable", Counter(load.lanes)
        status = await status_json(daemon.control_socket)
        lanes = {lane["name"]: lane for lane in status["lanes"]}
        assert lanes["stable"]["state"] == "stopped"
        assert lanes["stable"]["last_exit"] == "stopped"  # qwend stopped it: no "signal"


async def test_a_failed_candidate_quotes_its_log(tmp_path: Path) -> None:
    config = write_config(tmp_path / "etc", only_lane_topology(crashing_candidate=True))
    async with run_daemon(config) as daemon:
        await daemon.wait_lanes({"stable": "ready"})
        load = NamedLoad(router_url(config), workers=2)
        promote = asyncio.ensure_future(
            qwenctl(daemon.control_socket, "promote", "lane", "recurrent_v2", "--wait")
        )
        code, out, err = await load.run_during(promote)
        assert code == ExitStatus.ROLLED_BACK, out + err
        assert load.failures == [], load.failures[:5]
        assert "rolled back: recurrent_v2 failed (" in out
        quote = out[out.index("last lines of recurrent_v2's log:") :]
        assert "model load failed (injected fault --fail-startup)" in quote
        code, out, err = await qwenctl(daemon.control_socket, "status")
        assert code == ExitStatus.OK, err
        assert "last lines of recurrent_v2's log:" in out
        assert "injected fault --fail-startup" in out
