"""A bounded streaming load client, run inside a namespace (``python -m tests.support.netload``).

Two workers send short streaming chat requests to ``URL`` until ``STOP`` exists (or
``--max-s`` passes), then print one JSON line per request: start and end (monotonic),
status, the answering lane, whether any body byte arrived, and the error if one. A
request "failed before the first byte" when it got no 200 or no byte at all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.paths import REPO


async def one(session: aiohttp.ClientSession, url: str, model: str) -> dict[str, Any]:
    doc = {"model": model, "messages": [{"role": "user", "content": "hi"}],
           "max_tokens": 8, "stream": True}  # fmt: skip
    record: dict[str, Any] = {"start": time.monotonic(), "status": 0, "lane": "",
                              "first_byte": False, "error": ""}  # fmt: skip
    try:
        async with session.post(url + "/v1/chat/completions", json=doc) as resp:
            record["status"] = resp.status
            record["lane"] = resp.headers.get("X-Qwend-Lane", "")
            async for chunk in resp.content.iter_any():
                if chunk:
                    record["first_byte"] = True
    except (aiohttp.ClientError, TimeoutError) as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
    record["end"] = time.monotonic()
    return record


async def worker(url: str, model: str, stop: Path, until: float, out: list[dict[str, Any]]) -> None:
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while not stop.exists() and time.monotonic() < until:
            out.append(await one(session, url, model))


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("model")
    p.add_argument("stop", type=Path)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--max-s", type=float, default=120.0)
    args = p.parse_args()
    records: list[dict[str, Any]] = []
    until = time.monotonic() + args.max_s
    await asyncio.gather(
        *(worker(args.url, args.model, args.stop, until, records) for _ in range(args.workers))
    )
    for record in records:
        print(json.dumps(record))


def start_load(
    prefix: Sequence[str], url: str, model: str, stop: Path, *, workers: int = 2
) -> subprocess.Popen[bytes]:
    """Run this load client (the test side) under ``prefix`` (``ip netns exec NS``) against
    ``url`` until ``stop`` exists; ``stop_load`` ends it and returns its records."""
    argv = [sys.executable, "-m", "tests.support.netload", url, model, str(stop),
            "--workers", str(workers)]  # fmt: skip
    return subprocess.Popen(
        [*prefix, *argv], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def stop_load(load: subprocess.Popen[bytes], stop: Path) -> list[dict[str, Any]]:
    """Tell a running load client to stop (the test side); its records, one per request."""
    stop.touch()
    stdout, stderr = load.communicate(timeout=90)
    assert load.returncode == 0, stderr.decode()[-2000:]
    return [json.loads(line) for line in stdout.decode().splitlines() if line]


def assert_none_failed_early(records: list[dict[str, Any]]) -> None:
    """No request failed before its first byte: each got a 200 and some body."""
    failed = [r for r in records if r["status"] != 200 or not r["first_byte"]]
    assert not failed, f"{len(failed)} failed before the first byte: {failed[:3]}"


if __name__ == "__main__":
    asyncio.run(main())
