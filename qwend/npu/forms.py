"""Parsers for the smaller npu-smi outputs (pure).

``npu-smi info -m`` (NPU/chip/logic-id map), the ``key : value`` forms of
``npu-smi info -t usages|common|board|health|power|temp -i N`` and ``-l``, and the
``-t topo`` matrix. The big ``npu-smi info`` table lives in :mod:`qwend.npu.parse`,
which re-exports everything here.

All parsers are tolerant of indentation (tabs or spaces), column widths and
blank lines, because those change between driver versions; what they do not
recognise raises :class:`NpuSmiError` quoting the offending line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from qwend.errors import NpuSmiError

# Words that mark a line as npu-smi (or driver) complaining rather than reporting.
_ERROR_WORDS = re.compile(
    r"fail|error|invalid|must input|not found|denied|cannot|can't|unable|usage:|not support",
    re.IGNORECASE,
)
_NA = frozenset({"", "NA", "N/A", "-", "--"})


def error_line(lines: Iterable[str], fallback: str | None = None) -> str:
    """The line to quote when output is not recognised: the most telling complaint.

    Prefers a ``dcmi ... failed`` style line, then the first line with an error
    word, then the first non-blank line; ``fallback`` when there is no text at all.
    """
    text = [ln.strip() for ln in lines if ln.strip()]
    if not text:
        return fallback or "(empty output)"
    for line in text:
        if "dcmi" in line.lower():
            return line
    for line in text:
        if _ERROR_WORDS.search(line):
            return line
    return text[0]


def not_recognised(what: str, line: str) -> NpuSmiError:
    """The error raised for output a parser cannot read."""
    command = f"npu-smi {what}".strip()
    return NpuSmiError(
        f"{command} output not recognised at line: {line!r}; "
        "check the command runs by hand, and save its output for `qwenctl npus --parse FILE`"
    )


def to_int(value: str) -> int | None:
    """``"42"`` -> 42; ``NA``/``-``/empty -> None; ``"42.0"`` -> 42."""
    v = value.strip()
    if v in _NA:
        return None
    try:
        return int(v)
    except ValueError:
        return int(float(v))


def to_float(value: str) -> float | None:
    """``"12.8"`` -> 12.8; ``NA``/``-``/empty -> None."""
    v = value.strip()
    return None if v in _NA else float(v)


# ---------------------------------------------------------------- info -m


@dataclass(frozen=True)
class ChipMapping:
    """One row of ``npu-smi info -m``."""

    npu: int
    """NPU (card) id as npu-smi numbers it (may be 215, 1792, 2048...)."""
    chip: int
    """Chip id within the NPU."""
    logic_id: int
    """Logic device id: what ``ASCEND_RT_VISIBLE_DEVICES`` counts."""
    name: str
    """Chip name (``Ascend 910A``, ``MiniD``, sanitized ``Ascend xxx``)."""


_MAP_ROW = re.compile(r"^(\d+)\s+(\d+)\s+(\d+|-)\s+(\S.*?)\s*$")
_MAP_HEADER = re.compile(r"NPU\s*ID.*Chip\s*ID.*Logic", re.IGNORECASE)


def parse_map(text: str) -> tuple[ChipMapping, ...]:
    """Parse ``npu-smi info -m``; Mcu rows (logic id ``-``) are skipped."""
    rows: list[ChipMapping] = []
    seen_header = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if _MAP_HEADER.search(line):
            seen_header = True
            continue
        m = _MAP_ROW.match(line)
        if m is None:
            raise not_recognised("info -m", error_line([line]) if not seen_header else line)
        if m.group(3) == "-":
            continue  # the board's MCU: not a compute device
        rows.append(ChipMapping(int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)))
    if not rows:
        raise not_recognised("info -m", error_line(text.splitlines()))
    return tuple(rows)


# ---------------------------------------------------------------- key : value forms


Fields = tuple[tuple[str, str], ...]


def field(fields: Fields, key: str) -> str | None:
    """Value of ``key`` (case and inner-space insensitive) in ``fields``."""
    want = _norm(key)
    for k, v in fields:
        if _norm(k) == want:
            return v
    return None


def _norm(key: str) -> str:
    return re.sub(r"\s+", "", key).lower()


@dataclass(frozen=True)
class ChipDetail:
    """The per-chip block of a ``-t`` report."""

    chip: int
    """Chip id within the NPU."""
    fields: Fields
    """Every ``key : value`` of the block, in order (``Chip ID`` itself excluded)."""

    def get(self, key: str) -> str | None:
        """Raw value of ``key`` (e.g. ``"HBM Capacity(MB)"``), or None."""
        return field(self.fields, key)

    @property
    def aicore_pct(self) -> int | None:
        """``Aicore Usage Rate(%)``."""
        return _int_field(self.fields, "Aicore Usage Rate(%)")

    @property
    def temp_c(self) -> int | None:
        """``Temperature(C)`` or ``NPU Temperature (C)``."""
        v = _int_field(self.fields, "Temperature(C)")
        return v if v is not None else _int_field(self.fields, "NPU Temperature (C)")

    @property
    def power_w(self) -> float | None:
        """``NPU Real-time Power(W)``."""
        raw = self.get("NPU Real-time Power(W)")
        return None if raw is None else to_float(raw)

    @property
    def hbm_total_mb(self) -> int | None:
        """``HBM Capacity(MB)``."""
        return _int_field(self.fields, "HBM Capacity(MB)")

    @property
    def ddr_total_mb(self) -> int | None:
        """``DDR Capacity(MB)``."""
        return _int_field(self.fields, "DDR Capacity(MB)")


def _int_field(fields: Fields, key: str) -> int | None:
    raw = field(fields, key)
    return None if raw is None else to_int(raw)


@dataclass(frozen=True)
class NpuDetail:
    """One ``npu-smi info -t TYPE -i N`` report (usages, common, board, power, temp, health)."""

    npu: int | None
    """``NPU ID`` (absent from ``-t health`` output)."""
    chip_count: int | None
    """``Chip Count``."""
    fields: Fields
    """NPU-level ``key : value`` pairs (board facts, health status...)."""
    chips: tuple[ChipDetail, ...]
    """Per-chip blocks, in order."""
    mcu: Fields
    """The board MCU block (``Chip Name : mcu``), empty when absent."""

    def get(self, key: str) -> str | None:
        """Raw NPU-level value of ``key``, or None."""
        return field(self.fields, key)


_KV = re.compile(r"^(?P<key>[^:]*?)\s*:\s?(?P<value>.*?)\s*$")


def kv_sections(text: str, what: str = "info -t") -> list[list[tuple[str, str]]]:
    """Split ``key : value`` output into blank-line separated sections.

    A line with an empty key continues the previous value (multi-line
    ``Error Information``), even across the blank lines npu-smi puts between them.
    """
    sections: list[list[tuple[str, str]]] = [[]]
    last: list[tuple[str, str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            if sections[-1]:
                sections.append([])
            continue
        m = _KV.match(line)
        if m is None or m.group("key").strip().lower() == "usage":
            # No "key : value" shape, or npu-smi printing its usage after a complaint.
            raise not_recognised(what, error_line(_non_kv_lines(text), line))
        key, value = m.group("key"), m.group("value")
        if not key:
            if last is None or not last:
                raise not_recognised(what, line)
            k, v = last[-1]
            last[-1] = (k, f"{v}\n{value}" if v else value)
            continue
        sections[-1].append((key, value))
        last = sections[-1]
    result = [s for s in sections if s]
    if not result:
        raise not_recognised(what, error_line(text.splitlines()))
    return result


def _non_kv_lines(text: str) -> list[str]:
    out = []
    for raw in text.splitlines():
        m = _KV.match(raw.strip())
        if m is None or m.group("key").strip().lower() == "usage":
            out.append(raw)
    return out


def _pop(section: list[tuple[str, str]], key: str) -> str | None:
    want = _norm(key)
    for i, (k, v) in enumerate(section):
        if _norm(k) == want:
            del section[i]
            return v
    return None


def parse_detail(text: str) -> NpuDetail:
    """Parse any ``npu-smi info -t TYPE -i N [-c C]`` key:value report."""
    npu: int | None = None
    chip_count: int | None = None
    fields: list[tuple[str, str]] = []
    chips: list[ChipDetail] = []
    mcu: list[tuple[str, str]] = []
    for section in kv_sections(text):
        npu_raw = _pop(section, "NPU ID")
        if npu_raw is not None:
            npu = to_int(npu_raw)
        count_raw = _pop(section, "Chip Count")
        if count_raw is not None:
            chip_count = to_int(count_raw)
        chip_raw = _pop(section, "Chip ID")
        name = field(tuple(section), "Chip Name")
        if chip_raw is not None:
            chip = to_int(chip_raw)
            chips.append(ChipDetail(chip if chip is not None else len(chips), tuple(section)))
        elif name is not None and name.strip().lower() == "mcu":
            mcu.extend(section)
        else:
            fields.extend(section)
    return NpuDetail(npu, chip_count, tuple(fields), tuple(chips), tuple(mcu))


@dataclass(frozen=True)
class HealthReport:
    """``npu-smi info -t health -i N [-c C]``."""

    status: str
    """``Health Status``: OK, Warning, Alarm, Critical..."""
    error_codes: tuple[str, ...]
    """``Error Code`` values (empty when ``NA``)."""
    information: tuple[str, ...]
    """``Error Information`` lines (empty when ``NA``)."""

    @property
    def ok(self) -> bool:
        """True when the status is ``OK``."""
        return self.status.strip().upper() == "OK"


def parse_health(text: str) -> HealthReport:
    """Parse ``-t health`` output (multi-line error information included)."""
    detail = parse_detail(text)
    all_fields = detail.fields + tuple(kv for c in detail.chips for kv in c.fields)
    status = field(all_fields, "Health Status")
    if status is None:
        raise not_recognised("info -t health", error_line(text.splitlines()))
    codes = field(all_fields, "Error Code") or ""
    info = field(all_fields, "Error Information") or ""
    code_list = tuple(c for c in codes.split() if c not in _NA)
    info_list = tuple(ln.strip() for ln in info.splitlines() if ln.strip() not in _NA)
    return HealthReport(status.strip(), code_list, info_list)


def parse_list(text: str) -> tuple[tuple[int, int], ...]:
    """Parse ``npu-smi info -l``: ``(npu id, chip count)`` per NPU."""
    rows: list[tuple[int, int]] = []
    for section in kv_sections(text, "info -l"):
        npu = field(tuple(section), "NPU ID")
        count = field(tuple(section), "Chip Count")
        if npu is None:
            continue  # the "Total Count" section
        npu_id = to_int(npu)
        if npu_id is None:
            raise not_recognised("info -l", f"NPU ID : {npu}")
        rows.append((npu_id, to_int(count or "") or 1))
    if not rows:
        raise not_recognised("info -l", error_line(text.splitlines()))
    return tuple(rows)


# ---------------------------------------------------------------- info -t topo


@dataclass(frozen=True)
class Topology:
    """``npu-smi info -t topo``: the link kind between each pair of NPUs."""

    npus: tuple[str, ...]
    """Column names, e.g. ``NPU0``."""
    links: tuple[tuple[str, ...], ...]
    """``links[i][j]``: ``X`` (self), ``HCCS``, ``PIX``, ``SYS``..."""
    cpu_affinity: tuple[str, ...]
    """CPU list per NPU (``144-167``), empty strings when absent."""


def parse_topo(text: str) -> Topology:
    """Parse the ``-t topo`` matrix; the legend after it is ignored."""
    lines = [ln.strip() for ln in text.splitlines()]
    header: list[str] | None = None
    names: list[str] = []
    links: list[tuple[str, ...]] = []
    affinity: list[str] = []
    for line in lines:
        if not line:
            if links:
                break  # the legend follows the matrix
            continue
        cells = re.split(r"\s{2,}|\t", line)
        if header is None:
            if not cells[0].upper().startswith("NPU"):
                raise not_recognised("info -t topo", error_line([line]))
            header = cells
            continue
        n = len([c for c in header if c.upper().startswith("NPU")])
        if len(cells) < n + 1:
            raise not_recognised("info -t topo", line)
        names.append(cells[0])
        links.append(tuple(cells[1 : n + 1]))
        affinity.append(cells[n + 1] if len(cells) > n + 1 else "")
    if not links:
        raise not_recognised("info -t topo", error_line(lines))
    return Topology(tuple(names), tuple(links), tuple(affinity))
