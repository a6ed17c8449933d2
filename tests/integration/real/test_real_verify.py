"""``qwenctl verify`` against a qwend whose ``stable`` lane is the real ``transformers serve``.

The report must be complete against a real backend: every section with a verdict, the
lane's backend packages read from its own interpreter (the transformers virtualenv),
the accuracy section measured on a real model (a tiny random one: the score is not
asserted, only that it is reported as a real measurement), endpoints and routes passing.
``qwenctl`` runs as a subprocess, as an operator runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qwend.cli.exit import ExitStatus
from tests.integration.real.backend import PUBLIC_MODEL, transformers_lane, venv_bin
from tests.integration.real.test_real_lanes import sim_lane
from tests.support.daemonproc import free_port, run_daemon, write_config

pytestmark = [pytest.mark.real, pytest.mark.timeout(900)]

QWENCTL = [sys.executable, "-c", "import sys; from qwend.cli.main import main; sys.exit(main())"]
# Few and short requests: the tiny model on two busy CPU cores answers in about a second.
SMALL = ["--requests", "3", "--total", "4", "--concurrency", "2", "--gsm8k-samples", "3",
         "--shots", "2", "--max-tokens", "24", "--min-accuracy", "0"]  # fmt: skip
TITLES = ("Environment", "Endpoints", "Routes", "Latency", "Throughput", "Accuracy (GSM8K)")


def _installed(program: str, package: str) -> str:
    """The version of ``package`` as the real backend's own interpreter sees it."""
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    done = subprocess.run(
        [str(venv_bin(program)), "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def _qwenctl(socket: Path, *argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *QWENCTL,
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "QWEND_SOCKET": str(socket)},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 600)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_verify_report_is_complete_against_the_real_lane(tmp_path: Path) -> None:
    lanes = [
        transformers_lane("stable", "stable", free_port(), npus=(4,)),
        sim_lane("mm", "multimodal", "baseline", 7, image=True),
    ]
    config = write_config(tmp_path / "etc", lanes)
    expected = {p: _installed("python", p) for p in ("transformers", "torch")}
    async with run_daemon(config) as daemon:
        await daemon.wait_lanes({"stable": "ready", "mm": "ready"}, timeout=300)
        started = time.monotonic()
        code, out, err = await _qwenctl(daemon.control_socket, "verify", *SMALL, "--json")
        took = time.monotonic() - started
        assert code == ExitStatus.OK, out + err
        report = json.loads(out)
        print(f"real-backend verify --json: {took:.1f} s")
        print(json.dumps(report, indent=1)[:6000])
        sections = {s["title"]: s for s in report["sections"]}
        assert tuple(sections) == TITLES
        assert all(s["verdict"] in ("pass", "info") for s in sections.values()), sections
        assert report["ok"] and not report["simulated"]

        environment = sections["Environment"]
        packages = environment["data"]["packages"]
        assert packages["stable"]["transformers"] == expected["transformers"]
        assert packages["stable"]["torch"] == expected["torch"]
        assert packages["stable"]["simulated"] is False
        assert packages["mm"]["simulated"] is True
        # No NPU here and the monitor is off in this config: said so, not judged.
        assert environment["verdict"] == "info"
        assert "monitor is not running" in environment["notes"][0]

        for title in ("Endpoints", "Routes", "Latency", "Throughput"):
            assert sections[title]["verdict"] == "pass", sections[title]
        routes = {row[0]: row[1] for row in sections["Routes"]["tables"][0]["rows"]}
        assert routes == {"short text": "stable", "long text": "stable", "image": "mm"}

        accuracy = sections["Accuracy (GSM8K)"]
        # --min-accuracy 0: judged (pass), on a real model, whatever the tiny model scores.
        assert accuracy["verdict"] == "pass", accuracy
        assert accuracy["data"]["simulated"] is False
        assert accuracy["data"]["answered"] == accuracy["data"]["samples"] == 3
        assert 0 <= accuracy["data"]["accuracy"] <= 1
        assert "simulated" not in accuracy["conclusion"]

        # The Markdown report of the same deployment, written to a file as well.
        md_file = tmp_path / "report.md"
        code, out, err = await _qwenctl(
            daemon.control_socket, "verify", *SMALL, "--output", str(md_file)
        )
        assert code == ExitStatus.OK, out + err
        print(out)
        assert md_file.read_text() == out
        for title in TITLES:
            assert f"{title}" in out
        assert f"transformers {expected['transformers']}" in out
        assert f"torch {expected['torch']}" in out
        assert PUBLIC_MODEL in out

        # The real lane directly (no router): it knows the model by its path, and the
        # report asks it by that name; no routes section, still complete.
        code, out, err = await _qwenctl(
            daemon.control_socket, "verify", "lane:stable", *SMALL, "--json"
        )
        assert code == ExitStatus.OK, out + err
        direct = {s["title"]: s for s in json.loads(out)["sections"]}
        assert tuple(direct) == TITLES
        assert direct["Routes"]["verdict"] == "skipped"
        assert direct["Endpoints"]["verdict"] == "pass", direct["Endpoints"]
        assert direct["Accuracy (GSM8K)"]["verdict"] == "pass"
        assert direct["Accuracy (GSM8K)"]["data"]["simulated"] is False
        assert list(direct["Environment"]["data"]["packages"]) == ["stable"]
