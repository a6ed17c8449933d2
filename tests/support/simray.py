"""Start real ``qwend-sim ray start --block`` nodes from tests (plain helpers).

    head = start_ray_node(tmp_path, "head", ["--head", "--port", str(port), "--num-gpus", "2"])
    worker = start_ray_node(tmp_path, "w1", ["--address", f"127.0.0.1:{port}", "--num-gpus=2"])
    ...
    worker.stop(); head.stop()

Each node runs in its own process group with its log in ``log_dir/ray-NAME.log``;
``--node-name NAME`` and JSON logs are added. The ``ray_node`` fixture of the Ray tests
stops every node it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.simlane import sim_executable

FAST_LINK = ["--ray-heartbeat-s", "0.1", "--ray-heartbeat-timeout-s", "1.5"]
"""Heartbeats fast enough for tests, slack enough for a loaded 2-core machine."""


@dataclass
class RayNodeProcess:
    """A running ``qwend-sim ray start`` node."""

    proc: subprocess.Popen[bytes]
    name: str
    log_path: Path

    @property
    def pid(self) -> int:
        """The node's PID."""
        return self.proc.pid

    def log_text(self) -> str:
        """Everything the node logged so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def wait_exit(self, timeout: float = 15.0) -> int:
        """Wait for the process to end; its exit status."""
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGCONT and SIGTERM (SIGKILL after ``timeout``); the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(timeout=timeout)


def start_ray_node(
    state_dir: Path,
    name: str,
    flags: Sequence[str],
    *,
    log_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> RayNodeProcess:
    """Start ``qwend-sim ray start --block --node-name NAME FLAGS`` (no waiting)."""
    full_env = dict(os.environ if env is None else env)
    full_env["QWEND_SIM_STATE_DIR"] = str(state_dir)
    full_env.pop("ASCEND_RT_VISIBLE_DEVICES", None)
    full_env.pop("RAY_ADDRESS", None)
    logs = log_dir if log_dir is not None else state_dir
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"ray-{name}.log"
    argv = [
        sim_executable(), "ray", "start", "--block", "--node-name", name,
        "--log-format", "json", *FAST_LINK, *flags,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=full_env, start_new_session=True
        )
    return RayNodeProcess(proc, name, log_path)
