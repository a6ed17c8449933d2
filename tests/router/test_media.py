"""The media URL policy over real HTTP: the router's port refuses, the lane never sees it.

Also the resolver half (``qwend.router.media``) with a scripted resolver, and
the JSON nesting bound at the router's port.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from typing import Any

import aiohttp
import pytest

from qwend.config.model import RouterConfig
from qwend.router.media import MediaRefused, check_media, system_resolve
from qwend.routing.lanetable import LaneTable
from qwend.routing.media import MAX_RESOLVED_HOSTS, MediaPolicy, MediaSource
from tests.support.router_fakes import FakeLane, fake_lanes, routable, run_router

# The spellings, and more: each names the NPU host itself or its network.
REFUSED_URLS = [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://127.0.0.1:18088/metrics",
    "http://[::1]/",
    "http://0x7f000001/",
    "http://2130706433/",
    "http://127.1/",
    "http://localhost/",
    "http://[::ffff:127.0.0.1]/",
    "http://0177.0.0.1/",
    "http://10.0.0.1/",
    "http://[fe80::1]/",
    "http://0.0.0.0:18083/",
    "file:///etc/passwd",
    "ftp://example.com/a.png",
    "gopher://127.0.0.1:6379/_INFO",
    "/etc/passwd",
]
DATA_URL = "data:image/png;base64," + (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGBgAAAABQABXvMqGgAAAABJRU5ErkJggg=="
)
ALLOWED_HOST = "images.lab.internal"  # not resolvable: the allow-list needs no lookup
PUBLIC_ADDRESS_URL = "http://93.184.216.34/cat.png"  # a literal public address: no lookup


# How each kind of media part carries its URL (vLLM's and Hugging Face's shapes).
PARTS: dict[str, Any] = {
    "image_url": lambda url: {"type": "image_url", "image_url": {"url": url}},
    "video_url": lambda url: {"type": "video_url", "video_url": {"url": url}},
    "audio_url": lambda url: {"type": "audio_url", "audio_url": {"url": url}},
    "input_image": lambda url: {"type": "input_image", "image_url": url},
    "image": lambda url: {"type": "image", "image": url},
    "untyped": lambda url: {"image_url": {"url": url}},
}


def image_chat(url: str, part: str = "image_url") -> dict[str, Any]:
    content = [{"type": "text", "text": "what is this?"}, PARTS[part](url)]
    return {"model": "m", "messages": [{"role": "user", "content": content}], "max_tokens": 4}


async def post(url: str, doc: object, path: str = "/v1/chat/completions") -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.post(url + path, json=doc) as r:
        return r.status, await r.json()


@pytest.fixture
async def mm() -> Any:
    async with fake_lanes(FakeLane("mm")) as (lane,):
        yield lane


def table(lane: FakeLane) -> LaneTable:
    return LaneTable((routable("mm", lane.url, "multimodal", image=True),))


CONFIG = RouterConfig(media_allowed_hosts=(ALLOWED_HOST,))


async def test_every_spelling_of_an_internal_url_is_400_and_never_reaches_the_lane(
    mm: FakeLane,
) -> None:
    async with run_router(table(mm), CONFIG) as h:
        for url in REFUSED_URLS:
            status, doc = await post(h.url, image_chat(url))
            assert status == 400, url
            error = doc["error"]
            assert error["type"] == "invalid_request_error", url
            assert error["code"] == "media_url_refused", url
            assert error["param"] == "messages[0].content[1].image_url.url", url
        for part in PARTS:
            status, doc = await post(h.url, image_chat("http://127.1/", part))
            assert status == 400 and doc["error"]["code"] == "media_url_refused", part
        assert h.router.stats_snapshot().bad_requests == len(REFUSED_URLS) + len(PARTS)
    assert mm.requests == 0


async def test_a_data_url_an_allowed_host_and_a_public_address_reach_the_lane(
    mm: FakeLane,
) -> None:
    async with run_router(table(mm), CONFIG) as h:
        for url in (DATA_URL, f"https://{ALLOWED_HOST}/cat.png", PUBLIC_ADDRESS_URL):
            status, doc = await post(h.url, image_chat(url))
            assert status == 200, (url, doc)
    assert mm.requests == 3
    sent = [b["messages"][0]["content"][1]["image_url"]["url"] for b in mm.bodies]  # type: ignore[index]
    assert sent == [DATA_URL, f"https://{ALLOWED_HOST}/cat.png", PUBLIC_ADDRESS_URL]


async def test_the_data_url_limit_and_the_allow_list_come_from_the_config(mm: FakeLane) -> None:
    strict = RouterConfig(media_data_url_max_bytes=len(DATA_URL) - 1, media_public_hosts=False)
    async with run_router(table(mm), strict) as h:
        status, doc = await post(h.url, image_chat(DATA_URL))
        assert status == 400 and "limit of" in doc["error"]["message"]
        status, doc = await post(h.url, image_chat(PUBLIC_ADDRESS_URL))
        assert status == 400 and "media hosts" in doc["error"]["message"]
        h.router.apply_config(CONFIG)  # a reload
        assert (await post(h.url, image_chat(DATA_URL)))[0] == 200
    assert mm.requests == 1


async def test_tokenize_applies_the_policy_too(mm: FakeLane) -> None:
    text_lane = routable("mm", mm.url, "multimodal", image=True, text=True)
    async with run_router(LaneTable((text_lane,))) as h:
        status, doc = await post(h.url, image_chat("http://127.1/"), "/tokenize")
        assert status == 400 and doc["error"]["code"] == "media_url_refused"
        status, _ = await post(h.url, image_chat(DATA_URL), "/tokenize")
        assert status == 200


def deep(depth: int) -> bytes:
    return b'{"model": "m", "messages": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/tokenize"])
async def test_deeply_nested_json_is_a_400_not_a_500(
    mm: FakeLane, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with run_router(table(mm)) as h, aiohttp.ClientSession() as s:
        for depth in (200, 100_000):
            async with s.post(h.url + path, data=deep(depth)) as r:
                assert r.status == 400
                doc = await r.json()
            assert doc["error"]["type"] == "invalid_request_error"
            assert "levels deep" in doc["error"]["message"]
    assert mm.requests == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


# ----- the resolver half, with a scripted resolver -----


def resolver(answers: dict[str, Sequence[str] | BaseException]) -> Any:
    async def resolve(host: str, port: int) -> Sequence[str]:
        answer = answers[host]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return resolve


POLICY = MediaPolicy.of(RouterConfig())


def sources(*urls: str) -> list[MediaSource]:
    return [MediaSource(u, f"messages[0].content[{i}].image_url.url") for i, u in enumerate(urls)]


async def test_a_name_passes_only_when_every_address_it_resolves_to_is_public() -> None:
    answers: dict[str, Sequence[str] | BaseException] = {
        "cdn.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
        "rebind.example.com": ["93.184.216.34", "127.0.0.1"],
        "mapped.example.com": ["::ffff:169.254.169.254"],
        "nx.example.com": socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
        "empty.example.com": [],
    }
    resolve = resolver(answers)
    await check_media(sources("https://cdn.example.com/a.png"), POLICY, 1.0, resolve)
    cases = {
        "rebind.example.com": "resolves to 127.0.0.1: loopback",
        "mapped.example.com": "link-local",
        "nx.example.com": "does not resolve",
        "empty.example.com": "has no address",
    }
    for host, words in cases.items():
        urls = ("https://cdn.example.com/a.png", f"http://{host}/b.png")
        with pytest.raises(MediaRefused) as refused:
            await check_media(sources(*urls), POLICY, 1.0, resolve)
        assert words in refused.value.message
        assert refused.value.param == "messages[0].content[1].image_url.url"


async def test_a_resolver_that_does_not_answer_in_time_refuses_the_request() -> None:
    async def never(host: str, port: int) -> Sequence[str]:
        await asyncio.Event().wait()
        return []

    with pytest.raises(MediaRefused, match=r"did not resolve in 0\.05 s"):
        await check_media(sources("http://slow.example.com/a.png"), POLICY, 0.05, never)


async def test_a_request_may_name_a_bounded_number_of_hosts() -> None:
    resolve = resolver({f"h{i}.example.com": ["93.184.216.34"] for i in range(40)})
    fine = [f"http://h{i}.example.com/" for i in range(MAX_RESOLVED_HOSTS)]
    await check_media(sources(*fine, *fine), POLICY, 1.0, resolve)
    too_many = [f"http://h{i}.example.com/" for i in range(MAX_RESOLVED_HOSTS + 1)]
    with pytest.raises(MediaRefused, match="different hosts"):
        await check_media(sources(*too_many), POLICY, 1.0, resolve)


async def test_the_system_resolver_resolves_localhost_to_loopback() -> None:
    # No network needed: localhost comes from /etc/hosts or the resolver's own rules.
    found = await system_resolve("localhost", 80)
    assert found and all(a in ("127.0.0.1", "::1") for a in found)
