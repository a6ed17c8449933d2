"""The one check behind both check-config commands, and its report."""

from __future__ import annotations

from pathlib import Path

from qwend.config.check import render_check
from qwend.config.load import check_config, load_config
from qwend.config.summary import render_summary
from tests.support.config_fixtures import set_key, valid_lanes, valid_main, write_config
from tests.support.paths import REPO

SHIPPED = REPO / "etc" / "qwend" / "qwend.toml"


def test_a_valid_config_reports_its_summary() -> None:
    check = check_config(SHIPPED)
    assert check.ok and check.issues == () and check.missing is None
    assert check.config == load_config(SHIPPED)
    assert render_check(check) == render_summary(load_config(SHIPPED))


def test_a_directory_stands_for_its_qwend_toml() -> None:
    check = check_config(SHIPPED.parent)
    assert check.ok and check.path == SHIPPED


def test_a_missing_file_says_so_and_still_carries_the_read_error(tmp_path: Path) -> None:
    check = check_config(tmp_path / "nope.toml")
    assert not check.ok and check.missing == "does not exist"
    assert [issue.message for issue in check.issues] == [
        f"file not found: {tmp_path / 'nope.toml'}"
    ]
    assert render_check(check) == (
        f"qwend check-config: {tmp_path / 'nope.toml'} does not exist; pass the path of qwend.toml"
    )


def test_an_invalid_config_lists_every_issue(tmp_path: Path) -> None:
    lanes = valid_lanes()
    set_key(lanes["lanes.d/stable.toml"], "lane.npus", ["4a"])
    path = write_config(tmp_path, valid_main(), lanes)
    check = check_config(path)
    assert not check.ok and check.missing is None and check.config is None
    assert [(i.file, i.key) for i in check.issues] == [("lanes.d/stable.toml", "lane.npus[0]")]
    assert render_check(check).splitlines()[:2] == [
        f"qwend check-config: {path}: invalid",
        "1 configuration error:",
    ]
