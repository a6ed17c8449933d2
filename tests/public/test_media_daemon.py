"""The media URL policy and the JSON nesting bound through a real daemon (openai package)."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import openai
import pytest
import tomli_w

from qwend.config.model import Capabilities
from tests.router.test_media import ALLOWED_HOST, DATA_URL, REFUSED_URLS
from tests.support.daemonproc import DaemonProc, free_port, run_daemon, write_config
from tests.support.lanescripts.factory import make_lane


def configure(config: Path, public_port: int) -> None:
    doc = tomllib.loads(config.read_text())
    doc["router"]["media_allowed_hosts"] = [ALLOWED_HOST]
    doc["public"] = {"endpoints": [{"listen": f"127.0.0.1:{public_port}", "target": "router"}]}
    config.write_bytes(tomli_w.dumps(doc).encode())


def image_message(url: str) -> Any:
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is in this image?"},
            {"type": "image_url", "image_url": {"url": url}},
        ],
    }


async def test_internal_urls_are_refused_by_a_running_daemon_and_never_reach_the_lane(
    tmp_path: Path,
) -> None:
    mm = dataclasses.replace(
        make_lane("mm", role="multimodal", model="m"),
        capabilities=Capabilities(text=True, image=True),
    )
    config = write_config(tmp_path, [mm])
    port = free_port()
    configure(config, port)
    async with run_daemon(config) as d:
        await d.wait_notify(lambda m: m == "STATUS=1/1 lanes ready")
        client = openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0
        )
        try:
            for url in REFUSED_URLS:
                with pytest.raises(openai.BadRequestError) as refused:
                    await client.chat.completions.create(
                        model="m", messages=[image_message(url)], max_tokens=4
                    )
                assert refused.value.status_code == 400, url
                assert refused.value.code == "media_url_refused", url
                assert refused.value.param == "messages[0].content[1].image_url.url", url
            with pytest.raises(openai.BadRequestError, match="levels deep"):
                await client.chat.completions.create(
                    model="m",
                    messages=[{"role": "user", "content": "hi"}],
                    extra_body={"nested": _deep(200)},
                )
            assert await lane_requests(d, "mm") == 0
            for url in (DATA_URL, f"https://{ALLOWED_HOST}/cat.png"):
                raw = await client.chat.completions.with_raw_response.create(
                    model="m", messages=[image_message(url)], max_tokens=4
                )
                assert (raw.http_response.status_code, raw.headers["x-qwend-lane"]) == (200, "mm")
        finally:
            await client.close()
        assert await lane_requests(d, "mm") == 2
    assert "Traceback" not in d.stderr()


async def lane_requests(d: DaemonProc, name: str) -> int:
    """Requests the router started on lane ``name`` (from the control socket)."""
    stats = (await d.lanes())[name].stats
    assert stats is not None
    return stats.requests


def _deep(depth: int) -> object:
    doc: object = []
    for _ in range(depth - 1):
        doc = [doc]
    return doc
