"""Does one sim lane reproduce the seed's 910A latency table?

Starts a real ``qwend-sim serve`` lane per variant, replays the seed's cases over
HTTP (OpenAI chat completions) and prints measured walls next to the seed's,
with the error. ``text_N`` means ``max_tokens=N``; ``mm_8`` is one 448x448 image
(256 image tokens) with ``max_tokens=8``; ``concurrency=K`` sends K ``text_32``
requests at once. The required cases (single requests and concurrency=8) must be
within 10%; the others are reported for information.

    .venv/bin/python benchmarks/sim_calibration.py                 # real time, ~90 s
    .venv/bin/python benchmarks/sim_calibration.py --time-scale 4  # 4x faster, rescaled

Exit status 0 when every required case is within the tolerance, else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from qwend.sim.images import data_url, solid_png

MODEL = "qwen3.5-9b"
TEXT_PROMPT = "Write a short note about the Ascend 910A NPU and its use."  # 24 tokens in chat
IMAGE_PROMPT = "What colour is this image? Answer in one word."
IMAGE_URL = data_url(solid_png(448, 448))
TOLERANCE = 0.10

# The seed's 910A table (seconds). v3 has ranges; the midpoint is compared.
SEED: dict[str, dict[str, tuple[float, float]]] = {
    "baseline": {
        "text_8": (0.946, 0.946), "text_32": (3.644, 3.644), "text_64": (6.670, 6.670),
        "mm_8": (0.695, 0.695), "stream_text_8": (0.995, 0.995),
        "concurrency=4": (4.070, 4.070), "concurrency=8": (9.542, 9.542),
        "mm concurrency=2": (1.163, 1.163), "mm concurrency=4": (2.462, 2.462),
        "mixed(2 text + 2 mm)": (3.581, 3.581),
    },
    "recurrent_v2": {
        "text_8": (0.908, 0.908), "text_32": (3.196, 3.196), "text_64": (6.160, 6.160),
        "mm_8": (0.654, 0.654), "stream_text_8": (0.898, 0.898),
        "concurrency=4": (3.887, 3.887), "concurrency=8": (6.650, 6.650),
        "mm concurrency=2": (1.156, 1.156), "mm concurrency=4": (2.449, 2.449),
        "mixed(2 text + 2 mm)": (2.684, 2.684),
    },
    "v3": {
        "text_8": (0.852, 0.881), "text_32": (3.172, 3.376), "text_64": (5.889, 6.546),
        "mm_8": (0.663, 0.698), "stream_text_8": (0.849, 0.918),
        "concurrency=4": (3.106, 3.106), "concurrency=8": (6.189, 6.189),
        "mm concurrency=2": (1.064, 1.064), "mm concurrency=4": (2.842, 2.842),
        "mixed(2 text + 2 mm)": (3.090, 3.090),
    },
}  # fmt: skip
REQUIRED = ("text_8", "text_32", "text_64", "mm_8", "stream_text_8", "concurrency=8")


@dataclass(frozen=True)
class Row:
    """One measured case."""

    variant: str
    case: str
    seed_s: float
    measured_s: float
    required: bool

    @property
    def error(self) -> float:
        """Relative error against the seed."""
        return (self.measured_s - self.seed_s) / self.seed_s


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_lane(variant: str, port: int, scale: float, state_dir: str) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent / "qwend-sim"
    argv = [
        str(exe), "serve", "--port", str(port), "--served-model-name", MODEL,
        "--variant", variant, "--lane-name", f"calib-{variant}", "--startup-delay", "0",
        "--time-scale", str(scale), "--log-level", "warning",
    ]  # fmt: skip
    env = dict(os.environ, QWEND_SIM_STATE_DIR=state_dir, ASCEND_RT_VISIBLE_DEVICES="0")
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"sim lane for {variant} did not start on port {port}")


def _body(max_tokens: int, image: bool, stream: bool) -> dict[str, object]:
    if image:
        content: object = [
            {"type": "text", "text": IMAGE_PROMPT},
            {"type": "image_url", "image_url": {"url": IMAGE_URL}},
        ]
    else:
        content = TEXT_PROMPT
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": stream,
    }


async def _request(session: aiohttp.ClientSession, url: str, body: dict[str, object]) -> None:
    async with session.post(url, json=body) as resp:
        resp.raise_for_status()
        await resp.read()  # whole body, or the stream up to [DONE]


async def _wall(session: aiohttp.ClientSession, url: str, bodies: list[dict[str, object]]) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(_request(session, url, b) for b in bodies))
    return time.perf_counter() - start


def _cases() -> dict[str, list[dict[str, object]]]:
    text = _body(32, image=False, stream=False)
    image = _body(8, image=True, stream=False)
    return {
        "text_8": [_body(8, image=False, stream=False)],
        "text_32": [text],
        "text_64": [_body(64, image=False, stream=False)],
        "mm_8": [image],
        "stream_text_8": [_body(8, image=False, stream=True)],
        "concurrency=4": [text] * 4,
        "concurrency=8": [text] * 8,
        "mm concurrency=2": [image] * 2,
        "mm concurrency=4": [image] * 4,
        "mixed(2 text + 2 mm)": [text, text, image, image],
    }


async def measure_variant(variant: str, scale: float, repeat: int, state_dir: str) -> list[Row]:
    """Measure every case of ``variant`` on a fresh lane (median of ``repeat`` runs)."""
    port = _free_port()
    proc = _start_lane(variant, port, scale, state_dir)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    rows = []
    try:
        async with aiohttp.ClientSession() as session:
            await _wall(session, url, [_body(2, image=False, stream=False)])  # warm-up
            for case, bodies in _cases().items():
                walls = [await _wall(session, url, bodies) for _ in range(repeat)]
                low, high = SEED[variant][case]
                rows.append(
                    Row(
                        variant,
                        case,
                        (low + high) / 2,
                        statistics.median(walls) * scale,
                        case in REQUIRED,
                    )
                )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return rows


def render(rows: list[Row]) -> str:
    """A Markdown table of the results."""
    lines = [
        "| variant | case | seed (s) | sim (s) | error | required |",
        "| --- | --- | ---: | ---: | ---: | :---: |",
    ]
    for r in rows:
        flag = ("ok" if abs(r.error) <= TOLERANCE else "FAIL") if r.required else "-"
        lines.append(
            f"| {r.variant} | {r.case} | {r.seed_s:.3f} | {r.measured_s:.3f} "
            f"| {r.error:+.1%} | {flag} |"
        )
    return "\n".join(lines)


async def run(variants: list[str], scale: float, repeat: int) -> list[Row]:
    """Measure ``variants`` one after the other."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="qwend-sim-calib-") as state_dir:
        for variant in variants:
            rows += await measure_variant(variant, scale, repeat, state_dir)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(SEED), choices=list(SEED))
    parser.add_argument("--time-scale", type=float, default=1.0, help="run faster, rescale")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case (median)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    rows = asyncio.run(run(args.variants, args.time_scale, args.repeat))
    print(f"time scale {args.time_scale:g} (measured walls multiplied back), repeat {args.repeat}")
    print(render(rows))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in rows], indent=2) + "\n")
    failed = [r for r in rows if r.required and abs(r.error) > TOLERANCE]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
