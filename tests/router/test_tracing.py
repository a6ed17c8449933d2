"""Request IDs (generated, validated, echoed, passed to the lane, bound to log lines) and
the access log, on the router port and a public endpoint."""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import structlog

from qwend.config.model import ListenAddress, PublicEndpoint
from qwend.logs import LogFormat, configure_logging
from qwend.public.app import make_public_app
from qwend.public.keyfile import ApiKey, KeySet, digest
from qwend.public.keys import ApiKeys
from qwend.router.accesslog import FileAccessLog
from qwend.routing.lanetable import LaneTable
from qwend.routing.tracing import MAX_REQUEST_ID, request_id_for
from tests.support.router_fakes import FakeLane, RouterHandle, chat, fake_lanes, routable
from tests.support.router_fakes import run_router as run_router_app
from tests.support.router_fakes import serve as serve_app

HEX_ID = re.compile(r"[0-9a-f]{32}")
PROMPT = "a secret prompt that no log may hold"


@pytest.fixture(autouse=True)
def restore_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def test_a_safe_client_id_is_kept_and_others_are_replaced() -> None:
    assert request_id_for("client-42.a:b@c+d=e") == "client-42.a:b@c+d=e"
    assert request_id_for(None, lambda: "new") == "new"
    for bad in ("", "x" * (MAX_REQUEST_ID + 1), "has space", "evil\r\nX-Injected: 1", "ü"):
        assert request_id_for(bad, lambda: "new") == "new", bad


@contextlib.asynccontextmanager
async def router_with(
    lane: FakeLane, tmp_path: Path
) -> AsyncIterator[tuple[RouterHandle, str, Path]]:
    """A router over ``lane``, a public endpoint with one named key, a file access log."""
    async with fake_lanes(lane) as (fake,):
        table = LaneTable((routable(lane.name, fake.url, "throughput"),))
        async with run_router_app(table) as handle:
            log_path = tmp_path / "access.log"
            handle.router.forwarding.access.swap(FileAccessLog(log_path, 1 << 20, 2))
            keys = ApiKeys()
            keys.swap(KeySet("keys", (ApiKey(digest("sk-test"), name="team-a", line=1),)))
            endpoint = PublicEndpoint(ListenAddress("127.0.0.1", 0), "router")
            app = make_public_app(endpoint, handle.router, keys)
            async with serve_app(app) as public_url:
                yield handle, public_url, log_path
            handle.router.forwarding.access.swap(None)


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_ids_are_generated_echoed_and_passed_to_the_lane(tmp_path: Path) -> None:
    lane = FakeLane("t")
    async with router_with(lane, tmp_path) as (h, _public, _log), aiohttp.ClientSession() as s:
        async with s.post(h.url + "/v1/chat/completions", json=chat(PROMPT)) as r:
            assert r.status == 200
            generated = r.headers["X-Request-Id"]
        headers = {"X-Request-Id": "client-7"}
        async with s.post(
            h.url + "/v1/chat/completions", json=chat(stream=True), headers=headers
        ) as r:
            assert r.status == 200 and r.headers["X-Request-Id"] == "client-7"
            await r.read()
        hostile = {"X-Request-Id": "x" * 500}
        async with s.post(h.url + "/v1/chat/completions", json=chat(), headers=hostile) as r:
            replaced = r.headers["X-Request-Id"]
        # Errors carry it too: the router's own 404 and a 400 for a bad body.
        async with s.get(h.url + "/v1/embeddings", headers={"X-Request-Id": "e-1"}) as r:
            assert r.status == 404 and r.headers["X-Request-Id"] == "e-1"
        async with s.post(h.url + "/v1/chat/completions", data=b"{not json") as r:
            assert r.status == 400 and HEX_ID.fullmatch(r.headers["X-Request-Id"])
    assert HEX_ID.fullmatch(generated) and HEX_ID.fullmatch(replaced)
    assert lane.request_ids == [generated, "client-7", replaced]


async def test_the_access_log_has_one_record_per_request_and_no_prompt(tmp_path: Path) -> None:
    lane = FakeLane("t")
    async with router_with(lane, tmp_path) as (h, public, log_path):
        async with aiohttp.ClientSession() as s:
            async with s.post(
                h.url + "/v1/chat/completions",
                json=chat(PROMPT, stream=True),
                headers={"X-Request-Id": "stream-1"},
            ) as r:
                await r.read()
            auth = {"Authorization": "Bearer sk-test", "X-Request-Id": "pub-1"}
            async with s.post(public + "/v1/chat/completions", json=chat(PROMPT), headers=auth):
                pass
            async with s.get(h.url + "/nope", headers={"X-Request-Id": "lost-1"}):
                pass
        text = log_path.read_text()
    assert PROMPT not in text and "sk-test" not in text
    by_id = {r["request_id"]: r for r in records(log_path)}
    stream = by_id["stream-1"]
    assert stream["listener"] == "router" and stream["route"] == "/v1/chat/completions"
    assert (stream["status"], stream["lane"], stream["attempts"]) == (200, "t", 1)
    assert isinstance(stream["ttft_s"], float) and stream["ttft_s"] >= 0
    assert isinstance(stream["completion_tokens"], int) and stream["completion_tokens"] > 0
    assert isinstance(stream["bytes"], int) and stream["bytes"] > 0
    assert isinstance(stream["duration_s"], float)
    published = by_id["pub-1"]
    assert published["key"] == "team-a" and published["status"] == 200
    assert str(published["listener"]).startswith("public 127.0.0.1:")
    assert published["prompt_tokens"] is not None
    assert (by_id["lost-1"]["status"], by_id["lost-1"]["lane"]) == (404, None)


async def test_log_lines_about_a_request_carry_its_id(tmp_path: Path) -> None:
    out = io.StringIO()
    configure_logging(LogFormat.JSON, stream=out, env={})
    lane = FakeLane("t", die_after=1)  # the stream breaks: the router logs a warning
    async with router_with(lane, tmp_path) as (h, _public, _log), aiohttp.ClientSession() as s:
        headers = {"X-Request-Id": "broken-1"}
        async with s.post(
            h.url + "/v1/chat/completions", json=chat(stream=True), headers=headers
        ) as r:
            await r.read()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    failures = [line for line in lines if line["event"] == "mid-stream failure"]
    assert failures and all(line["request_id"] == "broken-1" for line in failures)


def test_the_file_access_log_rotates_by_size(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    sink = FileAccessLog(path, max_bytes=4096, keep=2)
    for n in range(200):
        sink.write({"request_id": f"r{n}", "status": 200})
    sink.close()
    assert path.with_name("access.log.1").exists() and path.with_name("access.log.2").exists()
    assert not path.with_name("access.log.3").exists()
    for name in ("access.log", "access.log.1", "access.log.2"):
        assert (tmp_path / name).stat().st_size <= 4096 + 200
    assert records(path)[-1]["request_id"] == "r199"
