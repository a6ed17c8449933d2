"""Public endpoints in front of the router (fake lanes): role pinning, passthrough, limits."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import aiohttp

from qwend.config.model import ListenAddress, PublicEndpoint
from qwend.public.app import MAX_BODY_BYTES, make_public_app
from qwend.public.keys import ApiKeys
from qwend.routing.lanetable import LaneTable, RoutableLane
from tests.support.polling import until
from tests.support.router_fakes import (
    IMAGE_PART,
    FakeLane,
    RouterHandle,
    chat,
    fake_lanes,
    routable,
    run_router,
)
from tests.support.router_fakes import serve as serve_app


@dataclass
class Stack:
    """Fake seed lanes, a running router and one public endpoint URL per target."""

    lanes: dict[str, FakeLane]
    table: LaneTable
    router: RouterHandle
    urls: dict[str, str]

    def seed(self, **accepting: bool) -> tuple[RoutableLane, ...]:
        """The seed topology's routable lanes (mm image-only, as shipped)."""
        lanes = self.lanes
        return (
            replace(routable("mm", lanes["mm"].url, "multimodal", image=True, text=False,
                             accepting=accepting.get("mm", True)), aliases=("vision",)),
            routable("stable", lanes["stable"].url, "stable",
                     accepting=accepting.get("stable", True)),
            routable("throughput", lanes["throughput"].url, "throughput",
                     accepting=accepting.get("throughput", True)),
            RoutableLane("chunk_v2", "throughput", "chunk_v2", lanes["chunk_v2"].url,
                         True, False, False, False, "model-chunk_v2"),
        )  # fmt: skip


@contextlib.asynccontextmanager
async def stack(
    targets: tuple[str, ...] = ("router", "role:multimodal", "role:throughput"),
    keys: ApiKeys | None = None,
    max_body: int = MAX_BODY_BYTES,
) -> AsyncIterator[Stack]:
    names = ("mm", "stable", "throughput", "chunk_v2")
    async with fake_lanes(*(FakeLane(n) for n in names)) as fakes:
        lanes = dict(zip(names, fakes, strict=True))
        table = LaneTable()
        async with run_router(table) as handle, contextlib.AsyncExitStack() as apps:
            urls = {}
            for target in targets:
                endpoint = PublicEndpoint(ListenAddress("127.0.0.1", 0), target)
                app = make_public_app(endpoint, handle.router, keys, max_body=max_body)
                urls[target] = await apps.enter_async_context(serve_app(app))
            s = Stack(lanes, table, handle, urls)
            table.replace(s.seed())
            yield s


async def post(
    session: aiohttp.ClientSession, url: str, doc: object
) -> tuple[int, dict[str, str], dict[str, object]]:
    async with session.post(url + "/v1/chat/completions", json=doc) as resp:
        return resp.status, dict(resp.headers), await resp.json()


def image_chat(max_tokens: int = 8) -> dict[str, object]:
    content = [{"type": "text", "text": "what is this"}, IMAGE_PART]
    return {"model": "m", "messages": [{"role": "user", "content": content}],
            "max_tokens": max_tokens}  # fmt: skip


async def test_router_target_routes_like_the_router() -> None:
    async with stack() as s, aiohttp.ClientSession() as session:
        url = s.urls["router"]
        status, headers, doc = await post(session, url, chat("hi", max_tokens=8))
        assert status == 200
        assert headers["X-Qwend-Lane"] == "throughput"  # short text: the throughput lane
        assert doc["choices"][0]["message"]["content"] == "hello from throughput"  # type: ignore[index]
        status, headers, _ = await post(session, url, image_chat())
        assert (status, headers["X-Qwend-Lane"]) == (200, "mm")
        long_lanes = {
            (await post(session, url, chat("x", max_tokens=64)))[1]["X-Qwend-Lane"]
            for _ in range(4)
        }
        assert "mm" not in long_lanes
        # In process: the router's own counters saw the public requests.
        assert s.router.router.stats_snapshot().requests == 6


async def test_text_to_the_multimodal_role_reaches_the_mm_lane() -> None:
    async with stack() as s, aiohttp.ClientSession() as session:
        for max_tokens in (8, 64):
            status, headers, doc = await post(
                session, s.urls["role:multimodal"], chat("plain text", max_tokens=max_tokens)
            )
            assert status == 200, doc
            assert headers["X-Qwend-Lane"] == "mm"
        assert s.lanes["mm"].requests == 2
        assert s.lanes["stable"].requests == s.lanes["throughput"].requests == 0


async def test_throughput_role_takes_everything_and_never_spills() -> None:
    async with stack() as s, aiohttp.ClientSession() as session:
        url = s.urls["role:throughput"]
        s.lanes["throughput"].delay_s = 0.05  # keep them overlapping
        results = await asyncio.gather(
            *(post(session, url, chat("hi", max_tokens=8)) for _ in range(6)),
            post(session, url, image_chat()),
        )
        assert {r[0] for r in results} == {200}
        assert {r[1]["X-Qwend-Lane"] for r in results} == {"throughput"}
        assert s.lanes["stable"].requests == s.lanes["mm"].requests == 0
        assert s.lanes["chunk_v2"].requests == 0  # standby of the same role


async def test_draining_role_lane_is_503_with_retry_after_while_the_router_serves() -> None:
    async with stack() as s, aiohttp.ClientSession() as session:
        s.table.replace(s.seed(throughput=False))
        status, headers, doc = await post(session, s.urls["role:throughput"], chat("hi"))
        assert status == 503
        assert headers["Retry-After"] == "5"
        error = doc["error"]
        assert isinstance(error, dict)
        assert error["code"] == "no_lane_available"
        assert "role 'throughput'" in error["message"]
        assert "throughput: not accepting" in error["message"]
        # The router target still has the stable lane for text.
        status, headers, _ = await post(session, s.urls["router"], chat("hi"))
        assert (status, headers["X-Qwend-Lane"]) == (200, "stable")
        async with session.get(s.urls["role:throughput"] + "/health") as resp:
            assert resp.status == 503
            assert await resp.json() == {
                "status": "no_lane_available",
                "target": "role:throughput",
                "lanes": {"throughput": False, "chunk_v2": False},
            }
        s.table.replace(s.seed())  # ready again: served again
        status, headers, _ = await post(session, s.urls["role:throughput"], chat("hi"))
        assert (status, headers["X-Qwend-Lane"]) == (200, "throughput")


async def test_busy_role_lane_queues_in_the_router() -> None:
    async with stack(targets=("role:multimodal",)) as s, aiohttp.ClientSession() as session:
        s.router.router.apply_config(
            type(s.router.router.config)(max_in_flight_per_lane=1)  # one slot on mm
        )
        gate = asyncio.Event()
        s.lanes["mm"].gate = gate
        s.lanes["mm"].chunks = 2
        url = s.urls["role:multimodal"]
        first = asyncio.create_task(post_stream(session, url))
        await s.lanes["mm"].started.wait()
        second = asyncio.create_task(post(session, url, chat("queued")))
        await until(lambda: s.router.queued == 1, what="the second request queued")
        gate.set()
        lane, text = await first
        assert lane == "mm" and text == "mm0 mm1 "
        status, headers, _ = await second
        assert (status, headers["X-Qwend-Lane"]) == (200, "mm")
        assert s.lanes["stable"].requests == s.lanes["throughput"].requests == 0


async def post_stream(session: aiohttp.ClientSession, url: str) -> tuple[str, str]:
    doc = chat("stream me", stream=True)
    async with session.post(url + "/v1/chat/completions", json=doc) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        text = ""
        async for line in resp.content:
            if line.startswith(b"data: {"):
                chunk = json.loads(line[6:])
                text += chunk["choices"][0]["delta"]["content"]
        return resp.headers["X-Qwend-Lane"], text


async def test_streaming_through_a_role_endpoint() -> None:
    async with stack() as s, aiohttp.ClientSession() as session:
        lane, text = await post_stream(session, s.urls["role:throughput"])
        assert lane == "throughput"
        assert text == "throughput0 throughput1 throughput2 throughput3 "


async def test_models_and_health_are_per_target() -> None:
    async with stack() as s, aiohttp.ClientSession() as session:
        async with session.get(s.urls["role:multimodal"] + "/v1/models") as resp:
            ids = [m["id"] for m in (await resp.json())["data"]]
        assert ids == ["m", "vision"]  # the multimodal lane's names only
        async with session.get(s.urls["role:throughput"] + "/v1/models/vision") as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["code"] == "model_not_found"
        async with session.get(s.urls["router"] + "/v1/models") as resp:
            ids = sorted(m["id"] for m in (await resp.json())["data"])
        assert ids == ["m", "vision"]  # no standby: chunk_v2's model is not served yet
        async with session.get(s.urls["role:throughput"] + "/health") as resp:
            assert resp.status == 200
            doc = await resp.json()
        assert doc["lanes"] == {"throughput": True, "chunk_v2": False}
        async with session.get(s.urls["router"] + "/health") as resp:
            assert resp.status == 200
            assert (await resp.json())["target"] == "router"


async def test_body_limit_is_413_openai_style() -> None:
    limit = 64 * 1024
    async with stack(max_body=limit) as s, aiohttp.ClientSession() as session:
        url = s.urls["router"]
        fits = chat("a" * (limit - 1024))
        status, _, _ = await post(session, url, fits)
        assert status == 200
        status, _, doc = await post(session, url, chat("a" * (limit + 1)))
        assert status == 413
        assert doc == {
            "error": {
                "message": "The request body is larger than 64 KiB; send smaller or fewer images.",
                "type": "invalid_request_error",
                "param": None,
                "code": "request_too_large",
            }
        }
        # The endpoint goes on serving after a refused upload.
        status, _, _ = await post(session, url, chat("after"))
        assert status == 200


async def test_default_body_limit_is_32_mib() -> None:
    async with stack(targets=("role:multimodal",)) as s, aiohttp.ClientSession() as session:
        doc = image_chat()
        doc["padding"] = "A" * (MAX_BODY_BYTES + 16)
        body = io.BytesIO(json.dumps(doc).encode())  # raw bytes this big warn in aiohttp
        url = s.urls["role:multimodal"] + "/v1/chat/completions"
        headers = {"Content-Type": "application/json"}
        async with session.post(url, data=body, headers=headers) as resp:
            assert resp.status == 413
            answer = await resp.json()
        assert answer["error"]["message"].startswith("The request body is larger than 32 MiB")
        assert s.lanes["mm"].requests == 0


async def test_bad_requests_are_openai_errors() -> None:
    async with stack() as s, aiohttp.ClientSession() as session:
        url = s.urls["role:throughput"]
        async with session.post(url + "/v1/chat/completions", data=b"{not json") as resp:
            assert resp.status == 400
            error = (await resp.json())["error"]
            assert error["type"] == "invalid_request_error"
            assert "not valid JSON" in error["message"]
        async with session.post(url + "/v1/completions", json={"prompt": 3}) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["param"] == "prompt"
        async with session.get(url + "/v1/embeddings") as resp:
            assert resp.status == 404
            assert "/v1/chat/completions" in (await resp.json())["error"]["message"]
        async with session.get(url + "/v1/chat/completions") as resp:
            assert resp.status == 405
            assert (await resp.json())["error"]["code"] == "bad_method"
        assert sum(lane.requests for lane in s.lanes.values()) == 0
