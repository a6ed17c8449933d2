"""The one check behind both check-config commands, its report, and the in-place rule."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from qwend.config.check import render_check
from qwend.config.load import check_config, load_config
from qwend.config.model import promotes_in_place
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


INCUMBENT = next(lane for lane in load_config(SHIPPED).lanes if lane.name == "stable")


@pytest.mark.parametrize(
    ("npus", "port", "host", "in_place"),
    [
        ((4,), 18084, "127.0.0.1", True),
        ((4, 5), 18090, "127.0.0.1", True),
        ((5,), 18084, "127.0.0.1", True),
        ((5,), 18084, "127.0.0.2", True),
        ((5,), 18090, "127.0.0.1", False),
        ((5,), 18090, "127.0.0.2", False),
    ],
    ids=["same-npus-and-port", "shares-an-npu", "same-port", "same-port-other-host",
         "own-npus-and-port", "own-npus-and-port-other-host"],
)  # fmt: skip
def test_in_place_when_the_candidate_cannot_run_beside_the_incumbent(
    npus: tuple[int, ...], port: int, host: str, in_place: bool
) -> None:
    assert (INCUMBENT.npus, INCUMBENT.port, INCUMBENT.host) == ((4,), 18084, "127.0.0.1")
    candidate = replace(INCUMBENT, name="candidate", standby=True, npus=npus, port=port, host=host)
    assert promotes_in_place(candidate, INCUMBENT) is in_place


def test_summary_calls_a_same_port_candidate_on_another_host_in_place(tmp_path: Path) -> None:
    lanes = valid_lanes()
    set_key(lanes["lanes.d/recurrent_v2.toml"], "lane.npus", [5])
    set_key(lanes["lanes.d/recurrent_v2.toml"], "lane.host", "127.0.0.2")
    check = check_config(write_config(tmp_path, valid_main(), lanes))
    assert check.ok, check.issues
    assert "role stable       active stable; candidates: recurrent_v2 (in place)" in (
        render_check(check).splitlines()
    )
