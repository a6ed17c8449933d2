"""Bad requests to a real sim lane get OpenAI-style error bodies (raw aiohttp client)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from tests.support.simlane import DEFAULT_MODEL as MODEL
from tests.support.simlane import SimLaneProcess, data_url, png_bytes, start_sim_lane


@pytest.fixture(scope="module")
def lane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimLaneProcess]:
    proc = start_sim_lane(
        state_dir=tmp_path_factory.mktemp("sim-errors"),
        time_scale=50,
        extra=["--max-model-len", "512"],
    )
    yield proc
    proc.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def post(
    session: aiohttp.ClientSession, lane: SimLaneProcess, path: str, body: object | bytes
) -> tuple[int, dict[str, object]]:
    if isinstance(body, bytes):
        kwargs: dict[str, object] = {
            "data": body,
            "headers": {"Content-Type": "application/json"},
        }
    else:
        kwargs = {"json": body}
    async with session.post(f"{lane.base_url}{path}", **kwargs) as resp:  # type: ignore[arg-type]
        return resp.status, await resp.json()


def error_of(body: dict[str, object]) -> dict[str, object]:
    error = body["error"]
    assert isinstance(error, dict)
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return error


def chat(**extra: object) -> dict[str, object]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **extra}


async def test_bad_json_is_400(session: aiohttp.ClientSession, lane: SimLaneProcess) -> None:
    status, body = await post(session, lane, "/v1/chat/completions", b"{not json")
    assert status == 400
    assert "not valid JSON" in str(error_of(body)["message"])


async def test_body_not_an_object_is_400(
    session: aiohttp.ClientSession, lane: SimLaneProcess
) -> None:
    status, body = await post(session, lane, "/v1/completions", [1, 2])
    assert status == 400
    error_of(body)


async def test_unknown_model_is_404(session: aiohttp.ClientSession, lane: SimLaneProcess) -> None:
    status, body = await post(session, lane, "/v1/chat/completions", chat(model="gpt-x"))
    assert status == 404
    error = error_of(body)
    assert error["code"] == "model_not_found"
    assert error["param"] == "model"
    assert "gpt-x" in str(error["message"])


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (chat(max_tokens="ten"), "max_tokens"),
        (chat(max_tokens=0), "max_tokens"),
        (chat(max_tokens=True), "max_tokens"),
        (chat(temperature="hot"), "temperature"),
        (chat(temperature=5), "temperature"),
        (chat(stream="yes"), "stream"),
        (chat(stop=3), "stop"),
        (chat(n=2), "n"),
        (chat(stream_options={"include_usage": True}), "stream_options"),
        ({"model": MODEL, "messages": []}, "messages"),
        ({"model": MODEL, "messages": "hi"}, "messages"),
        ({"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, "messages"),
        ({"model": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
        (chat(max_tokens=100_000), "max_tokens"),
    ],
)
async def test_wrong_types_are_400(
    session: aiohttp.ClientSession, lane: SimLaneProcess, body: object, param: str
) -> None:
    status, reply = await post(session, lane, "/v1/chat/completions", body)
    assert status == 400
    assert error_of(reply)["param"] == param


def image_chat(url: str) -> dict[str, object]:
    part = {"type": "image_url", "image_url": {"url": url}}
    return {"model": MODEL, "messages": [{"role": "user", "content": [part]}], "max_tokens": 2}


@pytest.mark.parametrize(
    "url",
    [
        "data:image/png;base64,%%%notbase64",
        data_url(b"this is not an image at all"),
        data_url(png_bytes(10, 10)[:20]),
        data_url(b"\xff\xd8\xff\xe0\x00\x10JFIF"),
        "data:image/png,rawdata",
        "ftp://example.invalid/x.png",
    ],
)
async def test_malformed_images_are_400(
    session: aiohttp.ClientSession, lane: SimLaneProcess, url: str
) -> None:
    status, body = await post(session, lane, "/v1/chat/completions", image_chat(url))
    assert status == 400
    assert "content[0]" in str(error_of(body)["message"])


async def test_unknown_content_part_is_400(
    session: aiohttp.ClientSession, lane: SimLaneProcess
) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "audio"}]}]}
    status, reply = await post(session, lane, "/v1/chat/completions", body)
    assert status == 400
    assert "audio" in str(error_of(reply)["message"])


async def test_gif_and_jpeg_headers_are_accepted(
    session: aiohttp.ClientSession, lane: SimLaneProcess
) -> None:
    gif = b"GIF89a" + (56).to_bytes(2, "little") + (56).to_bytes(2, "little") + b"\x00" * 8
    jpeg = b"\xff\xd8\xff\xc0\x00\x11\x08" + (56).to_bytes(2, "big") + (84).to_bytes(2, "big")
    for url in (data_url(gif, "image/gif"), data_url(jpeg + b"\x00" * 10, "image/jpeg")):
        status, body = await post(session, lane, "/v1/chat/completions", image_chat(url))
        assert status == 200, body


async def test_bad_prompt_in_completions_is_400(
    session: aiohttp.ClientSession, lane: SimLaneProcess
) -> None:
    status, body = await post(session, lane, "/v1/completions", {"model": MODEL, "prompt": 3})
    assert status == 400
    assert error_of(body)["param"] == "prompt"


async def test_tokenize_errors(session: aiohttp.ClientSession, lane: SimLaneProcess) -> None:
    status, body = await post(session, lane, "/tokenize", {"model": "nope", "prompt": "x"})
    assert status == 404
    error_of(body)
    status, body = await post(session, lane, "/tokenize", b"]")
    assert status == 400


async def test_unknown_route_is_404_error_body(
    session: aiohttp.ClientSession, lane: SimLaneProcess
) -> None:
    async with session.get(f"{lane.base_url}/v1/nothing") as resp:
        assert resp.status == 404
        error_of(await resp.json())
