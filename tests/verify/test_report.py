"""The report's shape: sections, verdicts, Markdown and the environment section."""

from __future__ import annotations

from pathlib import Path

from qwend.verify.environment import environment_section, versions
from qwend.verify.report import Report, Section, Table, Verdict, render_markdown


def report(*verdicts: Verdict) -> Report:
    sections = tuple(
        Section(f"S{i}", v, f"conclusion {i}", (Table(("a", "b"), (("1", "x|y"),)),), ("n",))
        for i, v in enumerate(verdicts)
    )
    return Report("router", "http://r", "now", "0.1.0", True, sections)


def test_markdown_has_every_section_a_summary_and_the_simulation_warning() -> None:
    text = render_markdown(report(Verdict.PASS, Verdict.INFO))
    assert "## 1. S0" in text and "## 2. S1" in text
    assert "| 1 | x\\|y |" in text  # cells cannot break the table
    assert "Conclusion: ✅ pass: conclusion 0" in text
    assert "accuracy measures nothing" in text
    assert text.rstrip().endswith("Overall: all checks passed.")
    assert report(Verdict.PASS, Verdict.INFO, Verdict.SKIPPED).ok
    failed = report(Verdict.PASS, Verdict.FAIL)
    assert not failed.ok and failed.to_dict()["ok"] is False
    assert "some checks FAILED" in render_markdown(failed)


def test_versions_from_the_toolkit_files(tmp_path: Path) -> None:
    assert versions(tmp_path) == {"driver": "unknown", "firmware": "unknown", "CANN": "unknown"}
    (tmp_path / "driver").mkdir()
    (tmp_path / "driver" / "version.info").write_text("Version=24.1.rc2\nascendhal_version=7.35\n")
    (tmp_path / "firmware").mkdir()
    (tmp_path / "firmware" / "version.info").write_text("Version=7.5.0.1.129\n")
    arch = tmp_path / "ascend-toolkit" / "latest" / "aarch64-linux"
    arch.mkdir(parents=True)
    (arch / "ascend_toolkit_install.info").write_text(
        "package_name=Ascend-cann-toolkit\nversion=8.0.RC2\n"
    )
    assert versions(tmp_path) == {
        "driver": "24.1.rc2",
        "firmware": "7.5.0.1.129",
        "CANN": "8.0.RC2",
    }


def view(health: str) -> dict[str, object]:
    chip = {"chip": 0, "name": "910A", "health": health, "hbm_used_mb": 18432,
            "hbm_total_mb": 32768}  # fmt: skip
    return {
        "reading": {
            "npus": [{"id": 4, "chips": [chip]}, {"id": 5, "chips": [chip]}],
            "tool_version": "24.1.rc2",
        },
        "lane_npus": {"stable": [4]},
    }


def test_environment_judges_the_npus_lanes_use() -> None:
    lanes = [("stable", "baseline", "0.1.0+qwend-sim", "m", "yes")]
    ok = environment_section(view("OK"), True, {"CANN": "unknown"}, lanes)
    assert ok.verdict is Verdict.PASS
    assert ok.tables[0].rows == (("4.0", "910A", "OK", "18432/32768 MB", "stable"),)
    bad = environment_section(view("Warning"), True, {}, lanes)
    assert bad.verdict is Verdict.FAIL and "NPU 4.0 health Warning" in bad.conclusion
    off = environment_section(None, False, {}, lanes)
    assert off.verdict is Verdict.INFO and "monitor is not running" in off.notes[0]
    # What the daemon sends when [monitor] enabled = false: a view that says so.
    reason = "NPU monitor disabled ([monitor] enabled = false)"
    disabled = environment_section({"enabled": False, "error": reason}, True, {}, lanes)
    assert disabled.notes == (f"the daemon's NPU monitor is not running ({reason}): "
                              "no npu-smi health",)  # fmt: skip
    failing = environment_section({"enabled": True, "error": "npu-smi timed out"}, True, {}, lanes)
    assert failing.notes == ("no npu-smi reading: npu-smi timed out",)


def test_environment_lists_each_lanes_backend_packages() -> None:
    lanes = [
        ("mm", "baseline", "0.1.0+qwend-sim", "m", "yes"),
        ("stable", "transformers", "unknown", "/models/tiny", "no"),
    ]
    found = {"stable": {"transformers": "5.2.0", "torch": "2.9.0+cpu", "python": "3.11.2"}}
    section = environment_section(None, False, {}, lanes, found)
    assert section.tables[-1].rows == (
        ("mm", "baseline", "0.1.0+qwend-sim", "unknown", "m", "yes"),
        ("stable", "transformers", "unknown", "torch 2.9.0+cpu, transformers 5.2.0",
         "/models/tiny", "no"),
    )  # fmt: skip
    assert section.data["packages"] == {
        "mm": {"simulated": True},
        "stable": {**found["stable"], "simulated": False},
    }


def test_a_real_deployment_with_a_simulated_lane_says_which() -> None:
    mixed = Report("router", "http://r", "now", "0.1.0", False, (), ("mm",))
    text = render_markdown(mixed)
    assert "| lanes | real backends; simulated: mm |" in text
    assert "accuracy measures nothing" not in text
    assert mixed.to_dict()["simulated_lanes"] == ["mm"]
    real = render_markdown(Report("router", "http://r", "now", "0.1.0", False, ()))
    assert "| lanes | real backends |" in real
