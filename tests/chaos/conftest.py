"""The chaos suite prints its per-fault table at the end of the run."""

from __future__ import annotations

import pytest

from tests.chaos.harness import TABLE_HEADER, table_line
from tests.chaos.scenarios import ROWS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ROWS:
        return
    terminalreporter.section("chaos: per fault")
    terminalreporter.write_line(TABLE_HEADER)
    for row in ROWS:
        terminalreporter.write_line(table_line(row))
