"""The observability files qwend ships (packaging/), as tests read them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.paths import REPO

DASHBOARD = REPO / "packaging" / "grafana" / "qwend-dashboard.json"
PROVISIONING = REPO / "packaging" / "grafana" / "qwend-dashboards.yaml"
ALERTS = REPO / "packaging" / "prometheus" / "qwend-alerts.yml"
ALERT_TESTS = Path(__file__).with_name("alerts_test.yml")
_METRIC = re.compile(r"\bqwend_[a-z0-9_]+")


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def panels(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    for panel in doc["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs(doc: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and variable queries."""
    exprs = [t["expr"] for p in panels(doc) for t in p.get("targets", [])]
    for var in doc["templating"]["list"]:
        if var["type"] == "query":
            exprs.append(var["query"]["query"])
    return exprs


def metric_names(text: str) -> set[str]:
    """The qwend metric names ``text`` uses."""
    return set(_METRIC.findall(text))
