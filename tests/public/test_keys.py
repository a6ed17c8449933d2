"""API keys of the public endpoints: reading the file, the shared holder, 401 and 429 over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import openai
import pytest
from structlog.testing import capture_logs

from qwend.config.model import ListenAddress, PublicConfig, PublicEndpoint
from qwend.errors import ConfigError, ConfigIssue
from qwend.public.app import make_public_app
from qwend.public.keyfile import KeySet, parse_key_file
from qwend.public.keys import ApiKeys, read_api_keys, read_key_file
from qwend.routing.lanetable import LaneTable
from tests.support.router_fakes import FakeLane, chat, fake_lanes, routable, run_router
from tests.support.router_fakes import serve as serve_app

KEY = "sk-qwend-right-key-0123456789"
OTHER = "sk-qwend-other-key"


def keys_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "api-keys"
    path.write_text(text)
    return path


def key_set(text: str) -> KeySet:
    return parse_key_file(text, "api-keys")


def read_issues(path: Path) -> tuple[ConfigIssue, ...]:
    with pytest.raises(ConfigError) as caught:
        read_key_file(path, "qwend.toml")
    return caught.value.issues


def test_no_keys_file_means_no_keys() -> None:
    assert read_api_keys(PublicConfig()) is None


def test_the_keys_file_named_by_the_config_is_read(tmp_path: Path) -> None:
    path = keys_file(tmp_path, f"{KEY} name=ops\n")
    keys = read_api_keys(PublicConfig(api_keys_file=path))
    assert keys is not None and keys.source == str(path) and keys.count == 1


def test_a_missing_file_is_a_config_error_naming_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "api-keys"
    (issue,) = read_issues(path)
    assert (issue.file, issue.key) == ("qwend.toml", "public.api_keys_file")
    assert f"cannot read the API keys file {path}: No such file or directory" in issue.message
    assert "remove public.api_keys_file" in issue.message


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "api-keys"
    path.write_bytes(b"\xff\xfe\x00bad")  # not UTF-8
    (issue,) = read_issues(path)
    assert issue.key == "public.api_keys_file" and str(path) in issue.message
    (issue,) = read_issues(tmp_path)  # a directory
    assert "Is a directory" in issue.message


def test_an_empty_file_is_a_config_error_of_that_file(tmp_path: Path) -> None:
    path = keys_file(tmp_path, "# nothing yet\n\n")
    (issue,) = read_issues(path)
    assert issue.file == str(path) and "holds no keys" in issue.message


def test_swap_puts_a_whole_set_in_force_and_logs_no_key() -> None:
    keys = ApiKeys()
    assert not keys.enabled and keys.current is None
    with capture_logs() as logs:
        keys.swap(key_set(f"{KEY} requests_per_minute=5\n{OTHER}\n"))
        assert keys.enabled
        keys.swap(key_set(f"{OTHER}\n"))
        keys.swap(None)
    assert not keys.enabled
    assert [(e["event"], e.get("keys"), e.get("limited")) for e in logs] == [
        ("API keys loaded", 2, 1),
        ("API keys loaded", 1, 0),
        ("API keys turned off: public endpoints accept requests without a key", None, None),
    ]
    assert logs[-1]["log_level"] == "warning"
    assert all(OTHER not in str(entry) and KEY not in str(entry) for entry in logs)


@dataclass
class Clock:
    """A monotonic clock the test moves by hand."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_over_its_limit_is_logged_once_per_episode_by_name() -> None:
    clock = Clock()
    keys = ApiKeys(key_set(f"{KEY} name=alice requests_per_minute=1\n"), clock=clock)
    current = keys.current
    assert current is not None
    (alice,) = current.keys
    with capture_logs() as logs:
        assert keys.admit(alice, 1) is None
        for _ in range(50):
            assert keys.admit(alice, 1) is not None
        clock.now += 60
        assert keys.admit(alice, 1) is None
        assert keys.admit(alice, 1) is not None
    held = [e for e in logs if e["event"] == "API key over its rate limit"]
    assert len(held) == 2
    assert held[0]["key"] == "alice" and held[0]["limit"] == "requests"
    assert held[0]["retry_after_s"] == 60 and held[0]["log_level"] == "warning"
    assert all(KEY not in str(entry) for entry in logs)


# -- over HTTP ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def endpoints(keys: ApiKeys, *targets: str) -> AsyncIterator[tuple[list[str], FakeLane]]:
    """One public endpoint per target, all built with the same ``keys``, on a fake lane."""
    async with fake_lanes(FakeLane("fast")) as (fast,):
        table = LaneTable((routable("fast", fast.url, "throughput"),))
        async with run_router(table) as handle, contextlib.AsyncExitStack() as stack:
            urls = []
            for target in targets or ("router",):
                public = PublicEndpoint(ListenAddress("127.0.0.1", 0), target)
                app = make_public_app(public, handle.router, keys)
                urls.append(await stack.enter_async_context(serve_app(app)))
            yield urls, fast


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


def client(url: str, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


async def ask(c: openai.AsyncOpenAI, max_tokens: int = 8) -> str | None:
    done = await c.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=max_tokens
    )
    return done.choices[0].message.content


@pytest.mark.parametrize("target", ["router", "role:throughput"])
async def test_requests_need_a_right_key(target: str) -> None:
    keys = ApiKeys(key_set(f"# ops\n{KEY}\n"))
    async with endpoints(keys, target) as ([url], fast):
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


async def test_a_key_header_of_bytes_that_are_not_utf8_is_a_401() -> None:
    async with endpoints(ApiKeys(key_set(f"{KEY}\n"))) as ([url], fast):
        host, port = url.removeprefix("http://").split(":")
        for junk in (b"\xff\xfe", b"\xed\xa0\x80", KEY.encode() + b"\xc3"):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(
                b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Authorization: Bearer " + junk + b"\r\n\r\n"
            )
            status_line = await asyncio.wait_for(reader.readline(), 10)
            writer.close()
            await writer.wait_closed()
            assert status_line.startswith(b"HTTP/1.1 401 "), (junk, status_line)
        assert fast.requests == 0


async def test_every_endpoint_follows_one_swap_on_and_off() -> None:
    # Keys off at first: the empty holder must still be the one every endpoint checks.
    keys = ApiKeys()
    async with endpoints(keys, "router", "role:throughput") as (urls, _):
        assert [(await call(url, None))[0] for url in urls] == [200, 200]
        keys.swap(key_set(f"{KEY}\n"))
        assert [(await call(url, None))[0] for url in urls] == [401, 401]
        assert [(await call(url, f"Bearer {OTHER}"))[0] for url in urls] == [401, 401]
        assert [(await call(url, f"Bearer {KEY}"))[0] for url in urls] == [200, 200]
        keys.swap(key_set(f"{OTHER}\n"))
        assert [(await call(url, f"Bearer {KEY}"))[0] for url in urls] == [401, 401]
        assert [(await call(url, f"Bearer {OTHER}"))[0] for url in urls] == [200, 200]
        keys.swap(None)
        assert [(await call(url, None))[0] for url in urls] == [200, 200]


async def test_a_key_over_its_request_rate_gets_429_with_retry_after() -> None:
    clock = Clock()
    keys = ApiKeys(key_set(f"{KEY} name=alice requests_per_minute=2\n{OTHER}\n"), clock=clock)
    async with endpoints(keys, "router", "role:throughput") as ([router, pinned], fast):
        alice_router, alice_pinned = client(router, KEY), client(pinned, KEY)
        other = client(router, OTHER)
        try:
            assert await ask(alice_router)
            assert await ask(alice_pinned)  # one bucket for the key, whatever the port
            with pytest.raises(openai.RateLimitError) as caught:
                await ask(alice_router)
            response = caught.value.response
            assert response.status_code == 429
            assert response.headers["Retry-After"] == "30"  # one request per 30 s
            error = response.json()["error"]
            assert error["code"] == "rate_limit_exceeded" and error["type"] == "rate_limit_error"
            assert "2 requests per minute" in error["message"]
            assert KEY not in error["message"]
            assert fast.requests == 2  # the refused one never reached a lane
            for _ in range(5):
                assert await ask(other)  # other keys are not held back
            clock.now += 30
            assert await ask(alice_pinned)
            with pytest.raises(openai.RateLimitError):
                await ask(alice_pinned)
        finally:
            for c in (alice_router, alice_pinned, other):
                await c.close()


async def test_a_key_over_its_token_rate_gets_429() -> None:
    clock = Clock()
    keys = ApiKeys(key_set(f"{KEY} tokens_per_minute=600\n"), clock=clock)
    async with endpoints(keys) as ([url], _):
        c = client(url, KEY)
        try:
            assert await ask(c, max_tokens=400)
            with pytest.raises(openai.RateLimitError) as caught:
                await ask(c, max_tokens=400)  # about 200 tokens left: ~20 s to go
            retry = int(caught.value.response.headers["Retry-After"])
            assert 15 <= retry <= 45
            clock.now += retry
            assert await ask(c, max_tokens=400)
            with pytest.raises(openai.RateLimitError) as caught:
                await ask(c, max_tokens=5000)  # never fits in 600 tokens a minute
            assert "Retry-After" not in caught.value.response.headers
            assert "lower max_tokens" in caught.value.response.json()["error"]["message"]
        finally:
            await c.close()


async def test_no_keys_file_accepts_requests_without_a_key() -> None:
    async with endpoints(ApiKeys()) as ([url], fast):
        assert (await call(url, None))[0] == 200
        assert fast.requests == 1
