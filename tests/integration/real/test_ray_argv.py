"""qwend reads a ``ray start`` command line as Ray does: every shipped Ray member's argv,
and the edge cases of click's parsing, go through Ray's own parser (``ray_argv.py`` in
the Ray virtualenv ``make real-ray`` provisions) and through ``parse_ray_start``; both
must see the same node."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from qwend.config.load import load_config
from qwend.config.presets import install_cluster_preset, list_cluster_presets
from qwend.config.rayargs import NPU_RESOURCE, RAY_HEAD_PORT_DEFAULT, parse_ray_start
from tests.integration.real.backend import HERE, cache_dir

pytestmark = pytest.mark.real

EDGE_CASES = [
    ["--head", "--num-gpus=8", "--block"],
    ["--block", "--address=10.0.0.1:6379", "--num-gpus", "8", "--node-ip-address", "10.0.0.2"],
    ["--head", "--port", "7000", "--port=7001"],
    ["--address", "--head"],  # click gives --address the next word
    ["--resources", '{"NPU": 4, "x": 1}'],
    ["--port", "sixty"],
    ["--head=true"],
    ["--block", "--address"],
]


def _shipped(root: Path) -> list[list[str]]:
    """The words after ``ray start`` of every Ray member of the multi-host presets."""
    found = []
    for preset in list_cluster_presets():
        values = {f"nic:{host}": "eth0" for host in preset.hosts}
        values |= {f"address:{h}": f"192.0.2.{i + 10}" for i, h in enumerate(preset.hosts)}
        install_cluster_preset(preset, values, root / preset.name)
        for host in preset.hosts:
            for lane in load_config(root / preset.name / host / "qwend.toml").lanes:
                argv = [] if lane.is_remote else lane.argv()
                if parse_ray_start(argv) is not None:
                    found.append(argv[argv.index("start") + 1 :])
    return found


def _rays_verdicts(argvs: list[list[str]]) -> list[dict[str, object]]:
    python = cache_dir() / "ray-venv" / "bin" / "python"
    if not python.exists():  # optional: `make real-ray` installs it
        pytest.skip(f"Ray is not provisioned ({python}): make real-ray")
    done = subprocess.run(
        [str(python), str(HERE / "ray_argv.py")],
        input=json.dumps(argvs),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    assert isinstance(results, list) and len(results) == len(argvs)
    return results


def test_qwend_reads_ray_start_as_ray_does(tmp_path: Path) -> None:
    shipped = _shipped(tmp_path)
    assert len(shipped) >= 2  # the Ray preset's head and worker
    argvs = shipped + EDGE_CASES
    for args, verdict in zip(argvs, _rays_verdicts(argvs), strict=True):
        ours = parse_ray_start(["ray", "start", *args])
        assert ours is not None
        if not verdict["ok"]:
            assert ours.problems, (args, verdict["error"])
            continue
        assert not ours.problems, (args, ours.problems)
        params = verdict["params"]
        assert isinstance(params, dict)
        resources = json.loads(params["resources"] or "{}")
        assert (ours.head, ours.block, ours.address, ours.node_ip, ours.num_gpus) == (
            params["head"],
            params["block"],
            params["address"],
            params["node_ip_address"],
            params["num_gpus"],
        ), args
        assert ours.port == (params["port"] or RAY_HEAD_PORT_DEFAULT), args
        assert ours.npu_resource == resources.get(NPU_RESOURCE), args
        if args in shipped:
            assert ours.block and params["block"], args
