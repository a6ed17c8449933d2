"""Start real ``qwend-sim serve`` lanes from tests (plain helpers; the fixture is in conftest).

    lane = start_sim_lane(state_dir=tmp_path, variant="v3", time_scale=20)
    client = openai.OpenAI(base_url=lane.openai_url, api_key="x")
    ...
    lane.stop()

``start_sim_lane`` picks a free loopback port, starts the console script in its
own process group, and waits until ``/v1/models`` answers (works with
``--hang-health`` too). If the process exits first, ``SimLaneError`` carries the
tail of its log.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwend.sim import images
from qwend.sim.images import solid_png
from tests.support.polling import wait_for as wait_for  # re-exported for the sim tests

DEFAULT_MODEL = "qwen3.5-9b"


class SimLaneError(RuntimeError):
    """A sim lane did not come up (its log tail is in the message)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def sim_executable() -> str:
    """The ``qwend-sim`` console script next to this interpreter (else on PATH)."""
    beside = Path(sys.executable).parent / "qwend-sim"
    if beside.exists():
        return str(beside)
    found = shutil.which("qwend-sim")
    if found is None:
        raise SimLaneError("qwend-sim is not installed (pip install -e . in the venv)")
    return found


def sim_command(
    port: int,
    *,
    host: str = "127.0.0.1",
    model: str = DEFAULT_MODEL,
    variant: str = "v3",
    lane_name: str | None = None,
    startup_delay: float = 0.0,
    time_scale: float = 20.0,
    extra: Sequence[str] = (),
) -> list[str]:
    """The argv of a sim lane."""
    return [
        sim_executable(),
        "serve",
        "--host", host,
        "--port", str(port),
        "--served-model-name", model,
        "--variant", variant,
        "--lane-name", lane_name or f"sim-{port}",
        "--startup-delay", str(startup_delay),
        "--time-scale", str(time_scale),
        "--log-format", "json",
        *extra,
    ]  # fmt: skip


@dataclass
class SimLaneProcess:
    """A running sim lane subprocess."""

    proc: subprocess.Popen[bytes]
    host: str
    port: int
    model: str
    state_dir: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        """The lane's PID (what npu-smi shows)."""
        return self.proc.pid

    @property
    def base_url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    @property
    def openai_url(self) -> str:
        """Base URL for the ``openai`` client (``.../v1``)."""
        return f"{self.base_url}/v1"

    def log_text(self) -> str:
        """Everything the lane logged so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def wait_serving(self, timeout: float = 30.0) -> None:
        """Block until ``/v1/models`` answers; raise ``SimLaneError`` if the lane exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SimLaneError(
                    f"sim lane on port {self.port} exited with {self.proc.returncode}:\n"
                    + self.log_text()[-2000:]
                )
            try:
                with urllib.request.urlopen(f"{self.openai_url}/models", timeout=2) as resp:
                    json.load(resp)
                    return
            except urllib.error.HTTPError as exc:
                if exc.code == 401:  # started with --api-key: serving, for those with the key
                    return
                time.sleep(0.05)
            except (OSError, urllib.error.URLError, ValueError):
                time.sleep(0.05)
        raise SimLaneError(f"sim lane on port {self.port} not serving after {timeout}s")

    def wait_exit(self, timeout: float = 15.0) -> int:
        """Wait for the process to end; returns its exit status."""
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM (then SIGKILL after ``timeout``); returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(timeout=timeout)


SimLaneFactory = Callable[..., SimLaneProcess]
"""The ``sim_lane`` fixture: starts a sim lane with ``start_sim_lane``'s arguments."""


def start_sim_lane(
    *,
    state_dir: Path,
    log_dir: Path | None = None,
    port: int | None = None,
    host: str = "127.0.0.1",
    model: str = DEFAULT_MODEL,
    variant: str = "v3",
    lane_name: str | None = None,
    npus: str | None = "0",
    startup_delay: float = 0.0,
    time_scale: float = 20.0,
    extra: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    wait: bool = True,
    timeout: float = 30.0,
) -> SimLaneProcess:
    """Start ``qwend-sim serve`` on a free port; wait until it serves unless ``wait=False``.

    ``npus`` becomes ``ASCEND_RT_VISIBLE_DEVICES`` (None: unset); ``state_dir``
    becomes ``QWEND_SIM_STATE_DIR`` so tests do not see each other's lanes.
    """
    chosen = port if port is not None else free_port(host)
    full_env = dict(os.environ if env is None else env)
    full_env["QWEND_SIM_STATE_DIR"] = str(state_dir)
    full_env.pop("ASCEND_RT_VISIBLE_DEVICES", None)
    if npus is not None:
        full_env["ASCEND_RT_VISIBLE_DEVICES"] = npus
    logs = log_dir if log_dir is not None else state_dir
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"sim-{chosen}.log"
    argv = sim_command(
        chosen,
        host=host,
        model=model,
        variant=variant,
        lane_name=lane_name,
        startup_delay=startup_delay,
        time_scale=time_scale,
        extra=extra,
    )
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=full_env, start_new_session=True
        )
    lane = SimLaneProcess(proc, host, chosen, model, state_dir, log_path, full_env)
    if wait:
        try:
            lane.wait_serving(timeout)
        except BaseException:
            lane.stop()
            raise
    return lane


def run_npu_smi(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the fake ``qwend-sim npu-smi`` against ``state_dir``."""
    env = dict(os.environ, QWEND_SIM_STATE_DIR=str(state_dir))
    return subprocess.run(
        [sim_executable(), "npu-smi", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


def png_bytes(width: int, height: int) -> bytes:
    """A valid PNG of the given size."""
    return solid_png(width, height)


def data_url(data: bytes, mime: str = "image/png") -> str:
    """A base64 ``data:`` URL of ``data``."""
    return images.data_url(data, mime)


def metric_value(base_url: str, name: str) -> float:
    """Sum of the samples of metric ``name`` (e.g. ``qwend_sim_requests_aborted_total``)."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def collect_stream(stream: AsyncIterable[Any]) -> tuple[str, Any]:
    """Text and usage of an ``openai`` chat completion stream (usage None if never sent)."""
    pieces: list[str] = []
    usage = None
    async for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
        if chunk.usage is not None:
            usage = chunk.usage
    return "".join(pieces), usage


def msg(text: str) -> Any:
    """A one-turn user chat in the OpenAI shape."""
    return [{"role": "user", "content": text}]


IMAGE_MESSAGE: Any = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": data_url(png_bytes(448, 448))}},
        ],
    }
]
"""A user turn with one 448x448 PNG (256 image tokens on the sim)."""
