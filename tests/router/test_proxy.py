"""The router against in-process fake lanes: proxying, headers, errors, retries."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from qwend.config.model import RouterConfig
from qwend.routing.lanetable import LaneTable
from tests.support.router_fakes import IMAGE_PART, FakeLane, chat, fake_lanes, routable, run_router


async def post(
    url: str, body: object, path: str = "/v1/chat/completions"
) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s, s.post(url + path, json=body) as r:
        return r.status, dict(r.headers), await r.read()


async def test_chat_non_streaming_passes_through() -> None:
    async with fake_lanes(FakeLane("fast")) as (fast,):
        table = LaneTable((routable("fast", fast.url, "throughput"),))
        async with run_router(table) as h:
            status, headers, body = await post(h.url, chat())
    assert status == 200
    assert headers["X-Qwend-Lane"] == "fast" and headers["X-Qwend-Attempts"] == "1"
    assert json.loads(body)["choices"][0]["message"]["content"] == "hello from fast"
    assert fast.bodies[0]["max_tokens"] == 8


async def test_completions_pass_through() -> None:
    async with fake_lanes(FakeLane("fast")) as (fast,):
        table = LaneTable((routable("fast", fast.url, "throughput"),))
        async with run_router(table) as h:
            status, _, body = await post(h.url, {"prompt": "x", "max_tokens": 4}, "/v1/completions")
    assert status == 200 and json.loads(body)["choices"][0]["text"] == "hello from fast"


async def test_stream_is_relayed_chunk_by_chunk() -> None:
    gate = asyncio.Event()
    async with fake_lanes(FakeLane("fast", chunks=3, gate=gate)) as (fast,):
        table = LaneTable((routable("fast", fast.url, "throughput"),))
        async with (
            run_router(table) as h,
            aiohttp.ClientSession() as s,
            s.post(h.url + "/v1/chat/completions", json=chat(stream=True)) as r,
        ):
            assert r.status == 200
            assert r.headers["X-Accel-Buffering"] == "no"
            assert r.headers["Content-Type"].startswith("text/event-stream")
            assert r.headers["X-Qwend-Lane"] == "fast"
            # The lane holds the rest until we saw the first chunk: no buffering.
            first = await asyncio.wait_for(r.content.readuntil(b"\n\n"), 5)
            assert b"fast0" in first
            gate.set()
            rest = await r.read()
    assert rest.endswith(b"data: [DONE]\n\n") and b"fast2" in rest


async def test_upstream_error_status_and_body_preserved() -> None:
    async with fake_lanes(FakeLane("fast", status=404)) as (fast,):
        table = LaneTable((routable("fast", fast.url, "throughput"),))
        async with run_router(table) as h:
            status, headers, body = await post(h.url, chat())
    assert status == 404
    assert json.loads(body)["error"]["message"] == "fast says 404"
    assert headers["X-Qwend-Lane"] == "fast"


async def test_multimodal_goes_to_the_multimodal_lane() -> None:
    async with fake_lanes(FakeLane("mm"), FakeLane("fast"), FakeLane("stable")) as (mm, fast, st):
        table = LaneTable(
            (
                routable("mm", mm.url, "multimodal", image=True),
                routable("stable", st.url, "stable"),
                routable("fast", fast.url, "throughput"),
            )
        )
        async with run_router(table) as h:
            body = chat()
            body["messages"] = [
                {"role": "user", "content": [{"type": "text", "text": "what"}, IMAGE_PART]}
            ]
            status, headers, _ = await post(h.url, body)
            assert status == 200 and headers["X-Qwend-Lane"] == "mm"
            _, headers, _ = await post(h.url, chat(max_tokens=8))
            assert headers["X-Qwend-Lane"] == "fast"


async def test_retry_on_another_lane_before_first_byte() -> None:
    async with fake_lanes(FakeLane("fast", status=503), FakeLane("stable")) as (fast, st):
        table = LaneTable(
            (routable("fast", fast.url, "throughput"), routable("stable", st.url, "stable"))
        )
        async with run_router(table) as h:
            status, headers, _ = await post(h.url, chat(max_tokens=100))
            snap = h.router.stats_snapshot()
    assert status == 200
    assert headers["X-Qwend-Lane"] == "stable" and headers["X-Qwend-Attempts"] == "2"
    assert fast.requests == 1 and st.requests == 1
    assert snap.retries == 1 and snap.lane("fast").retried_away == 1


async def test_retry_after_connection_refused() -> None:
    async with fake_lanes(FakeLane("stable")) as (st,):
        dead = "http://127.0.0.1:1"  # nothing listens on port 1
        table = LaneTable(
            (routable("fast", dead, "throughput"), routable("stable", st.url, "stable"))
        )
        async with run_router(table) as h:
            status, headers, _ = await post(h.url, chat(max_tokens=100))
    assert status == 200 and headers["X-Qwend-Attempts"] == "2"


async def test_never_the_same_lane_twice_and_last_error_returned() -> None:
    async with fake_lanes(FakeLane("fast", status=502), FakeLane("stable", status=503)) as (
        fast,
        st,
    ):
        table = LaneTable(
            (routable("fast", fast.url, "throughput"), routable("stable", st.url, "stable"))
        )
        async with run_router(table, RouterConfig(retry_budget=5)) as h:
            status, headers, body = await post(h.url, chat(max_tokens=100))
    assert fast.requests == 1 and st.requests == 1
    assert status == 503 and headers["X-Qwend-Attempts"] == "2"
    assert "says 503" in json.loads(body)["error"]["message"]
    assert headers["Retry-After"] == "1"


async def test_retry_budget_is_respected() -> None:
    lanes = [FakeLane(f"l{i}", status=502) for i in range(4)]
    async with fake_lanes(*lanes):
        table = LaneTable(tuple(routable(lane.name, lane.url, "general") for lane in lanes))
        async with run_router(table, RouterConfig(retry_budget=1)) as h:
            status, headers, _ = await post(h.url, chat())
    assert status == 502 and headers["X-Qwend-Attempts"] == "2"
    assert sum(lane.requests for lane in lanes) == 2


async def test_mid_stream_death_ends_with_an_error_event() -> None:
    async with fake_lanes(FakeLane("fast", chunks=6, die_after=2), FakeLane("stable")) as (
        fast,
        st,
    ):
        table = LaneTable(
            (routable("fast", fast.url, "throughput"), routable("stable", st.url, "stable"))
        )
        async with run_router(table) as h:
            status, _, body = await post(h.url, chat(stream=True))
            snap = h.router.stats_snapshot()
    assert status == 200
    events = [e for e in body.split(b"\n\n") if e]
    assert b"fast1" in events[1]
    error = json.loads(events[-1].removeprefix(b"data: "))
    assert error["error"]["type"] == "server_error" and "mid-stream" in error["error"]["message"]
    assert st.requests == 0  # never replayed
    assert snap.mid_stream_errors == 1 and snap.lane("fast").mid_stream_errors == 1
    assert snap.in_flight == 0


async def test_no_lanes_configured() -> None:
    async with run_router(LaneTable()) as h:
        status, headers, body = await post(h.url, chat())
    assert status == 503 and headers["Retry-After"]
    assert (
        "no lanes configured yet; add one in /etc/qwend/lanes.d"
        in json.loads(body)["error"]["message"]
    )


async def test_no_image_lane_is_a_clear_503() -> None:
    async with fake_lanes(FakeLane("fast")) as (fast,):
        table = LaneTable((routable("fast", fast.url, "throughput"),))
        async with run_router(table) as h:
            body = chat()
            body["messages"] = [{"role": "user", "content": [IMAGE_PART]}]
            status, headers, data = await post(h.url, body)
    assert status == 503 and "Retry-After" in headers
    assert "image" in json.loads(data)["error"]["message"]
    assert fast.requests == 0


async def test_bad_requests_are_openai_400s() -> None:
    async with fake_lanes(FakeLane("fast")) as (fast,):
        table = LaneTable((routable("fast", fast.url, "throughput"),))
        async with run_router(table) as h, aiohttp.ClientSession() as s:
            cases: list[bytes] = [
                b"{not json",
                b"[1, 2]",
                b'{"model": "m"}',
                b'{"messages": [{"role": "user", "content": 5}]}',
                b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": "many"}',
                b"\xff\xfe",
            ]
            for raw in cases:
                async with s.post(h.url + "/v1/chat/completions", data=raw) as r:
                    assert r.status == 400, raw
                    doc = await r.json()
                    assert doc["error"]["type"] == "invalid_request_error"
            async with s.post(h.url + "/v1/completions", data=b'{"prompt": 3}') as r:
                assert r.status == 400 and (await r.json())["error"]["param"] == "prompt"
            assert h.router.stats_snapshot().bad_requests == len(cases) + 1
    assert fast.requests == 0


async def test_draining_lane_gets_no_new_requests_but_finishes() -> None:
    gate = asyncio.Event()
    async with fake_lanes(FakeLane("fast", chunks=2, gate=gate), FakeLane("stable")) as (fast, st):
        lanes = (routable("fast", fast.url, "throughput"), routable("stable", st.url, "stable"))
        table = LaneTable(lanes)
        async with run_router(table) as h, aiohttp.ClientSession() as s:
            async with s.post(h.url + "/v1/chat/completions", json=chat(stream=True)) as r:
                await r.content.readuntil(b"\n\n")
                assert h.router.in_flight("fast") == 1
                table.replace((routable("fast", fast.url, "throughput", accepting=False), lanes[1]))
                _, headers, _ = await post(h.url, chat())
                assert headers["X-Qwend-Lane"] == "stable"
                drained = asyncio.create_task(h.router.wait_drained("fast", 5))
                await asyncio.sleep(0)  # one loop turn, not a wait: the task is now waiting
                assert not drained.done()
                gate.set()
                assert (await r.read()).endswith(b"[DONE]\n\n")
            assert await drained
            assert await h.router.wait_drained("fast", 0.01)
            assert h.router.in_flight("fast") == 0 and h.router.in_flight("nope") == 0
