"""Shared pytest fixtures (each part adds its own, under its own heading)."""

from __future__ import annotations

import inspect
import os
import platform
import subprocess
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any

import pytest

from tests.support.simlane import SimLaneFactory, SimLaneProcess, start_sim_lane

pytest_plugins = ["pytester"]  # tests/test_integration_marking.py runs pytest on small files

# -- integration tests: marked at collection, enforced at run time -------------------------
#
# A test that starts a process is an `integration` test, so `pytest -m "not integration"`
# is the seconds-long inner loop (`make test` still runs both). Tests are marked by what
# they use; the guard below fails an unmarked test that spawned a process anyway, so the
# marking cannot fall behind the tests.

SPAWNING_FIXTURES = frozenset({"sim_lane"})
"""Fixtures that start processes: a test using one is an integration test."""

SPAWNING_MODULES = (
    "subprocess",
    "tests.support.simlane",
    "tests.support.simray",
    "tests.support.daemonproc",
    "tests.support.lanescripts",
    "tests.support.groups",
)
"""Modules (and their submodules) whose use makes every test of a test module integration."""

SPAWNING_CALLS = frozenset({"create_subprocess_exec", "create_subprocess_shell"})
"""Names (``asyncio.create_subprocess_exec``) whose use in a test module's code marks it too."""

IMPLIED_BY = ("slow", "system", "browser", "real")
"""Markers of suites that are integration tests by definition (real daemons, nspawn)."""

_spawned: list[str] = []
"""Every process started in this pytest process, in order (the guard reads a slice)."""

_SPAWNED_BEFORE = pytest.StashKey[int]()
"""How many processes had been started when a test's setup began."""


def _from_spawning_module(value: object) -> bool:
    if isinstance(value, ModuleType):
        name: object = value.__name__
    elif isinstance(value, type) or callable(value):
        name = getattr(value, "__module__", None)
    else:
        return False
    return isinstance(name, str) and any(
        name == spawning or name.startswith(f"{spawning}.") for spawning in SPAWNING_MODULES
    )


def _names_used(code: CodeType) -> Iterator[str]:
    """Global and attribute names ``code`` and the code nested in it refer to."""
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _names_used(const)


def _module_spawns(module: ModuleType) -> bool:
    """Whether a test module imports a spawning module or calls asyncio's subprocess API."""
    values = vars(module).values()
    if any(map(_from_spawning_module, values)):
        return True
    own = [v for v in values if inspect.isfunction(v) and v.__module__ == module.__name__]
    return any(not SPAWNING_CALLS.isdisjoint(_names_used(f.__code__)) for f in own)


def _is_integration(item: pytest.Item) -> bool:
    if any(item.get_closest_marker(name) for name in ("integration", *IMPLIED_BY)):
        return True
    if SPAWNING_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return True
    module = getattr(item, "module", None)
    return module is not None and _module_spawns(module)


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark process-spawning tests ``integration`` (before ``-m`` selects)."""
    if _is_integration(item) and item.get_closest_marker("integration") is None:
        item.add_marker(pytest.mark.integration)


def _recorded(original: Callable[..., Any], describe: Callable[..., str]) -> Callable[..., Any]:
    """``original``, noting each call in ``_spawned`` first."""

    def call(*args: Any, **kwargs: Any) -> Any:
        _spawned.append(describe(*args, **kwargs)[:200])
        return original(*args, **kwargs)

    return call


@pytest.fixture(scope="session", autouse=True)
def record_spawns() -> Iterator[None]:
    """Record every process start: ``Popen`` (``subprocess`` and ``asyncio`` both use it),
    ``fork`` (``multiprocessing``, ``os.spawn*``), ``system`` and ``posix_spawn``."""
    # The openai client reads platform.platform(), which runs `uname -p` once per process:
    # run it now so it is not charged to whichever test builds the first client.
    platform.platform()
    with pytest.MonkeyPatch.context() as patch:
        for owner, name, describe in (
            (subprocess.Popen, "__init__", lambda _self, args, *a, **kw: repr(args)),
            (os, "fork", lambda: "os.fork()"),
            (os, "system", lambda command: f"os.system({command!r})"),
            (os, "posix_spawn", lambda path, argv, *a, **kw: repr(argv)),
            (os, "posix_spawnp", lambda path, argv, *a, **kw: repr(argv)),
        ):
            patch.setattr(owner, name, _recorded(getattr(owner, name), describe))
        yield


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Start counting this test's processes (before its fixtures are set up)."""
    item.stash[_SPAWNED_BEFORE] = len(_spawned)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Fail a phase of a test not marked ``integration`` in which a process was started."""
    report = yield
    before = item.stash.get(_SPAWNED_BEFORE, len(_spawned))
    spawned = _spawned[before:]
    item.stash[_SPAWNED_BEFORE] = len(_spawned)
    if spawned and report.passed and item.get_closest_marker("integration") is None:
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} started {len(spawned)} process(es) but is not marked integration: "
            f"{spawned[:3]}\nUse a spawning fixture or helper the conftest knows "
            "(SPAWNING_FIXTURES, SPAWNING_MODULES), or mark it @pytest.mark.integration."
        )
    return report


# -- qwend-sim lanes ----------------------------------------------------------------------


@pytest.fixture
def sim_state_dir(tmp_path: Path) -> Path:
    """A private ``QWEND_SIM_STATE_DIR`` for this test's sim lanes and fake npu-smi."""
    path = tmp_path / "sim-state"
    path.mkdir()
    return path


@pytest.fixture
def sim_lane(sim_state_dir: Path, tmp_path: Path) -> Iterator[SimLaneFactory]:
    """Factory: ``sim_lane(variant="v3", time_scale=20, extra=[...])`` starts a serving sim lane.

    Keyword arguments are those of ``simlane.start_sim_lane`` (state and log
    directories default to this test's). Every lane started is stopped at teardown.
    """
    started: list[SimLaneProcess] = []

    def factory(**kwargs: Any) -> SimLaneProcess:
        kwargs.setdefault("state_dir", sim_state_dir)
        kwargs.setdefault("log_dir", tmp_path / "sim-logs")
        lane = start_sim_lane(**kwargs)
        started.append(lane)
        return lane

    yield factory
    for lane in started:
        lane.stop()
