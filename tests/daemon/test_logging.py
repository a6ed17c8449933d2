"""``qwend --log-format json``: every line the daemon writes is JSON, audit and promotion lines too.

Loggers made at import time (module-level ``log = get_logger(...)``) exist before
``configure_logging`` runs; this runs the real daemon and drives a control action and
a promotion, whose log lines come from exactly such loggers.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from qwend.api.messages import LaneAction, PromotionOutcome, PromotionRecord
from tests.support.daemonproc import run_daemon, write_config
from tests.support.lanescripts.factory import make_lane


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every non-empty line of ``path`` as JSON; fails naming the first line that is not."""
    records = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"{path.name} line {number} is not JSON: {line!r}") from None
        assert isinstance(record, dict), f"{path.name} line {number}: {line!r}"
        records.append(record)
    return records


async def test_every_daemon_line_is_json_with_log_format_json(tmp_path: Path) -> None:
    incumbent = make_lane("a", npus=(0,))
    candidate = make_lane("a2", role="a", npus=(1,), standby=True)
    cfg = write_config(tmp_path, [incumbent, candidate], drain_timeout_s=1.0)
    async with run_daemon(cfg) as d:
        await d.wait_lanes({"a": "ready"})
        async with d.client() as client:
            await client.lane_action("a", LaneAction.RESTART, force=True)
            await d.wait_lanes({"a": "ready"})
            results = [item async for item in client.promote("a2")]
        final = results[-1]
        assert isinstance(final, PromotionRecord)
        assert final.outcome is PromotionOutcome.PROMOTED, final.reason
        d.send(signal.SIGTERM)
        assert await d.wait_exit(30) == 0

    json_lines(cfg.parent / "qwend.stdout")  # nothing is expected there, but no console lines
    records = json_lines(d.stderr_path)
    events = [(r.get("component"), r.get("event"), r.get("action")) for r in records]
    assert ("control", "control action", "lane.restart") in events
    assert ("control", "control action", "promote") in events
    assert ("promotion", "promotion started", None) in events
    assert ("promotion", "promotion finished", None) in events
