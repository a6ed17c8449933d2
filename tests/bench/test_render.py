"""The result table puts the seed's figure beside the measured wall where it applies."""

from __future__ import annotations

from qwend.bench.render import render_result
from tests.bench.helpers import result


def test_seed_column_for_a_known_variant_and_lane_attribution() -> None:
    r = result(
        "x", {"concurrency_8": [[9.0] * 7 + [9.6]]}, lanes={"stable": "baseline"}, lane="stable"
    )
    text = render_result(r)
    row = next(line for line in text.splitlines() if line.startswith("concurrency_8"))
    assert "9.600" in row and "9.542" in row and "+0.6%" in row and "stable:8" in row
    unknown = render_result(result("y", {"concurrency_8": [[9.6]]}))
    row = next(line for line in unknown.splitlines() if line.startswith("concurrency_8"))
    assert "9.542" not in row
