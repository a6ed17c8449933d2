"""The verification report (pure): sections with a verdict, as Markdown or JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INFO = "info"
    """Reported, not judged (a simulated lane's accuracy, an unknown version)."""
    SKIPPED = "skipped"
    """Not applicable here (no multimodal lane, no router)."""


MARK = {Verdict.PASS: "✅", Verdict.FAIL: "❌", Verdict.INFO: "ℹ️", Verdict.SKIPPED: "⏭️"}


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def markdown(self) -> list[str]:
        aligns = ["---"] * len(self.header)
        lines = ["| " + " | ".join(self.header) + " |", "|" + "|".join(aligns) + "|"]
        lines += [
            "| " + " | ".join(cell.replace("|", "\\|") for cell in r) + " |" for r in self.rows
        ]
        return lines


@dataclass(frozen=True)
class Section:
    title: str
    verdict: Verdict
    conclusion: str
    tables: tuple[Table, ...] = ()
    notes: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)
    """Figures for --json."""


@dataclass(frozen=True)
class Report:
    target: str
    url: str
    generated_at: str
    qwend_version: str
    simulated: bool
    """Every lane that served the report is a simulator: the figures measure no model."""
    sections: tuple[Section, ...]
    simulated_lanes: tuple[str, ...] = ()
    """The simulated lanes among real ones (a real text lane beside a sim image lane)."""

    @property
    def ok(self) -> bool:
        return all(s.verdict is not Verdict.FAIL for s in self.sections)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "url": self.url,
            "generated_at": self.generated_at,
            "qwend_version": self.qwend_version,
            "simulated": self.simulated,
            "simulated_lanes": list(self.simulated_lanes),
            "ok": self.ok,
            "sections": [
                {
                    "title": s.title,
                    "verdict": s.verdict.value,
                    "conclusion": s.conclusion,
                    "tables": [{"header": t.header, "rows": t.rows} for t in s.tables],
                    "notes": list(s.notes),
                    "data": s.data,
                }
                for s in self.sections
            ],
        }


def _lanes_kind(report: Report) -> str:
    if report.simulated:
        return "simulated (qwend-sim)"
    if report.simulated_lanes:
        return "real backends; simulated: " + ", ".join(report.simulated_lanes)
    return "real backends"


def render_markdown(report: Report) -> str:
    """The report in the shape of a deployment verification document."""
    lines = ["# qwend deployment verification", ""]
    lines += Table(
        ("item", "value"),
        (
            ("target", f"{report.target} ({report.url})"),
            ("generated", report.generated_at),
            ("qwend version", report.qwend_version),
            ("lanes", _lanes_kind(report)),
        ),
    ).markdown()
    if report.simulated:
        lines += ["", "> Simulated lanes: latency follows the simulator's calibration and "
                  "accuracy measures nothing."]  # fmt: skip
    for n, section in enumerate(report.sections, 1):
        lines += ["", f"## {n}. {section.title}", ""]
        for table in section.tables:
            lines += [*table.markdown(), ""]
        lines += [f"- {note}" for note in section.notes]
        if section.notes:
            lines.append("")
        lines.append(
            f"Conclusion: {MARK[section.verdict]} {section.verdict.value}: {section.conclusion}"
        )
    lines += ["", "## Summary", ""]
    lines += Table(
        ("section", "verdict", "conclusion"),
        tuple(
            (s.title, f"{MARK[s.verdict]} {s.verdict.value}", s.conclusion) for s in report.sections
        ),
    ).markdown()
    overall = "all checks passed" if report.ok else "some checks FAILED"
    lines += ["", f"Overall: {overall}."]
    return "\n".join(lines) + "\n"


def worst(verdicts: Sequence[Verdict]) -> Verdict:
    """FAIL over PASS over INFO over SKIPPED."""
    for v in (Verdict.FAIL, Verdict.PASS, Verdict.INFO):
        if v in verdicts:
            return v
    return Verdict.SKIPPED
