"""The integration marking in tests/conftest.py: what it marks, and that it cannot be dodged."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration  # the inner tests start processes, in this process

# The inner sessions run with this repository's conftest hooks and fixtures.
CONFTEST = "from tests.conftest import *  # noqa: F403\n"
INI = """
[pytest]
markers =
    integration: starts processes
    slow: long
    system: nspawn
addopts = --strict-markers -p no:cacheprovider -p no:textual-snapshot
asyncio_default_fixture_loop_scope = function
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    return pytester


def test_a_module_using_subprocess_is_marked_and_left_out_of_the_quick_loop(
    inner: pytest.Pytester,
) -> None:
    inner.makepyfile(
        test_spawning="""
        import subprocess

        def test_runs_true():
            subprocess.run(["true"], check=True)
        """,
        test_pure="""
        def test_adds():
            assert 1 + 1 == 2
        """,
    )
    quick = inner.runpytest_inprocess("-m", "not integration")
    quick.assert_outcomes(passed=1, deselected=1)
    everything = inner.runpytest_inprocess()
    everything.assert_outcomes(passed=2)


def test_asyncio_subprocesses_and_slow_tests_are_integration(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_async="""
        import asyncio

        async def spawn():
            proc = await asyncio.create_subprocess_exec("true")
            await proc.wait()

        def test_spawns():
            asyncio.run(spawn())
        """,
        test_slow="""
        import pytest

        @pytest.mark.slow
        def test_long():
            pass
        """,
    )
    inner.runpytest_inprocess("-m", "integration").assert_outcomes(passed=2)


def test_an_unmarked_test_that_starts_a_process_fails(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_hidden="""
        import pytest

        def run_true():
            import subprocess  # not visible at module level, so the test is not marked

            subprocess.run(["true"], check=True)

        def test_unmarked():
            run_true()

        @pytest.mark.integration
        def test_marked():
            run_true()
        """
    )
    result = inner.runpytest_inprocess()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_unmarked started * but is not marked integration*"])
