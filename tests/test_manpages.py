"""The man pages: generated from the parsers, with SIGNALS, KEYS, EXAMPLES and qwend.toml(5).

Runs packaging/gen_manpages.py as the package build does and reads what it wrote;
groff checks the roff when it is installed (Debian's man-db pulls it in).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("man")
    subprocess.run(
        [
            sys.executable,
            "-B",
            str(REPO / "packaging" / "gen_manpages.py"),
            "--version",
            "9.9",
            "--out",
            str(out / "man1"),
        ],
        check=True,
        timeout=120,
    )
    return {p.name: p.read_text() for p in sorted(out.glob("man*/*"))}


def sections(text: str) -> list[str]:
    return re.findall(r"^\.SH (.+)$", text, flags=re.MULTILINE)


def test_every_page_is_written(pages: dict[str, str]) -> None:
    assert set(pages) == {"qwend.1", "qwenctl.1", "qwen-tui.1", "qwend-sim.1", "qwend.toml.5"}


def test_qwend_has_signals_examples_exit_statuses_and_check_config(pages: dict[str, str]) -> None:
    page = pages["qwend.1"]
    assert {"SIGNALS", "EXAMPLES", "EXIT STATUS", "FILES"} <= set(sections(page))
    assert "SIGHUP" in page and "SIGTERM" in page
    assert "check\\-config" in page
    assert "qwend.toml\\fR(5)" in page


def test_qwenctl_has_signals_examples_and_every_command(pages: dict[str, str]) -> None:
    page = pages["qwenctl.1"]
    assert {"SIGNALS", "EXAMPLES", "EXIT STATUS", "COMMANDS"} <= set(sections(page))
    for command in ("promote", "rollback", "stop", "events", "completion"):
        assert f".SS {command}" in page
    assert "\\-\\-force" in page and "\\-\\-timeout" in page and "130" in page


def test_qwen_tui_lists_its_keys(pages: dict[str, str]) -> None:
    page = pages["qwen-tui.1"]
    assert "KEYS" in sections(page)
    keys = page.split(".SH KEYS", 1)[1].split(".SH", 1)[0]
    for description in ("Quit", "Promote lane", "Stop lane", "lane's log", "Roll back"):
        assert description in keys


def test_qwend_toml_5_documents_every_daemon_key(pages: dict[str, str]) -> None:
    page = pages["qwend.toml.5"]
    assert page.startswith(".TH QWEND.TOML 5")
    doc = (REPO / "docs" / "configuration.md").read_text()
    daemon = doc.split("### `[daemon]`", 1)[1].split("###", 1)[0]
    keys = re.findall(r"^\| `([a-z_]+)` \|", daemon, flags=re.MULTILINE)
    assert "lane_log_max_mb" in keys
    for key in keys:
        assert "\\fB" + key + "\\fR" in page, key  # keys have no dashes to escape


def test_groff_renders_every_page_without_warnings(pages: dict[str, str], tmp_path: Path) -> None:
    groff = shutil.which("groff")
    if groff is None:
        pytest.skip("groff is not installed")
    for name, text in pages.items():
        path = tmp_path / name
        path.write_text(text)
        result = subprocess.run(
            [groff, "-man", "-ww", "-z", str(path)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0 and result.stderr == "", f"{name}: {result.stderr}"
