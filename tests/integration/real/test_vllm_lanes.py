"""qwend in front of vLLM's OpenAI server for the CPU (tiny Qwen3): ``make real-vllm``.

Slower than the transformers suite (vLLM takes minutes to start on two cores), so it has
a marker of its own and CI leaves it out; the same client-side checks as there.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import openai
import psutil
import pytest

from tests.integration.real.backend import PUBLIC_MODEL, vllm_lane
from tests.integration.real.test_real_lanes import _raw_stream, client, router_url, sim_lane
from tests.support.daemonproc import free_port, run_daemon, write_config

pytestmark = [pytest.mark.real, pytest.mark.real_vllm, pytest.mark.timeout(1500)]


async def test_vllm_lane_through_qwend(tmp_path: Path) -> None:
    lanes = [
        vllm_lane("stable", "stable", free_port()),
        sim_lane("mm", "multimodal", "baseline", 7, image=True),
    ]
    config = write_config(tmp_path / "etc", lanes)
    async with run_daemon(config) as daemon:
        started = time.monotonic()
        await daemon.wait_lanes({"stable": "ready", "mm": "ready"}, timeout=900)
        print(f"real-backend timing: vLLM lane ready = {time.monotonic() - started:.1f} s")
        async with client(config) as api:
            reply = await api.chat.completions.create(
                model=PUBLIC_MODEL, messages=[{"role": "user", "content": "hello"}], max_tokens=4
            )
            assert reply.model == PUBLIC_MODEL
            assert reply.usage is not None and reply.usage.completion_tokens == 4
            stream = await api.chat.completions.create(
                model=PUBLIC_MODEL,
                messages=[{"role": "user", "content": "count"}],
                max_tokens=3,
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk async for chunk in stream]
            assert all(c.model == PUBLIC_MODEL for c in chunks)
            usage = [c.usage for c in chunks if c.usage is not None]
            assert usage and usage[-1].completion_tokens == 3
            models = await api.models.list()
            assert [m.id for m in models.data] == [PUBLIC_MODEL]
            with pytest.raises(openai.NotFoundError):
                await api.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "x"}], max_tokens=1
                )
        body = await _raw_stream(router_url(config), PUBLIC_MODEL)
        assert body.rstrip().endswith("data: [DONE]")
        tree = daemon.descendants()
        assert len(tree) >= 3  # vLLM's API server, engine core and worker, besides the sim
        daemon.send(signal.SIGTERM)
        assert await daemon.wait_exit(180) == 0
    alive = [p for p in tree if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert alive == [], f"left running after stop: {alive}"
