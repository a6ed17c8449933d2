"""The Grafana dashboard loads under Grafana's dashboard-schema rules, and its PromQL parses.

Grafana itself is not packaged for Debian; these are the rules its dashboard model
enforces on load (schema v36+: datasource references by uid, gridPos on a 24-column
grid, unique panel ids and target refIds) plus what provisioning needs (a stable uid,
a datasource variable instead of a fixed data source). Whether every metric the
dashboard names is one qwend exports is checked against a real daemon's scrape
(``test_metrics_promtool``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.observability.promtool import run_promtool
from tests.observability.shipped import (
    ALERT_TESTS,
    ALERTS,
    PROVISIONING,
    dashboard,
    dashboard_exprs,
    panels,
)

PANEL_TYPES = {"row", "timeseries", "stat", "table", "gauge", "bargauge", "state-timeline"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
BUILTIN_VARS = {"__rate_interval", "__interval", "__range"}
_VAR = re.compile(r"\$\{?(\w+)")


def test_dashboard_header_is_provisioning_ready() -> None:
    doc = dashboard()
    assert re.fullmatch(r"[a-z0-9-]{1,40}", doc["uid"])
    assert doc["title"] and isinstance(doc["schemaVersion"], int) and doc["schemaVersion"] >= 36
    assert "id" not in doc or doc["id"] is None  # a fixed id clashes between Grafana instances
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    source = variables["datasource"]
    assert (source["type"], source["query"]) == ("datasource", "prometheus")
    assert "path: /usr/share/qwend/grafana/dashboards" in PROVISIONING.read_text()
    assert "apiVersion: 1" in PROVISIONING.read_text()


def _rect(panel: dict[str, Any]) -> tuple[int, int, int, int]:
    pos = panel["gridPos"]
    for key in ("h", "w", "x", "y"):
        assert isinstance(pos[key], int) and pos[key] >= 0, (panel["title"], pos)
    assert pos["w"] >= 1 and pos["x"] + pos["w"] <= 24 and pos["h"] >= 1, (panel["title"], pos)
    return pos["x"], pos["y"], pos["x"] + pos["w"], pos["y"] + pos["h"]


def test_panels_follow_the_dashboard_model() -> None:
    doc = dashboard()
    every = list(panels(doc))
    ids = [p["id"] for p in every]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    rects = []
    for panel in every:
        assert panel["type"] in PANEL_TYPES, panel["type"]
        assert panel["title"]
        rects.append((panel["title"], _rect(panel)))
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        targets = panel["targets"]
        assert targets, panel["title"]
        refs = [t["refId"] for t in targets]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in targets:
            assert target["datasource"] == DATASOURCE and target["expr"].strip()
    for i, (title_a, a) in enumerate(rects):  # panels never overlap on the grid
        for title_b, b in rects[i + 1 :]:
            overlap = a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
            assert not overlap, (title_a, title_b)


def test_every_variable_an_expression_uses_is_defined() -> None:
    doc = dashboard()
    defined = {v["name"] for v in doc["templating"]["list"]} | BUILTIN_VARS
    for expr in dashboard_exprs(doc):
        assert set(_VAR.findall(expr)) <= defined, expr


def _substituted(expr: str) -> str:
    """An expression with Grafana's variables replaced as Grafana would before querying."""
    for name, value in (("__rate_interval", "2m"), ("__interval", "1m"), ("__range", "1h")):
        expr = expr.replace("$" + name, value)
    # label_values(SELECTOR, label) is Grafana's, not PromQL: its selector must parse.
    expr = re.sub(r"^label_values\((.*), *\w+\)$", r"\1", expr)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


@pytest.mark.integration
def test_every_dashboard_expression_parses_as_promql(tmp_path: Path) -> None:
    lines = ["groups:", "  - name: qwend-dashboard", "    rules:"]
    for n, expr in enumerate(dashboard_exprs(dashboard())):
        text = _substituted(expr).replace("'", "''")
        lines += [f"      - record: qwend:dashboard:expr{n}", f"        expr: '{text}'"]
    rules = tmp_path / "dashboard-rules.yml"
    rules.write_text("\n".join(lines) + "\n")
    status, output = run_promtool(["check", "rules", str(rules)])
    assert status == 0, output


@pytest.mark.integration
def test_alert_rules_pass_promtool_check_and_unit_tests() -> None:
    status, output = run_promtool(["check", "rules", str(ALERTS)])
    assert status == 0 and "SUCCESS: 9 rules found" in output, output
    status, output = run_promtool(["test", "rules", str(ALERT_TESTS)])
    assert status == 0, output
    for alert in (
        "QwendLaneFailed",
        "QwendLaneCrashLooping",
        "QwendBreakerOpen",
        "QwendHigh429Rate",
        "QwendTTFTHigh",
        "QwendNpuMemoryNearFull",
        "QwendNpuUnhealthy",
        "QwendNpuReadingStale",
    ):
        assert f"alertname: {alert}" in ALERT_TESTS.read_text(), alert
