"""qwend supervising and routing to a real ``transformers serve`` (tiny random Qwen3.5, CPU).

The daemon is the real one (tests/support/daemonproc.py); the ``stable`` role's lane and
its in-place candidate run the provisioned ``transformers serve``, the other roles are
qwend-sim lanes. Clients are the ``openai`` package through the router's port.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import openai
import psutil
import pytest
import tomli_w

from qwend.config.model import Capabilities, HealthConfig, LaneConfig, StopConfig
from tests.integration.real.backend import PUBLIC_MODEL, tiny_model, transformers_lane
from tests.support.daemonproc import DaemonProc, free_port, run_daemon, write_config
from tests.support.polling import until
from tests.support.simlane import sim_command

pytestmark = [pytest.mark.real, pytest.mark.timeout(900)]


def sim_lane(name: str, role: str, variant: str, npu: int, *, image: bool) -> LaneConfig:
    port = free_port()
    command = sim_command(port, model=PUBLIC_MODEL, variant=variant, lane_name=name)
    command[command.index(str(port))] = "{port}"
    return LaneConfig(
        name=name,
        role=role,
        variant=variant,
        npus=(npu,),
        port=port,
        model=PUBLIC_MODEL,
        command=tuple(command),
        health=HealthConfig(startup_timeout_s=30, interval_s=0.5, timeout_s=2),
        stop=StopConfig(timeout_s=5),
        capabilities=Capabilities(text=not image, image=image),
    )


def topology(*, spill_lane: bool) -> list[LaneConfig]:
    """Real stable lane + real in-place candidate; sim multimodal (and sim throughput)."""
    port = free_port()
    lanes = [
        transformers_lane("stable", "stable", port, npus=(4,)),
        transformers_lane("candidate", "stable", port, npus=(4,), standby=True, variant="next"),
        sim_lane("mm", "multimodal", "baseline", 7, image=True),
    ]
    if spill_lane:
        lanes.append(sim_lane("throughput", "throughput", "v3", 3, image=False))
    return lanes


def router_url(config: Path) -> str:
    return f"http://{tomllib.loads(config.read_text())['router']['listen']}/v1"


def client(config: Path) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=router_url(config), api_key="none", max_retries=0)


@dataclass
class Timings:
    """What the suite measured, printed at the end of each test (pytest -s shows it)."""

    marks: dict[str, float] = field(default_factory=dict)

    def note(self, what: str, seconds: float) -> None:
        self.marks[what] = round(seconds, 2)
        print(f"real-backend timing: {what} = {seconds:.2f} s")


async def _ready(daemon: DaemonProc, lanes: dict[str, str], timings: Timings) -> None:
    started = time.monotonic()
    await daemon.wait_lanes(lanes, timeout=300)
    timings.note("lanes ready after daemon start", time.monotonic() - started)


async def test_chat_streamed_and_not_with_usage_then_stop_leaves_nothing(tmp_path: Path) -> None:
    timings = Timings()
    model = PUBLIC_MODEL
    config = write_config(tmp_path / "etc", topology(spill_lane=False))
    async with run_daemon(config) as daemon:
        await _ready(daemon, {"stable": "ready", "mm": "ready"}, timings)
        async with client(config) as api:
            started = time.monotonic()
            raw = await api.chat.completions.with_raw_response.create(
                model=model,
                messages=[{"role": "user", "content": "hello"}],
                max_tokens=5,
            )
            timings.note("non-streamed completion", time.monotonic() - started)
            assert raw.headers.get("x-qwend-lane") == "stable"
            reply = raw.parse()
            assert reply.model == model
            assert reply.choices[0].message.role == "assistant"
            assert reply.usage is not None
            assert reply.usage.completion_tokens == 5
            assert reply.usage.total_tokens == reply.usage.prompt_tokens + 5

            started = time.monotonic()
            stream = await api.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": "count"}],
                max_tokens=4,
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk async for chunk in stream]
            timings.note("streamed completion", time.monotonic() - started)
            assert chunks and all(c.model == model for c in chunks)
            finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
            assert finishes[-1] == "length"
            usage = [c.usage for c in chunks if c.usage is not None]
            assert usage and usage[-1].completion_tokens == 4

            # The backend knows the model by its path; clients see the public name only.
            assert str(tiny_model()) not in repr(reply) + repr(chunks)
            models = await api.models.list()
            assert [m.id for m in models.data] == [model]
            with pytest.raises(openai.NotFoundError) as unknown:
                await api.chat.completions.create(
                    model=str(tiny_model()),
                    messages=[{"role": "user", "content": "hello"}],
                    max_tokens=1,
                )
            assert model in str(unknown.value)
        # The stream is well formed on the wire: it ends with data: [DONE], which
        # transformers serve leaves out.
        body = await _raw_stream(router_url(config), model)
        assert body.rstrip().endswith("data: [DONE]"), body[-300:]
        lanes = await daemon.lanes()
        pids = {name: info.pid for name, info in lanes.items() if info.pid is not None}
        tree = daemon.descendants()
        assert set(pids) == {"stable", "mm"}
        started = time.monotonic()
        daemon.send(signal.SIGTERM)
        assert await daemon.wait_exit(120) == 0
        timings.note("daemon stop (SIGTERM to exit)", time.monotonic() - started)
    alive = [pid for pid in tree if psutil.pid_exists(pid) and _not_zombie(pid)]
    assert alive == [], f"left running after stop: {alive}"


async def _raw_stream(base_url: str, model: str) -> str:
    request = {
        "model": model,
        "messages": [{"role": "user", "content": "stream"}],
        "max_tokens": 3,
        "stream": True,
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base_url}/chat/completions", json=request) as response,
    ):
        assert response.status == 200
        return await response.text()


def _not_zombie(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


async def test_kill_9_of_the_real_lane_restarts_it(tmp_path: Path) -> None:
    timings = Timings()
    config = write_config(tmp_path / "etc", topology(spill_lane=False))
    async with run_daemon(config) as daemon:
        await _ready(daemon, {"stable": "ready", "mm": "ready"}, timings)
        before = (await daemon.lanes())["stable"]
        assert before.pid is not None
        started = time.monotonic()
        os.kill(before.pid, signal.SIGKILL)

        async def restarted() -> bool:
            info = (await daemon.lanes())["stable"]
            return info.state == "ready" and info.pid not in (None, before.pid)

        deadline = time.monotonic() + 300
        while not await restarted():
            assert time.monotonic() < deadline, (await daemon.lanes())["stable"]
            await asyncio.sleep(0.2)
        timings.note("kill -9 to ready again", time.monotonic() - started)
        async with client(config) as api:
            reply = await api.chat.completions.create(
                model=PUBLIC_MODEL,
                messages=[{"role": "user", "content": "again"}],
                max_tokens=2,
            )
        assert reply.usage is not None and reply.usage.completion_tokens == 2


@pytest.mark.parametrize("spill_lane", [False, True], ids=["only-text-lane", "with-spill-lane"])
async def test_in_place_promotion_to_the_real_candidate_under_load(
    tmp_path: Path, spill_lane: bool
) -> None:
    """Without another text lane requests wait for the candidate; with one they spill."""
    timings = Timings()
    model = PUBLIC_MODEL
    config = write_config(tmp_path / "etc", topology(spill_lane=spill_lane))
    # Requests wait in the router's queue while the candidate starts: give them longer
    # than transformers takes to load here (half a minute on a busy two-core machine).
    doc = tomllib.loads(config.read_text())
    doc["router"]["queue_timeout_s"] = 240
    config.write_bytes(tomli_w.dumps(doc).encode())
    ready = {"stable": "ready", "mm": "ready"} | ({"throughput": "ready"} if spill_lane else {})
    async with run_daemon(config) as daemon:
        await _ready(daemon, ready, timings)
        ok: list[str] = []
        failures: list[str] = []
        stop = asyncio.Event()

        async def worker(n: int) -> None:
            async with client(config) as api:
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        raw = await api.chat.completions.with_raw_response.create(
                            model=model,
                            messages=[{"role": "user", "content": f"worker {n} request {i}"}],
                            # Long text: balanced over stable and throughput.
                            max_tokens=32 if i % 2 else 4,
                            timeout=300,
                        )
                        raw.parse()
                    except openai.OpenAIError as exc:
                        failures.append(f"{type(exc).__name__}: {exc}")
                        continue
                    ok.append(raw.headers.get("x-qwend-lane", "?"))

        workers = [asyncio.create_task(worker(n)) for n in range(3)]
        try:
            await until(lambda: "stable" in ok, 120, "the real lane answered under load")
            before = len(ok)
            started = time.monotonic()
            async with daemon.client() as control:
                await control.promote_nowait("candidate", ready_timeout_s=300)
            infos = await daemon.wait_lanes({"candidate": "ready", "stable": "stopped"}, 300)
            timings.note("in-place promotion to candidate ready", time.monotonic() - started)
            assert infos["candidate"].active
            answered = len(ok)
            await until(
                lambda: "candidate" in ok[answered:], 120, "the promoted real lane answered"
            )
        finally:
            stop.set()
            await asyncio.gather(*workers)
        assert failures == [], failures[:5]
        # Every worker kept a request going across the switch, and each was answered.
        assert len(ok) - before >= 3, ok
        print(
            f"real-backend load ({'spill lane' if spill_lane else 'only text lane'}):"
            f" {len(ok)} answered, {len(failures)} failed during promotion"
        )
