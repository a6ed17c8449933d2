"""API keys of the public endpoints: the keys file, the check, reload, and HTTP 401."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from structlog.testing import capture_logs

from qwend.config.model import ListenAddress, PublicEndpoint
from qwend.public.app import make_public_app
from qwend.public.keys import ApiKeys, ApiKeysError, read_keys
from qwend.routing.lanetable import LaneTable
from tests.support.router_fakes import FakeLane, chat, fake_lanes, routable, run_router
from tests.support.router_fakes import serve as serve_app

KEY = "sk-qwend-right-key-0123456789"
OTHER = "sk-qwend-other-key"


def keys_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "api-keys"
    path.write_text(text)
    return path


def test_comments_blank_lines_and_surrounding_space_are_ignored(tmp_path: Path) -> None:
    path = keys_file(tmp_path, f"# team A\n\n  {KEY}  \n\t\n#{OTHER}\n{OTHER}\n{KEY}\n")
    assert len(read_keys(path)) == 2
    keys = ApiKeys.load(path)
    assert keys.enabled and keys.path == path and len(keys) == 2
    assert keys.check(f"Bearer {KEY}")
    assert keys.check(f"bearer {OTHER}")  # the scheme is case-insensitive
    assert not keys.check("Bearer # team A")
    assert not keys.check(f"#{OTHER}")


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", f"Basic {KEY}", KEY, f"Bearer {KEY}x", f"Bearer {KEY[:-1]}"],
)
def test_anything_but_the_exact_key_is_refused(tmp_path: Path, header: str | None) -> None:
    keys = ApiKeys.load(keys_file(tmp_path, KEY + "\n"))
    assert not keys.check(header)


def test_without_a_keys_file_everything_passes() -> None:
    keys = ApiKeys.load(None)
    assert not keys.enabled
    assert keys.check(None) and keys.check("Bearer anything")


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "api-keys"
    with pytest.raises(ApiKeysError) as caught:
        ApiKeys.load(path)
    assert str(path) in str(caught.value)
    assert "No such file or directory" in str(caught.value)
    assert "api_keys_file" in str(caught.value)


def test_unreadable_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "api-keys"
    path.write_bytes(b"\xff\xfe\x00bad")  # not UTF-8
    with pytest.raises(ApiKeysError, match=str(path)):
        ApiKeys.load(path)


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    path = keys_file(tmp_path, "# nothing yet\n\n")
    with pytest.raises(ApiKeysError, match="holds no keys"):
        ApiKeys.load(path)


def test_a_key_with_spaces_is_refused_without_quoting_it(tmp_path: Path) -> None:
    path = keys_file(tmp_path, f"{KEY}\nsecret part two\n")
    with pytest.raises(ApiKeysError) as caught:
        ApiKeys.load(path)
    assert f"{path}:2:" in str(caught.value)
    assert "secret" not in str(caught.value)


def test_reload_replaces_keys_and_a_broken_file_keeps_the_old_ones(tmp_path: Path) -> None:
    path = keys_file(tmp_path, KEY + "\n")
    keys = ApiKeys.load(path)
    path.write_text(OTHER + "\n")
    with capture_logs() as logs:
        assert keys.reload(path)
    assert keys.check(f"Bearer {OTHER}") and not keys.check(f"Bearer {KEY}")
    assert logs[-1]["event"] == "API keys loaded" and logs[-1]["keys"] == 1
    path.write_text("")  # broken: no keys
    with capture_logs() as logs:
        assert not keys.reload(path)
    assert keys.check(f"Bearer {OTHER}")
    assert logs[-1]["log_level"] == "error"
    assert "holds no keys" in logs[-1]["error"]
    path.unlink()  # broken: gone
    with capture_logs() as logs:
        assert not keys.reload(path)
    assert keys.check(f"Bearer {OTHER}")
    assert str(path) in logs[-1]["error"]
    assert all(OTHER not in str(entry) and KEY not in str(entry) for entry in logs)


def test_reload_without_a_file_turns_authentication_off(tmp_path: Path) -> None:
    keys = ApiKeys.load(keys_file(tmp_path, KEY))
    with capture_logs() as logs:
        assert keys.reload(None)
    assert not keys.enabled and keys.check(None)
    assert logs[-1]["log_level"] == "warning"


# -- over HTTP ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def endpoint(keys: ApiKeys, target: str = "router") -> AsyncIterator[tuple[str, FakeLane]]:
    async with fake_lanes(FakeLane("fast")) as (fast,):
        table = LaneTable((routable("fast", fast.url, "throughput"),))
        async with run_router(table) as handle:
            public = PublicEndpoint(ListenAddress("127.0.0.1", 0), target)
            async with serve_app(make_public_app(public, handle.router, keys)) as url:
                yield url, fast


async def call(
    url: str, authorization: str | None, path: str = "/v1/chat/completions"
) -> tuple[int, dict[str, object], dict[str, str]]:
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with aiohttp.ClientSession() as session:
        if path == "/v1/chat/completions":
            request = session.post(url + path, json=chat("hi"), headers=headers)
        else:
            request = session.get(url + path, headers=headers)
        async with request as resp:
            return resp.status, await resp.json(), dict(resp.headers)


@pytest.mark.parametrize("target", ["router", "role:throughput"])
async def test_requests_need_a_right_key(tmp_path: Path, target: str) -> None:
    keys = ApiKeys.load(keys_file(tmp_path, f"# ops\n{KEY}\n"))
    async with endpoint(keys, target) as (url, fast):
        status, doc, headers = await call(url, None)
        assert status == 401
        assert headers["WWW-Authenticate"] == "Bearer"
        assert doc == {
            "error": {
                "message": "Missing API key: send it in the header"
                " 'Authorization: Bearer YOUR_KEY'.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        }
        status, doc, _ = await call(url, f"Bearer {OTHER}")
        assert status == 401
        error = doc["error"]
        assert isinstance(error, dict)
        assert error["code"] == "invalid_api_key" and "Incorrect API key" in error["message"]
        assert OTHER not in error["message"]
        for path in ("/v1/models", "/health"):
            assert (await call(url, None, path))[0] == 401
        assert fast.requests == 0  # nothing unauthenticated reached the lane
        status, doc, headers = await call(url, f"Bearer {KEY}")
        assert status == 200 and headers["X-Qwend-Lane"] == "fast"
        assert (await call(url, f"Bearer {KEY}", "/v1/models"))[0] == 200
        assert fast.requests == 1


async def test_a_reload_applies_to_running_endpoints(tmp_path: Path) -> None:
    path = keys_file(tmp_path, KEY + "\n")
    keys = ApiKeys.load(path)
    async with endpoint(keys) as (url, _):
        assert (await call(url, f"Bearer {KEY}"))[0] == 200
        path.write_text(f"{OTHER}\n")
        assert keys.reload(path)
        assert (await call(url, f"Bearer {KEY}"))[0] == 401
        assert (await call(url, f"Bearer {OTHER}"))[0] == 200
        path.write_text("not a key\n")
        assert not keys.reload(path)
        assert (await call(url, f"Bearer {OTHER}"))[0] == 200


async def test_no_keys_file_accepts_requests_without_a_key() -> None:
    async with endpoint(ApiKeys.load(None)) as (url, fast):
        assert (await call(url, None))[0] == 200
        assert fast.requests == 1
