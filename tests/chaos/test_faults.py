"""Each fault under a steady mixed load through a real qwend on sim lanes (see scenarios.py).

Every fault must leave: no request failed before its first byte while another eligible
lane was ready, every role's active lane ready again, no lane process outliving the
daemon, descriptors and RSS within the harness's tolerances, and what the fault's own
checks require.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.scenarios import SCENARIOS, failures, run_scenario

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_fault(tmp_path: Path, name: str) -> None:
    row = await run_scenario(tmp_path, SCENARIOS[name])
    assert not failures(row), failures(row)
