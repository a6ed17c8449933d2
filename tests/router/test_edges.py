"""The router port's own HTTP errors: OpenAI-style JSON, never aiohttp's plain text."""

from __future__ import annotations

import io

import aiohttp
import pytest

from qwend.router.app import MAX_BODY_BYTES
from qwend.routing.lanetable import LaneTable
from tests.support.router_fakes import run_router


async def _error(resp: aiohttp.ClientResponse) -> dict[str, object]:
    assert resp.content_type == "application/json", await resp.text()
    doc = await resp.json()
    error = doc["error"]
    assert isinstance(error, dict) and isinstance(error["message"], str)
    return error


@pytest.mark.parametrize("path", ["/v1/embeddings", "/v1/responses", "/v1/audio/speech"])
async def test_unsupported_openai_paths_name_the_supported_ones(path: str) -> None:
    async with (
        run_router(LaneTable()) as h,
        aiohttp.ClientSession() as s,
        s.post(h.url + path, json={"input": "x"}) as r,
    ):
        assert r.status == 404
        error = await _error(r)
    assert error["code"] == "unsupported_endpoint"
    message = str(error["message"])
    assert path in message
    for served in ("POST /v1/chat/completions", "POST /v1/completions", "GET /v1/models"):
        assert served in message


async def test_unknown_path_is_a_json_404() -> None:
    async with (
        run_router(LaneTable()) as h,
        aiohttp.ClientSession() as s,
        s.get(h.url + "/nope") as r,
    ):
        assert r.status == 404
        error = await _error(r)
    assert error["code"] == "unknown_url" and "GET /health" in str(error["message"])


async def test_wrong_method_is_a_json_405_with_allow() -> None:
    async with run_router(LaneTable()) as h, aiohttp.ClientSession() as s:
        async with s.get(h.url + "/v1/chat/completions") as r:
            assert r.status == 405
            assert r.headers["Allow"] == "POST"
            error = await _error(r)
        async with s.delete(h.url + "/v1/models") as r:
            assert r.status == 405
            assert set(r.headers["Allow"].split(", ")) == {"GET", "HEAD"}
            await _error(r)
    assert error["code"] == "method_not_allowed"
    assert "GET" in str(error["message"]) and "POST" in str(error["message"])


async def test_an_oversized_body_is_a_json_413() -> None:
    body = io.BytesIO(b"x" * (MAX_BODY_BYTES + 1))
    headers = {"Content-Type": "application/json"}
    async with (
        run_router(LaneTable()) as h,
        aiohttp.ClientSession() as s,
        s.post(h.url + "/v1/chat/completions", data=body, headers=headers) as r,
    ):
        assert r.status == 413
        error = await _error(r)
    assert error["code"] == "request_too_large"
