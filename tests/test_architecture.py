"""The parts of the architecture that import-linter cannot see.

The dependency rule itself (layers, no cycles, the pure core, clients only through
``qwend.api``) is import-linter's, configured in pyproject.toml and run by ``make test``.
These tests keep the rest honest: an import inside a function says why it is deferred
(otherwise it is a cycle hidden from a reader), every contract names the modules that
exist, every package is installed, and the tests read nothing outside the checkout.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import REPO

SOURCE_ROOTS = (REPO / "qwend", REPO / "tui")
# Text that points outside the checkout: tests must pass from a clone with nothing beside it.
OUTSIDE_THE_CHECKOUT = ("../shared", "/work/", "QWEND_SHARED")


def python_files(*roots: Path) -> list[Path]:
    return sorted(p for root in roots for p in root.rglob("*.py"))


def deferred_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements inside a function body."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    yield inner


def has_comment(lines: list[str], lineno: int) -> bool:
    """A ``#`` comment on the import's line or the line just above it."""
    here = lines[lineno - 1]
    above = lines[lineno - 2].strip() if lineno >= 2 else ""
    return "#" in here or above.startswith("#")


@pytest.mark.parametrize("path", python_files(*SOURCE_ROOTS), ids=lambda p: p.name)
def test_a_deferred_import_says_why(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    silent = [
        f"{path.relative_to(REPO)}:{node.lineno}"
        for node in deferred_imports(ast.parse(text, filename=str(path)))
        if not has_comment(lines, node.lineno)
    ]
    assert not silent, f"imports inside functions without a comment saying why: {silent}"


def has_a_function_level_import(source: str) -> bool:
    return any(deferred_imports(ast.parse(source)))


def test_the_deferred_import_check_can_fail() -> None:
    assert has_a_function_level_import("def f():\n    import json\n")
    assert not has_a_function_level_import("import json\n\ndef f():\n    return json\n")
    assert has_comment(["# start-up time", "import json"], 2)
    assert not has_comment(["x = 1", "import json"], 2)


def contracts() -> list[dict[str, Any]]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = data["tool"]["importlinter"]["contracts"]
    return found


def module_exists(name: str) -> bool:
    head, *rest = name.split(".")
    if head != "qwend":
        return True  # a third-party package, or qwen_tui as a whole
    path = REPO.joinpath("qwend", *rest)
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_import_linter_contracts_are_configured() -> None:
    kinds = {contract["type"] for contract in contracts()}
    assert {"layers", "acyclic_siblings", "forbidden"} <= kinds


@pytest.mark.parametrize("contract", contracts(), ids=lambda c: str(c["type"]))
def test_contracts_name_modules_that_exist(contract: dict[str, Any]) -> None:
    named = [*contract.get("source_modules", ()), *contract.get("forbidden_modules", ())]
    missing = [name for name in named if not module_exists(name)]
    assert not missing, f"contract {contract['name']!r} names modules that do not exist: {missing}"


def test_every_package_directory_is_installed() -> None:
    """pyproject lists packages explicitly (tui/ maps to qwen_tui): none may be forgotten."""
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


def project_text_files() -> list[Path]:
    """The code, tests, benchmarks and packaging that could read a file at run time."""
    roots = ("qwend", "tui", "tests", "benchmarks", "packaging")
    found = [REPO / "Makefile", REPO / "pyproject.toml"]
    for root in roots:
        found.extend(
            p
            for p in (REPO / root).rglob("*")
            if p.is_file()
            and p.suffix in {".py", ".toml", ".sh", ".bash", ""}
            and "fixtures" not in p.parts
            and ".cache" not in p.parts
            and "__pycache__" not in p.parts
        )
    return sorted(found)


@pytest.mark.parametrize("path", project_text_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_nothing_reads_outside_the_checkout(path: Path) -> None:
    if path == Path(__file__):
        return  # the markers are named here
    text = path.read_text(encoding="utf-8", errors="replace")
    found = [marker for marker in OUTSIDE_THE_CHECKOUT if marker in text]
    assert not found, f"{path.relative_to(REPO)} points outside the checkout: {found}"
