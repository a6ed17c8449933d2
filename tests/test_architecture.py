"""The dependency rule from DESIGN.md, enforced.

The pure core imports neither aiohttp nor textual; ``qwend`` never imports
the TUI; qwenctl and qwen-tui reach the daemon only through ``qwend.api``, and
the TUI never imports qwenctl's modules. Checked on the import statements of the source, so a lazy
import inside a function counts too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import REPO

PURE_CORE = (
    "config/model",
    "config/schema",
    "config/parse",
    "config/checks",
    "config/draft",
    "config/check",
    "config/summary",
    "supervisor/states",
    "routing/classify",
    "routing/policy",
    "routing/perf",
    "routing/windows",
    "routing/snapshot",
    "routing/models",
    "routing/breaker",
    "routing/lanetable",
    "tokens",
    "text",
    "api/messages",
    "api/codec",
    "api/describe",
    "npu/parse",
    "npu/forms",
    "npu/model",
    "npu/render",
    "supervisor/restart",
    "errors",
    "supervisor/environment",
    "supervisor/reload",
    "promotion/plan",
)
UI_FRAMEWORKS = ("aiohttp", "textual")
# What the CLI and TUI may import from qwend: the client, the protocol and pure helpers.
CLIENT_SIDE_ALLOWED = (
    "qwend",
    "qwend.api.client",
    "qwend.api.messages",
    "qwend.api.describe",
    "qwend.errors",
    "qwend.text",
    "qwend.config.model",
    "qwend.config.check",
    "qwend.config.load",
    "qwend.npu.parse",
    "qwend.npu.render",
    "qwend.logs",
    "qwend.cli",
    "qwend.__version__",
    "qwend.npu.model",
)


def imported_modules(path: Path) -> Iterator[str]:
    """Every absolute module name imported by the file at ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def pure_core_files() -> list[Path]:
    files: list[Path] = []
    for name in PURE_CORE:
        files.extend(p for p in [REPO / "qwend" / f"{name}.py"] if p.exists())
    return files


def top(module: str) -> str:
    return module.split(".")[0]


@pytest.mark.parametrize("path", pure_core_files(), ids=lambda p: p.name)
def test_pure_core_imports_no_io_framework(path: Path) -> None:
    bad = sorted({m for m in imported_modules(path) if top(m) in UI_FRAMEWORKS})
    assert not bad, f"{path.relative_to(REPO)} is pure core but imports {bad}"


def test_pure_core_is_not_empty() -> None:
    names = {p.stem for p in pure_core_files()}
    assert {"model", "lanetable", "errors"} <= names


@pytest.mark.parametrize(
    "path", sorted((REPO / "qwend").rglob("*.py")), ids=lambda p: str(p.relative_to(REPO))
)
def test_qwend_never_imports_the_tui(path: Path) -> None:
    bad = sorted({m for m in imported_modules(path) if top(m) in ("qwen_tui", "tui")})
    assert not bad, f"{path.relative_to(REPO)} imports the TUI: {bad}"


def client_side_files() -> list[Path]:
    return sorted((REPO / "qwend" / "cli").rglob("*.py")) + sorted((REPO / "tui").rglob("*.py"))


@pytest.mark.parametrize("path", client_side_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_cli_and_tui_reach_the_daemon_only_through_the_client(path: Path) -> None:
    def allowed(module: str) -> bool:
        return any(module == ok or module.startswith(ok + ".") for ok in CLIENT_SIDE_ALLOWED[1:])

    qwend_imports = {m for m in imported_modules(path) if top(m) == "qwend"}
    # ``from qwend import x`` yields both "qwend" and "qwend.x": judge the specific one.
    bad = sorted(m for m in qwend_imports if m != "qwend" and not allowed(m))
    assert not bad, f"{path.relative_to(REPO)} imports daemon internals: {bad}"


@pytest.mark.parametrize(
    "path", sorted((REPO / "tui").rglob("*.py")), ids=lambda p: str(p.relative_to(REPO))
)
def test_the_tui_never_imports_the_cli(path: Path) -> None:
    modules = imported_modules(path)
    bad = sorted({m for m in modules if m == "qwend.cli" or m.startswith("qwend.cli.")})
    assert not bad, f"{path.relative_to(REPO)} imports qwenctl's modules: {bad}"


def test_every_package_directory_is_installed() -> None:
    """pyproject lists packages explicitly (tui/ maps to qwen_tui): none may be forgotten."""
    import tomllib

    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = set()
    for base, name in ((REPO / "qwend", "qwend"), (REPO / "tui", "qwen_tui")):
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base).parts
            found.add(".".join((name, *rel)))
    assert found <= listed, f"packages missing from pyproject: {sorted(found - listed)}"
    # The rest are data-only packages (qwend.demo): they must exist.
    for package in listed - found:
        head, *rest = package.split(".")
        base = REPO / ("tui" if head == "qwen_tui" else "qwend")
        assert base.joinpath(*rest).is_dir(), f"pyproject lists {package}, which does not exist"
