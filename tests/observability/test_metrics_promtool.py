"""``/metrics`` of a real daemon: promtool accepts it, it carries every promised family,
and every metric the shipped dashboard and alert rules use is among them."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest

from tests.observability.promtool import run_promtool
from tests.observability.scrape import exported_names, scraped_daemon
from tests.observability.shipped import ALERTS, dashboard, dashboard_exprs, metric_names

pytestmark = pytest.mark.integration


async def test_metrics_pass_promtool_and_cover_lanes_npus_latency(tmp_path: Path) -> None:
    async with scraped_daemon(tmp_path) as rig, aiohttp.ClientSession() as session:
        await rig.traffic(session)
        text = await rig.metrics(session)

    status, output = run_promtool(["check", "metrics"], stdin=text.encode())
    assert status == 0 and not output.strip(), output
    assert "quantile=" not in text
    names = exported_names(text)
    # Every metric the shipped dashboard and alert rules use is one qwend exports.
    used = metric_names("\n".join(dashboard_exprs(dashboard())))
    assert used and not used - names, sorted(used - names)
    used = metric_names(ALERTS.read_text())
    assert used and not used - names, sorted(used - names)
    for kind in ("ttft", "itl", "e2e", "queue_wait"):
        assert f"qwend_router_{kind}_seconds_bucket" in names
    # One series per state, the current one at 1.
    ready = 'qwend_lane_state{lane="stable",role="stable",state="ready",variant="v3"} 1.0'
    failed = 'qwend_lane_state{lane="stable",role="stable",state="failed",variant="v3"} 0.0'
    assert ready in text and failed in text
    assert re.search(r'qwend_lane_restarts_total\{lane="stable",[^}]*\} 0\.0', text)
    assert 'qwend_build_info{python="' in text
    assert "# TYPE qwend_promotions_total counter" in text
    # Streamed answers on the text lanes fed TTFT and the token counters.
    ttft = re.findall(r"qwend_router_ttft_seconds_count\{[^}]*\} (\S+)", text)
    assert sum(float(v) for v in ttft) >= 3
    tokens = re.findall(r"qwend_router_completion_tokens_total\{[^}]*\} (\S+)", text)
    assert sum(float(v) for v in tokens) > 0
    # The sim's npu-smi: every chip's memory, AICore, temperature, power and health.
    assert "qwend_npu_reading_stale 0.0" in text
    for gauge in (
        "qwend_npu_memory_used_bytes",
        "qwend_npu_memory_total_bytes",
        "qwend_npu_aicore_utilization_ratio",
        "qwend_npu_temperature_celsius",
        "qwend_npu_power_watts",
        "qwend_npu_health_ok",
    ):
        assert re.search("^" + gauge + r'\{[^}]*npu="0"[^}]*\} \S+$', text, re.MULTILINE), gauge
    assert re.search(r'^qwend_npu_health_info\{[^}]*health="OK"', text, re.MULTILINE)
