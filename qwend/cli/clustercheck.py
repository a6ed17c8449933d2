"""``qwenctl check-config --cluster PATH...``: several hosts' configurations checked
together (each on its own, then across hosts), as ``qwend check-config --cluster``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qwend.api.messages import ConfigIssueInfo
from qwend.config.check import ClusterCheck, render_cluster_check
from qwend.config.load import check_cluster
from qwend.errors import ConfigIssue


def _issues(issues: Sequence[ConfigIssue]) -> list[dict[str, Any]]:
    return [ConfigIssueInfo(i.file, i.key, i.message).to_dict() for i in issues]


def cluster_data(check: ClusterCheck) -> dict[str, Any]:
    """The JSON of ``check-config --cluster --json``."""
    hosts = [
        {
            "path": str(h.path),
            "name": h.config.cluster.name if h.config is not None else None,
            "ok": h.ok,
            "errors": _issues(h.issues),
            "warnings": list(h.warnings),
        }
        for h in check.hosts
    ]
    cross = check.cross
    return {
        "ok": check.ok,
        "hosts": hosts,
        "compared": cross is not None,
        "errors": _issues(cross.issues) if cross is not None else [],
        "warnings": list(cross.warnings) if cross is not None else [],
    }


def run_cluster_check(paths: Sequence[str]) -> tuple[ClusterCheck, dict[str, Any], str, str]:
    """(outcome, JSON-able result, stdout text, stderr text)."""
    check = check_cluster([Path(p) for p in paths])
    out, err = render_cluster_check(check)
    return check, cluster_data(check), out, err
