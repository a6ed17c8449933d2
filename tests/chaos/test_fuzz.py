"""Hypothesis fuzzing of every router, public and control endpoint through the real apps.

Bodies of arbitrary JSON shape and depth, wrong types, huge numbers, unicode, raw bytes,
bad content types and odd headers go to ``make_router_app``, ``make_public_app`` (with API
keys) and ``make_control_app`` served on real sockets, in front of in-process fake lanes
and the control fakes. No answer may be a 5xx, none may hang, and nothing may be logged
at error level (an unhandled exception is logged as one). Fixed seed, bounded budget.

The examples run one after the other in one event loop owned by the test (hypothesis
calls a plain function; each example is one ``run_until_complete``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from qwend.api.messages import API_PREFIX
from qwend.config.model import ListenAddress, PublicEndpoint
from qwend.public.app import make_public_app
from qwend.public.keyfile import parse_key_file
from qwend.public.keys import ApiKeys
from qwend.routing.lanetable import LaneTable
from tests.support.control_fakes import serve_control
from tests.support.router_fakes import FakeLane, fake_lanes, routable, run_router
from tests.support.router_fakes import serve as serve_app

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]

KEY = "sk-fuzz-0123456789abcdef"
REQUEST_TIMEOUT_S = 20.0
"""An answer slower than this is a hang (fake lanes answer in milliseconds)."""

FUZZ = settings(
    derandomize=True,
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# ---------------------------------------------------------------- strategies

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["", "m", "user", "system", "assistant", "image_url", "text", "\u202e"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=25,
)
urls = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "data:image/png;base64,iVBORw0KGgo=",
            "data:image/png;base64,",
            "data:,",
            "data:image/png;base64,%%%",
            "http://127.0.0.1:1/x.png",
            "http://[::1]/",
            "http://0x7f000001/",
            "http://2130706433/",
            "file:///etc/passwd",
            "http://[fe80::1%25eth0]/",
            "http://user:pw@169.254.169.254:80/latest",
            "https://\u00e9xample.\u4e2d\u56fd/a.png",
            "http://" + "a" * 300 + ".com/",
        ]
    ),
)
parts = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": json_values}),
    st.fixed_dictionaries(
        {"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": urls})}
    ),
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": json_values}),
    st.dictionaries(st.text(max_size=10), json_values, max_size=3),
)
messages = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "tool"]) | json_values},
    optional={"content": st.text(max_size=80) | st.lists(parts, max_size=3) | json_values},
)
generation = st.fixed_dictionaries(
    {},
    optional={
        "model": st.just("m") | json_values,
        "messages": st.lists(messages, max_size=3) | json_values,
        "prompt": st.text(max_size=40) | json_values,
        "max_tokens": st.integers(min_value=-5, max_value=10**30) | json_values,
        "max_completion_tokens": json_values,
        "stream": st.booleans() | json_values,
        "stream_options": st.fixed_dictionaries({"include_usage": json_values}) | json_values,
        "temperature": json_values,
        "n": json_values,
        "stop": json_values,
    },
)


def _nested(depth: int) -> bytes:
    return b'{"model": "m", "messages": ' + b"[" * depth + b"]" * depth + b"}"


raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.integers(min_value=1, max_value=50_000).map(_nested),
    st.sampled_from([b"", b"{", b"null", b"[]", b'"x"', b"1e999999", b"\xff\xfe{}", b"{}" * 50]),
)
content_types = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=latin-1",
            "application/json; charset=nonexistent",
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/x-www-form-urlencoded",
            "",
            ";;;",
        ]
    ),
)
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=60,
)
header_names = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~",
    min_size=1,
    max_size=20,
)
authorizations = st.one_of(
    st.none(),
    st.just(f"Bearer {KEY}"),
    st.sampled_from(["Bearer", "Bearer ", "bearer " + KEY, "Basic Zm9vOmJhcg==", f"Bearer {KEY}x"]),
    header_text,
)
extra_headers = st.dictionaries(header_names, header_text, max_size=4).map(
    lambda h: {k: v for k, v in h.items() if k.lower() not in ("content-length", "host")}
)


@dataclass(frozen=True)
class Probe:
    """One fuzzed request."""

    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]

    def describe(self) -> str:
        body = self.body[:200] if self.body is not None else None
        return f"{self.method} {self.path} headers={self.headers} body={body!r}"


def probes(paths: list[tuple[str, str]]) -> st.SearchStrategy[Probe]:
    """Requests to ``paths`` (method, path) with fuzzed bodies and headers."""

    @st.composite
    def build(draw: Callable[[st.SearchStrategy[Any]], Any]) -> Probe:
        method, path = draw(st.sampled_from(paths))
        headers: dict[str, str] = draw(extra_headers)
        content_type = draw(content_types)
        if content_type is not None:
            headers["Content-Type"] = content_type
        authorization = draw(authorizations)
        if authorization is not None:
            headers["Authorization"] = authorization
        body: bytes | None = None
        if method == "POST":
            kind = draw(st.sampled_from(["shaped", "json", "raw"]))
            if kind == "shaped":
                body = json.dumps(draw(generation)).encode()
            elif kind == "json":
                body = json.dumps(draw(json_values)).encode()
            else:
                body = draw(raw_bodies)
        return Probe(method, path, body, headers)

    return build()


# ---------------------------------------------------------------- the driver


class ErrorRecords(logging.Handler):
    """Error-level records of the standard logging (aiohttp logs unhandled errors there)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()}")


@contextlib.contextmanager
def watched_logs() -> Iterator[Callable[[], list[str]]]:
    """Everything logged at error level meanwhile, structlog and standard logging."""
    handler = ErrorRecords()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with capture_logs() as events:
            yield (
                lambda: (
                    handler.records
                    + [
                        str(e)
                        for e in events
                        if e.get("log_level") in ("error", "critical", "exception")
                    ]
                )
            )
    finally:
        root.removeHandler(handler)


async def send(session: aiohttp.ClientSession, base: str, probe: Probe) -> tuple[int, bytes]:
    async with session.request(
        probe.method,
        base + probe.path,
        data=probe.body,
        headers=probe.headers,
        skip_auto_headers=["Content-Type"],
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
    ) as resp:
        return resp.status, await resp.read()


def fuzz(
    loop: asyncio.AbstractEventLoop,
    session: aiohttp.ClientSession,
    base: str,
    strategy: st.SearchStrategy[Probe],
) -> None:
    """Send every example; fail on a 5xx, a hang or an error logged."""
    statuses: Counter[int] = Counter()
    with watched_logs() as logged:

        @FUZZ
        @given(strategy)
        def one(probe: Probe) -> None:
            status, body = loop.run_until_complete(send(session, base, probe))
            statuses[status] += 1
            assert status < 500, f"{status} {body[:300]!r} for {probe.describe()}"
            assert not logged(), f"logged {logged()} for {probe.describe()}"

        one()
    # Most examples must have been sent (hypothesis may stop early on duplicates only).
    assert statuses.total() >= FUZZ.max_examples // 2, statuses
    print(f"{base}: {dict(statuses)}")


@contextlib.asynccontextmanager
async def router_and_public() -> AsyncIterator[tuple[str, str]]:
    """The router app and a keyed public app on a text lane and an image lane (fakes)."""
    async with fake_lanes(FakeLane("text"), FakeLane("mm")) as (text, mm):
        table = LaneTable(
            (
                routable("text", text.url, "throughput"),
                routable("mm", mm.url, "multimodal", image=True),
            )
        )
        async with run_router(table) as handle:
            keys = ApiKeys(parse_key_file(f"{KEY} name=fuzz\n", "api-keys"))
            endpoint = PublicEndpoint(ListenAddress("127.0.0.1", 0), "router")
            async with serve_app(make_public_app(endpoint, handle.router, keys)) as public:
                yield handle.url, public


ROUTER_PATHS = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/tokenize"),
    ("GET", "/v1/models"),
    ("GET", "/health"),
    ("GET", "/metrics"),
]
PUBLIC_PATHS = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("GET", "/v1/models"),
    ("GET", "/health"),
]


@pytest.mark.parametrize("which", ["router", "public"])
def test_router_and_public_endpoints_never_answer_5xx(which: str) -> None:
    loop = asyncio.new_event_loop()
    try:

        async def setup(stack: contextlib.AsyncExitStack) -> tuple[aiohttp.ClientSession, str]:
            router, public = await stack.enter_async_context(router_and_public())
            session = await stack.enter_async_context(aiohttp.ClientSession())
            return session, router if which == "router" else public

        stack = contextlib.AsyncExitStack()
        session, base = loop.run_until_complete(setup(stack))
        try:
            paths = ROUTER_PATHS if which == "router" else PUBLIC_PATHS
            fuzz(loop, session, base, probes(paths))
        finally:
            loop.run_until_complete(stack.aclose())
    finally:
        loop.close()


CONTROL_PATHS = [
    ("GET", f"{API_PREFIX}/status"),
    ("GET", f"{API_PREFIX}/lanes"),
    ("GET", f"{API_PREFIX}/lanes/stable"),
    ("GET", f"{API_PREFIX}/lanes/no-such-lane"),
    ("GET", f"{API_PREFIX}/lanes/stable/logs?n=abc"),
    ("GET", f"{API_PREFIX}/lanes/stable/logs?n=-1&previous=maybe"),
    ("GET", f"{API_PREFIX}/lanes/stable/logs?n=99999999999999999999"),
    ("GET", f"{API_PREFIX}/npus"),
    ("GET", f"{API_PREFIX}/promotions"),
    ("POST", f"{API_PREFIX}/lanes/stable/restart"),
    ("POST", f"{API_PREFIX}/lanes/stable/explode"),
    ("POST", f"{API_PREFIX}/lanes/%00%ff/stop"),
    ("POST", f"{API_PREFIX}/promotions"),
    ("POST", f"{API_PREFIX}/rollback"),
    ("POST", f"{API_PREFIX}/reload"),
]


def test_control_endpoints_never_answer_5xx() -> None:
    loop = asyncio.new_event_loop()
    try:

        async def setup(stack: contextlib.AsyncExitStack) -> aiohttp.ClientSession:
            served = await stack.enter_async_context(serve_control())
            connector = aiohttp.UnixConnector(path=str(served.path))
            return await stack.enter_async_context(aiohttp.ClientSession(connector=connector))

        stack = contextlib.AsyncExitStack()
        session = loop.run_until_complete(setup(stack))
        try:
            fuzz(loop, session, "http://qwend", probes(CONTROL_PATHS))
        finally:
            loop.run_until_complete(stack.aclose())
    finally:
        loop.close()
