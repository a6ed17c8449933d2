"""The router's statistics snapshot."""

from __future__ import annotations

import json

import pytest

from qwend.routing.snapshot import RouterSnapshot
from qwend.routing.windows import LatencyStats


def test_snapshot_is_json_able() -> None:
    snap = RouterSnapshot("least_work", 32, 0.0, 60.0, (), (), 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0)
    assert json.loads(json.dumps(snap.to_dict()))["policy"] == "least_work"
    with pytest.raises(KeyError):
        snap.lane("nope")
    assert LatencyStats().tokens_per_s == 0.0
