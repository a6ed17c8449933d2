"""The web console's server in front of a real router and fake lanes (real sockets).

The page and its files, the security headers, the key policy, targets, image
limits, and a lane failing mid-stream reaching the browser as an error event.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from qwend.config.model import PublicConfig
from qwend.public.console.app import CSP, make_console_app
from qwend.public.console.assets import load_assets, total_bytes
from qwend.public.keyfile import parse_key_file
from qwend.public.keys import ApiKeys
from qwend.routing.lanetable import LaneTable
from qwend.sim.images import solid_png as png_bytes
from tests.support.router_fakes import FakeLane, fake_lanes, routable, run_router
from tests.support.router_fakes import serve as serve_app

KEY = "sk-console-test-1"
TIMEOUT = aiohttp.ClientTimeout(total=20)


@dataclass
class Console:
    url: str
    lanes: dict[str, FakeLane]
    router_url: str


@contextlib.asynccontextmanager
async def console(
    keys: ApiKeys | None = None, public: PublicConfig | None = None, **knobs: object
) -> AsyncIterator[Console]:
    names = ("mm", "stable", "throughput")
    async with fake_lanes(*(FakeLane(n, **knobs) for n in names)) as fakes:  # type: ignore[arg-type]
        lanes = dict(zip(names, fakes, strict=True))
        table = LaneTable()
        table.replace(
            (
                routable("mm", lanes["mm"].url, "multimodal", image=True, text=False),
                routable("stable", lanes["stable"].url, "stable"),
                routable("throughput", lanes["throughput"].url, "throughput"),
            )
        )
        async with run_router(table) as handle:
            app = make_console_app(public or PublicConfig(), handle.router, keys)
            async with serve_app(app) as url:
                yield Console(url, lanes, handle.url)


def png_url(width: int, height: int) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(width, height)).decode()


def chat_doc(*images: str, stream: bool = False, text: str = "hello") -> dict[str, object]:
    parts: list[dict[str, object]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": u}} for u in images]
    return {"messages": [{"role": "user", "content": parts}], "max_tokens": 8, "stream": stream}


async def test_the_page_loads_with_strict_security_headers() -> None:
    async with console() as c, aiohttp.ClientSession(timeout=TIMEOUT) as s:
        async with s.get(c.url + "/") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            page = await resp.text()
            headers = resp.headers
        assert headers["Content-Security-Policy"] == CSP
        assert "default-src 'self'" in CSP and "frame-ancestors 'none'" in CSP
        assert "unsafe-inline" not in CSP and "unsafe-eval" not in CSP
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        # Everything the page refers to is served, from this origin, with the right type.
        refs = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
        assert "/static/js/app.js" in refs and "/static/style.css" in refs
        for ref in refs:
            async with s.get(c.url + ref) as resp:
                assert resp.status == 200, ref
                assert resp.headers["Content-Security-Policy"] == CSP
                etag = resp.headers["ETag"]
            async with s.get(c.url + ref, headers={"If-None-Match": etag}) as resp:
                assert resp.status == 304
        async with s.get(c.url + "/static/js/app.js") as resp:
            assert resp.content_type == "text/javascript"
            modules = re.findall(r'from "\./([\w.]+)"', await resp.text())
        for module in modules:
            async with s.get(c.url + "/static/js/" + module) as resp:
                assert resp.status == 200, module
        for bad in ("/static/../app.py", "/static/js/nope.js", "/static/%2e%2e/assets.py"):
            async with s.get(c.url + bad) as resp:
                assert resp.status == 404, bad
                assert (await resp.json())["error"]["code"] == "unknown_url"


def test_the_static_files_are_small_and_self_contained() -> None:
    assets = load_assets()
    assert {"index.html", "style.css", "js/app.js", "js/markdown.js"} <= set(assets)
    assert total_bytes(assets) < 150_000  # "well under 300 KB"
    for name, asset in assets.items():
        text = asset.body.decode()
        assert "innerHTML" not in text and "outerHTML" not in text, name
        assert "insertAdjacentHTML" not in text and "eval(" not in text, name
        # No CDN, no external font: nothing is loaded from another origin.
        assert not re.search(r'(src|href)="(https?:)?//', text), name
        assert "@import" not in text and "url(http" not in text, name
    assert "<style" not in assets["index.html"].body.decode()  # CSP: no inline style
    assert not re.search(r"<script(?![^>]*\bsrc=)", assets["index.html"].body.decode())


async def test_api_calls_need_a_key_when_keys_are_configured() -> None:
    keys = ApiKeys(parse_key_file(f"{KEY}\n", "api-keys"))
    async with console(keys) as c, aiohttp.ClientSession(timeout=TIMEOUT) as s:
        async with s.get(c.url + "/") as resp:
            assert resp.status == 200  # the page itself asks for the key
        async with s.get(c.url + "/api/info") as resp:
            assert (await resp.json())["keys_required"] is True
        for headers in ({}, {"Authorization": "Bearer sk-wrong"}):
            async with s.get(c.url + "/api/targets", headers=headers) as resp:
                assert resp.status == 401
                assert resp.headers["WWW-Authenticate"] == "Bearer"
                assert "API key" in (await resp.json())["error"]["message"]
            async with s.post(
                c.url + "/v1/chat/completions", json=chat_doc(), headers=headers
            ) as resp:
                assert resp.status == 401
        assert sum(lane.requests for lane in c.lanes.values()) == 0
        async with s.get(c.url + "/v1/models") as resp:
            assert resp.status == 401
        auth = {"Authorization": f"Bearer {KEY}"}
        async with s.get(c.url + "/api/targets", headers=auth) as resp:
            assert resp.status == 200
        async with s.get(c.url + "/v1/models", headers=auth) as resp:
            listed = await resp.json()
        async with s.get(c.router_url + "/v1/models") as resp:
            assert listed == await resp.json()  # what the router's own port lists
        assert listed["data"]
        async with s.post(c.url + "/v1/chat/completions", json=chat_doc(), headers=auth) as resp:
            assert resp.status == 200
            assert resp.headers["X-Qwend-Lane"] in ("stable", "throughput")


async def test_without_keys_the_page_is_told_so() -> None:
    async with console() as c, aiohttp.ClientSession(timeout=TIMEOUT) as s:
        async with s.get(c.url + "/api/info") as resp:
            info = await resp.json()
        assert info["keys_required"] is False
        assert info["image_max_side"] == PublicConfig().console_image_max_side


async def test_targets_list_the_router_and_each_role() -> None:
    async with console() as c, aiohttp.ClientSession(timeout=TIMEOUT) as s:
        async with s.get(c.url + "/api/targets") as resp:
            targets = (await resp.json())["targets"]
        assert [t["id"] for t in targets] == [
            "router", "role:multimodal", "role:stable", "role:throughput"
        ]  # fmt: skip
        mm = targets[1]
        assert mm["image"] is True and mm["ready"] is True
        assert [lane["name"] for lane in mm["lanes"]] == ["mm"]
        for target, lane in (("role:throughput", "throughput"), ("role:stable", "stable")):
            headers = {"X-Qwend-Target": target}
            async with s.post(
                c.url + "/v1/chat/completions", json=chat_doc(), headers=headers
            ) as r:
                assert r.status == 200
                assert r.headers["X-Qwend-Lane"] == lane
        headers = {"X-Qwend-Target": "role:nope"}
        async with s.post(c.url + "/v1/chat/completions", json=chat_doc(), headers=headers) as r:
            assert r.status == 400
            error = (await r.json())["error"]
            assert error["code"] == "unknown_target" and "role:nope" in error["message"]


async def test_images_within_the_limit_go_to_the_multimodal_lane() -> None:
    public = PublicConfig(console_image_max_side=256)
    async with console(public=public) as c, aiohttp.ClientSession(timeout=TIMEOUT) as s:
        doc = chat_doc(png_url(256, 100), png_url(64, 200))
        async with s.post(c.url + "/v1/chat/completions", json=doc) as resp:
            assert resp.status == 200
            assert resp.headers["X-Qwend-Lane"] == "mm"
        assert c.lanes["mm"].requests == 1


async def test_an_oversized_image_is_refused_with_a_clear_message() -> None:
    public = PublicConfig(console_image_max_side=256)
    async with console(public=public) as c, aiohttp.ClientSession(timeout=TIMEOUT) as s:
        doc = chat_doc(png_url(100, 100), png_url(300, 120))
        async with s.post(c.url + "/v1/chat/completions", json=doc) as resp:
            assert resp.status == 400
            error = (await resp.json())["error"]
        assert error["code"] == "image_too_large"
        assert error["param"] == "messages[0].content[2].image_url"
        assert "Image 2 is 300x120 pixels" in error["message"]
        assert "at most 256 pixels" in error["message"]
        assert "console_image_max_side" in error["message"]
        doc = chat_doc("data:image/png;base64,bm90IGFuIGltYWdl")
        async with s.post(c.url + "/v1/chat/completions", json=doc) as resp:
            assert resp.status == 400
            assert "not a PNG, JPEG, GIF or WebP" in (await resp.json())["error"]["message"]
        assert sum(lane.requests for lane in c.lanes.values()) == 0


async def test_a_lane_failing_mid_stream_ends_the_stream_with_an_error() -> None:
    async with (
        console(chunks=6, die_after=2) as c,
        aiohttp.ClientSession(timeout=TIMEOUT) as s,
        s.post(c.url + "/v1/chat/completions", json=chat_doc(stream=True)) as resp,
    ):
        assert resp.status == 200
        events = [
            json.loads(line[6:])
            for line in (await resp.text()).splitlines()  # ends: no hang (TIMEOUT)
            if line.startswith("data: {")
        ]
    assert len([e for e in events if e.get("choices")]) == 2
    assert "error" in events[-1]
    assert "mid-stream" in events[-1]["error"]["message"]


async def test_bad_json_is_a_400_not_a_crash() -> None:
    async with console() as c, aiohttp.ClientSession(timeout=TIMEOUT) as s:
        async with s.post(c.url + "/v1/chat/completions", data=b"{nope") as resp:
            assert resp.status == 400
            assert "error" in await resp.json()
        async with s.post(c.url + "/v1/chat/completions", data=b"[" * 5000) as resp:
            assert resp.status == 400
