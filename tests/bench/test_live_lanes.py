"""``qwenctl bench`` against real sim lanes over the OpenAI wire (no daemon: URL targets)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from qwend.bench import store
from qwend.cli.exit import ExitStatus
from qwend.cli.main import main
from tests.support.simlane import SimLaneFactory

SCALE = "20"


def qwenctl(tmp_path: Path, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    env = {
        "QWEND_SOCKET": str(tmp_path / "none.sock"),
        "QWEND_BENCH_DIR": str(tmp_path / "r"),
        **(env or {}),
    }
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), env, out, err)
    return code, out.getvalue(), err.getvalue()


def test_bench_compare_baseline_vs_recurrent_v2_at_concurrency_8(
    sim_lane: SimLaneFactory, tmp_path: Path
) -> None:
    baseline = sim_lane(variant="baseline", time_scale=20)
    recurrent = sim_lane(variant="recurrent_v2", time_scale=20)
    common = ["--case", "concurrency_8", "--repeat", "2", "--time-scale", SCALE]
    code, out, err = qwenctl(tmp_path, "bench", baseline.base_url, *common, "--json")
    assert code == ExitStatus.OK, err
    saved = json.loads(out)
    assert saved["meta"]["url"] == baseline.base_url
    assert saved["meta"]["time_scale"] == 20
    assert saved["meta"]["host"] and saved["meta"]["qwend_version"]
    assert [m["completed"] for m in saved["metrics"]] == [16]
    assert f"saved {tmp_path / 'r' / saved['id']}.json" in err
    # A saved result against a live target: the live side runs the saved side's cases.
    code, out, err = qwenctl(tmp_path, "bench", "compare", saved["id"], recurrent.base_url,
                             "--repeat", "2", "--time-scale", SCALE)  # fmt: skip
    assert code == ExitStatus.OK, err
    row = next(line for line in out.splitlines() if line.startswith("concurrency_8"))
    assert row.endswith("B faster"), out
    assert len(store.listing(tmp_path / "r")) == 2
    # Both saved: the same verdict, as JSON.
    first, second = (r.id for r in store.listing(tmp_path / "r"))
    code, out, _ = qwenctl(tmp_path, "bench", "compare", first, second, "--json")
    (case,) = json.loads(out)["cases"]
    assert case["verdict"] == "faster" and case["interval"]["high"] < 1


def test_open_loop_load_reports_vllm_metrics_and_goodput(
    sim_lane: SimLaneFactory, tmp_path: Path
) -> None:
    lane = sim_lane(variant="v3", time_scale=20)
    code, out, err = qwenctl(
        tmp_path, "bench", lane.base_url, "--rate", "2", "--duration", "6", "--arrival",
        "constant", "--mix", "text_8=1,text-100-16=1", "--time-scale", SCALE,
        "--slo-ttft", "100000", "--json",
    )  # fmt: skip
    assert code == ExitStatus.OK, err
    (m,) = json.loads(out)["metrics"]
    assert (m["completed"], m["failed"]) == (11, 0)  # at 0.5, 1.0, ... 5.5 s
    assert m["case"] == "load_constant_2rps_6s"
    assert m["ttft"]["count"] == 11 and m["ttft"]["median"] > 0
    assert m["itl"]["count"] > 0 and m["tpot"]["mean"] > 0
    assert m["output_throughput"] > 0
    assert m["goodput"] == m["request_throughput"]  # a generous SLO every request meets


def test_unreachable_target_counts_failures_and_exits_nonzero(tmp_path: Path) -> None:
    code, out, err = qwenctl(tmp_path, "bench", "http://127.0.0.1:9", "--case", "text_8",
                             "--no-save")  # fmt: skip
    assert code == ExitStatus.ERROR
    assert "text_8" in out and "saved" not in err
    code, _, err = qwenctl(tmp_path, "bench", "--case", "nope")
    assert code == ExitStatus.USAGE and "unknown scenario 'nope'" in err
    code, _, err = qwenctl(tmp_path, "bench", "lane:x", "--case", "text_8")
    assert code == ExitStatus.UNREACHABLE


def test_a_target_that_asks_for_a_key_gets_it_from_a_file_or_openai_api_key(
    sim_lane: SimLaneFactory, tmp_path: Path
) -> None:
    lane = sim_lane(variant="v3", time_scale=20, extra=["--api-key", "sk-bench-7"])
    case = ["--case", "text_8", "--time-scale", SCALE, "--no-save", "--json"]
    code, out, _ = qwenctl(tmp_path, "bench", lane.base_url, *case)
    assert code == ExitStatus.ERROR  # refused: every request a 401
    [m] = json.loads(out)["metrics"]
    assert m["completed"] == 0 and m["failed"] == 1
    key = tmp_path / "key"
    key.write_text("# the lane's key\nsk-bench-7\n")
    code, out, err = qwenctl(tmp_path, "bench", lane.base_url, *case, "--api-key-file", str(key))
    assert code == ExitStatus.OK, err
    assert [(m["completed"], m["failed"]) for m in json.loads(out)["metrics"]] == [(1, 0)]
    env_key = {"OPENAI_API_KEY": "sk-bench-7"}
    code, out, err = qwenctl(tmp_path, "bench", lane.base_url, *case, env=env_key)
    assert code == ExitStatus.OK, err
    code, _, err = qwenctl(tmp_path, "bench", lane.base_url, *case, "--api-key-file", "/nope")
    assert code != ExitStatus.OK and "--api-key-file /nope: cannot read it" in err
