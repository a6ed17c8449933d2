"""Every captured npu-smi output in tests/fixtures/npu-smi parses to the values it shows."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from qwend.errors import NpuSmiError
from qwend.npu.parse import (
    ChipMapping,
    HealthReport,
    NpuDetail,
    NpuReading,
    Topology,
    parse_any,
    parse_detail,
    parse_health,
    parse_info,
    parse_list,
    parse_map,
    parse_topo,
)
from tests.support.paths import NPU_SMI_FIXTURES

FIXTURES = NPU_SMI_FIXTURES


def text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Info:
    """What one ``npu-smi info`` fixture must parse to."""

    file: str
    npu_ids: tuple[int, ...]
    chips: int
    names: frozenset[str]
    health: dict[int, str]
    """NPU id -> health, for the NPUs checked (all others must be OK unless listed)."""
    memory: dict[tuple[int, int], tuple[int | None, int | None, int | None, int | None]]
    """(npu, chip) -> (DDR used, DDR total, HBM used, HBM total)."""
    processes: tuple[tuple[int, int, int, int], ...]
    """(pid, npu, chip, memory MB) of the first process rows, in order."""
    process_count: int
    has_process_table: bool
    devices: dict[tuple[int, int], int] | None = None
    """(npu, chip) -> device index, where the table prints a Device/Phy-ID column."""


INFO = [
    Info(
        "310-info-1chip-idle-npu23.0.0.txt",
        (0,),
        1,
        frozenset({"310"}),
        {0: "OK"},
        {(0, 0): (577, 7759, None, None)},
        (),
        0,
        True,
        {(0, 0): 0},
    ),
    Info(
        "310-info-4chip-npu20.2.0-huaweidoc.txt",
        (215,),
        4,
        frozenset({"310"}),
        {215: "OK"},
        {(215, 0): (2703, 8192, None, None), (215, 3): (2703, 8192, None, None)},
        (),
        0,
        False,
        {(215, 3): 3},
    ),
    Info(
        "310-info-4chip-npu21.0.4-huaweidoc.txt",
        (6,),
        4,
        frozenset({"310"}),
        {6: "OK"},
        {(6, 0): (2703, 8192, None, None), (6, 1): (2867, 8192, None, None)},
        (),
        0,
        False,
        {(6, 0): 3, (6, 3): 6},
    ),
    Info(
        "310-info-5card-20chip-npu2048-npu20.2.2.txt",
        (2048, 2049, 2050, 2051, 2052),
        20,
        frozenset({"310"}),
        {2048: "OK", 2052: "OK"},
        {(2048, 0): (2621, 8192, None, None), (2052, 3): (2621, 8192, None, None)},
        (),
        0,
        False,
        {(2049, 0): 4, (2052, 3): 19},
    ),
    Info(
        "310b1-info-1chip-busid-NA-npu23.0.rc3.txt",
        (0,),
        1,
        frozenset({"310B1"}),
        {0: "OK"},
        {(0, 0): (3841, 11577, None, None)},
        (),
        0,
        False,
    ),
    Info(
        "310p3-info-1chip-idle-npu25.3.rc1.txt",
        (6,),
        1,
        frozenset({"310P3"}),
        {6: "OK"},
        {(6, 0): (1839, 21525, None, None)},
        (),
        0,
        True,
        {(6, 0): 0},
    ),
    Info(
        "310p3-info-duo-2chip-npu1792-container-npu24.1.rc2.txt",
        (1792,),
        2,
        frozenset({"310P3"}),
        {1792: "OK"},
        {(1792, 0): (1821, 44280, None, None), (1792, 1): (1041, 43693, None, None)},
        (),
        0,
        True,
        {(1792, 1): 1},
    ),
    Info(
        "910a-info-4npu-warning-procmemB-npu23.0.rc1.b070.txt",
        (0, 1, 2, 3),
        4,
        frozenset({"910A"}),
        {0: "Warning", 1: "Warning", 2: "Warning", 3: "Warning"},
        {
            (0, 0): (938, 15137, 3, 32768),
            (2, 0): (1667, 15137, 30750, 32768),
            (3, 0): (2777, 15039, 0, 32768),
        },
        (),
        0,
        True,
    ),
    Info(
        "910a-info-8npu-name910B-npu24.1.0.txt",
        tuple(range(8)),
        8,
        frozenset({"910B"}),
        {0: "OK", 7: "OK"},
        {(0, 0): (1197, 13553, 1365, 32768), (7, 0): (1777, 15567, 4, 32768)},
        (),
        0,
        False,
    ),
    Info(
        "910a-info-8npu-nohugepages-npu1.8.21-v20.2.2.spc001.txt",
        tuple(range(8)),
        8,
        frozenset({"910A"}),
        {0: "OK"},
        {(0, 0): (591, 14795, 0, 32768), (7, 0): (3319, 15088, 0, 32768)},
        (),
        0,
        False,
    ),
    Info(
        "910a-info-8npu-npu22.0.3.1-huaweidoc.txt",
        tuple(range(8)),
        8,
        frozenset({"910A"}),
        {3: "OK"},
        {(0, 0): (1867, 15077, 0, 32768), (3, 0): (1866, 15077, 0, 32768)},
        (),
        0,
        False,
    ),
    Info(
        "910a-info-8npu-procs-warning-npu24.1.RC2-huaweidoc.txt",
        tuple(range(8)),
        8,
        frozenset({"xxx"}),
        {0: "OK", 3: "Warning", 7: "Warning"},
        {(0, 0): (4252, 15137, 0, 32768), (7, 0): (4521, 15039, 0, 32768)},
        (
            (37656, 0, 0, 686),
            (37664, 0, 0, 686),
            (37640, 0, 0, 686),
            (37648, 0, 0, 686),
            (37665, 1, 0, 686),
        ),
        32,
        True,
    ),
    Info(
        "910b2c-info-16npu-npu24.1.0-noproctable.txt",
        tuple(range(16)),
        16,
        frozenset({"910B2C"}),
        {0: "OK", 15: "OK"},
        {(0, 0): (0, 0, 53665, 65536), (2, 0): (0, 0, 3401, 65536), (15, 0): (0, 0, 3399, 65536)},
        (),
        0,
        False,
    ),
    Info(
        "910b3-info-8npu-1proc-noname-npu25.2.0.txt",
        tuple(range(8)),
        8,
        frozenset({"910B3"}),
        {0: "OK"},
        {(2, 0): (0, 0, 41052, 65536), (7, 0): (0, 0, 3400, 65536)},
        ((1333928, 2, 0, 37709),),
        1,
        True,
    ),
    Info(
        "910b4-info-1npu-idle-wide-npu26.0.rc1-truncated.txt",
        (0,),
        1,
        frozenset({"910B4"}),
        {0: "OK"},
        {(0, 0): (0, 0, 2871, 32768)},
        (),
        0,
        True,
    ),
    Info(
        "910b4-info-8npu-1proc-npu25.2.0.txt",
        tuple(range(8)),
        8,
        frozenset({"910B4"}),
        {0: "OK"},
        {(0, 0): (0, 0, 2894, 32768), (7, 0): (0, 0, 2659, 32768)},
        ((472206, 0, 0, 113),),
        1,
        True,
    ),
    Info(
        "910b4-info-8npu-4procs-noname-busy-npu24.1.rc3.txt",
        tuple(range(8)),
        8,
        frozenset({"910B4"}),
        {0: "OK"},
        {(0, 0): (0, 0, 22283, 32768), (6, 0): (0, 0, 30759, 32768)},
        ((582939, 0, 0, 19502), (695171, 1, 0, 19498), (99910, 6, 0, 27977), (99976, 7, 0, 27977)),
        4,
        True,
    ),
    Info(
        "a3-910c-ascend910-info-8npu-16chip-8procs-npu24.1.rc3.3.txt",
        tuple(range(8)),
        16,
        frozenset({"Ascend910"}),
        {0: "OK", 7: "OK"},
        {
            (0, 0): (0, 0, 3402, 65536),
            (0, 1): (0, 0, 3200, 65536),
            (4, 0): (0, 0, 52553, 65536),
            (7, 1): (0, 0, 52358, 65536),
        },
        ((957687, 4, 0, 49207), (957770, 4, 1, 49207), (957790, 5, 0, 49207)),
        8,
        True,
        {(0, 1): 1, (4, 0): 8, (7, 1): 15},
    ),
    Info(
        "a3-ascend910-info-8npu-16chip-idle-npu24.1.rc3.7.txt",
        tuple(range(8)),
        16,
        frozenset({"Ascend910"}),
        {0: "OK"},
        {(0, 0): (0, 0, 3412, 65536), (7, 1): (0, 0, 3188, 65536)},
        (),
        0,
        True,
        {(7, 0): 14},
    ),
    Info(
        "a5-ascend950dt-info-8npu-warning-idle-npu26.2.0.b007.txt",
        tuple(range(8)),
        8,
        frozenset({"Ascend950DT"}),
        dict.fromkeys(range(8), "Warning"),
        {(0, 0): (0, 0, 4753, 98304), (7, 0): (0, 0, 4751, 98304)},
        (),
        0,
        True,
    ),
]


@pytest.mark.parametrize("case", INFO, ids=lambda c: c.file)
def test_info_fixture(case: Info) -> None:
    reading = parse_info(text(case.file))
    assert tuple(n.id for n in reading.npus) == case.npu_ids
    assert len(reading.chips) == case.chips
    assert {c.name for c in reading.chips} == case.names
    for npu_id, health in case.health.items():
        npu = reading.npu(npu_id)
        assert npu is not None
        assert npu.health == health
    unlisted = [n for n in reading.npus if n.id not in case.health]
    assert all(n.ok for n in unlisted)
    for (npu_id, chip_id), expected in case.memory.items():
        npu = reading.npu(npu_id)
        assert npu is not None
        chip = next(c for c in npu.chips if c.chip == chip_id)
        got = (chip.memory_used_mb, chip.memory_total_mb, chip.hbm_used_mb, chip.hbm_total_mb)
        assert got == expected
        # the main memory is HBM when present with a non-zero total, else DDR
        assert chip.total_mb == (expected[3] if expected[3] else expected[1])
    got_procs = tuple((p.pid, p.npu, p.chip, p.memory_mb) for p in reading.processes)
    assert got_procs[: len(case.processes)] == case.processes
    assert len(reading.processes) == case.process_count
    assert reading.has_process_table is case.has_process_table
    for (npu_id, chip_id), device in (case.devices or {}).items():
        assert reading.device_index(npu_id, chip_id) == device
    assert reading.warnings == ()


def test_every_info_fixture_is_covered() -> None:
    tables = {p.name for p in FIXTURES.glob("*.txt") if p.read_text().lstrip().startswith("+")}
    assert tables == {c.file for c in INFO}


def test_single_chip_910_devices_are_npu_ids() -> None:
    reading = parse_info(text("910b4-info-8npu-1proc-npu25.2.0.txt"))
    assert [reading.device_index(n.id, 0) for n in reading.npus] == list(range(8))
    assert reading.chip_at(5) is not None
    assert reading.chip_at(5) == reading.npus[5].chips[0]


def test_details_of_one_chip_row() -> None:
    reading = parse_info(text("a3-910c-ascend910-info-8npu-16chip-8procs-npu24.1.rc3.3.txt"))
    first, second = reading.npus[0].chips
    assert (first.power_w, first.temp_c, first.aicore_pct) == (182.0, 36, 0)
    assert second.power_w is None  # "-" on the second chip of an A3 NPU
    assert (first.bus_id, second.bus_id) == ("0000:9D:00.0", "0000:9F:00.0")
    assert reading.tool_version == "24.1.rc3.3"
    assert all(p.name == "pt_main_thread" for p in reading.processes)


def test_na_values_and_missing_hugepages() -> None:
    r310b = parse_info(text("310b1-info-1chip-busid-NA-npu23.0.rc3.txt")).chips[0]
    assert r310b.bus_id is None
    assert (r310b.hugepages_used, r310b.hugepages_total) == (15, 15)
    r310p = parse_info(text("310p3-info-1chip-idle-npu25.3.rc1.txt")).chips[0]
    assert r310p.power_w is None
    old = parse_info(text("910a-info-8npu-nohugepages-npu1.8.21-v20.2.2.spc001.txt"))
    assert old.chips[0].hugepages_total is None
    assert old.chips[0].power_w == 68.6
    assert old.driver_version == "20.2.2.spc001"
    assert old.tool_version == "1.8.21"


def test_a5_busy_aicore_and_bus_na() -> None:
    reading = parse_info(text("a5-ascend950dt-info-8npu-warning-idle-npu26.2.0.b007.txt"))
    chip = reading.chips[1]
    assert (chip.power_w, chip.temp_c, chip.bus_id) == (454.6, 50, None)
    busy = parse_info(text("910b4-info-8npu-4procs-noname-busy-npu24.1.rc3.txt"))
    assert [c.aicore_pct for c in busy.chips][6:] == [82, 68]
    assert all(p.name == "" for p in busy.processes)


ERRORS = [
    (
        "error-info-dcmi-init-failed-8005-container.txt",
        "dcmi module initialize failed. ret is -8005",
    ),
    ("910b1-info-help-npu23.0.rc2.txt", "Usage: npu-smi info <watch|proc|-h|-m|-l|-t type>"),
    ("a3-usages-without-i-error-help-npu26.1.0.b087.txt", "This command must input card id."),
    ("910a-board-i0-error-invalid-card-id-faultdiag.txt", "Invalid card id."),
]


@pytest.mark.parametrize(("name", "line"), ERRORS, ids=[e[0] for e in ERRORS])
def test_error_fixtures_raise_quoting_the_line(name: str, line: str) -> None:
    for parser in (parse_info, parse_any, parse_detail):
        with pytest.raises(NpuSmiError) as info:
            parser(text(name))
        assert line in str(info.value)


MAPS = [
    ("310-info-m-4chip-huaweidoc.txt", [(215, 0, 0, "MiniD"), (215, 3, 3, "MiniD")], 4),
    ("310-info-m-4chip-mcu-huaweidoc.txt", [(6, 0, 0, "MiniD"), (6, 3, 3, "MiniD")], 4),
    ("310p-info-m-duo-4cards-gpustack.txt", [(1, 1, 1, "Ascend xxx"), (5, 1, 7, "Ascend xxx")], 8),
    ("910-info-m-8npu-mcu-gpustack.txt", [(0, 0, 0, "Ascend xxx"), (7, 0, 7, "Ascend xxx")], 8),
    ("910a-info-m-8npu-npu22.0.3.1-huaweidoc.txt", [(3, 0, 3, "Ascend 910A")], 8),
    ("910a-info-m-8npu-npu24.1.RC2-huaweidoc.txt", [(7, 0, 7, "Ascend 910A")], 8),
    ("910a-info-m-8npu-tabindent-faultdiag.txt", [(0, 0, 0, "Ascend 910A")], 8),
]


@pytest.mark.parametrize(("name", "rows", "count"), MAPS, ids=[m[0] for m in MAPS])
def test_map_fixture(name: str, rows: list[tuple[int, int, int, str]], count: int) -> None:
    mapping = parse_map(text(name))
    assert len(mapping) == count  # Mcu rows skipped
    for row in rows:
        assert ChipMapping(*row) in mapping
    assert all(m.name.lower() != "mcu" for m in mapping)
    assert parse_any(text(name)) == mapping


def test_usages_fixtures() -> None:
    duo = parse_detail(text("310p-usages-i1-duo-gpustack.txt"))
    assert (duo.npu, duo.chip_count, len(duo.chips)) == (1, 2, 2)
    assert [c.ddr_total_mb for c in duo.chips] == [44280, 43693]
    assert [c.hbm_total_mb for c in duo.chips] == [None, None]
    assert duo.chips[1].get("Ctrlcpu Usage Rate(%)") == "3"
    old = parse_detail(text("910-usages-i0-gpustack.txt"))
    assert (old.npu, old.chips[0].ddr_total_mb, old.chips[0].hbm_total_mb) == (0, 15171, 32768)
    b1 = parse_detail(text("910b1-usages-i0-npu23.0.rc2-spaces.txt"))
    assert (b1.chips[0].hbm_total_mb, b1.chips[0].get("HBM Usage Rate(%)")) == (65536, "4")
    assert b1.chips[0].aicore_pct == 0


def test_common_fixtures() -> None:
    duo = parse_detail(text("310p-common-i1-duo-gpustack.txt"))
    assert [c.temp_c for c in duo.chips] == [60, 59]
    assert dict(duo.mcu)["NPU Real-time Power(W)"] == "45.2"
    old = parse_detail(text("910-common-i0-gpustack.txt"))
    assert (old.chips[0].power_w, old.chips[0].get("Aicore Count")) == (69.0, "32")
    b1 = parse_detail(text("910b1-common-i1-mcu-npu23.0.rc2-spaces.txt"))
    assert (b1.npu, b1.chips[0].temp_c, b1.chips[0].power_w) == (1, 46, 93.4)
    assert dict(b1.mcu)["Temperature(C)"] == "38"


def test_board_fixtures() -> None:
    chip = parse_detail(text("910a-board-i0-c0-npu23.0.5-faultdiag.txt"))
    assert chip.npu == 0
    assert chip.chips[0].get("Chip Name") == "910A"
    assert chip.chips[0].get("PCIe Bus Info") == "0000:61:00.0"
    board = parse_detail(text("910a-board-i0-npu23.0.5-faultdiag.txt"))
    assert (board.chip_count, board.get("PCI Device ID")) == (1, "0xD801")
    b = parse_detail(text("910b-board-i0-npu25.5.1-spaces.txt"))
    assert (b.get("Product Name"), b.get("PCI Device ID"), b.get("Software Version")) == (
        "IT21HMDC_Bin5",
        "0xD802",
        "25.5.1",
    )


def test_power_and_temp_fixtures() -> None:
    power = parse_detail(text("910b-power-i0-npu25.5.1-spaces.txt"))
    assert (power.npu, power.chips[0].chip, power.chips[0].power_w) == (0, 0, 103.5)
    temp = parse_detail(text("910b-temp-i0-mcu-npu25.5.1-spaces.txt"))
    assert temp.chips[0].temp_c == 39
    assert dict(temp.mcu)["LM75A_TE (C)"] == "36"


def test_health_fixtures() -> None:
    ok = parse_health(text("910a-health-i0-c0-ok-faultdiag.txt"))
    assert ok == HealthReport("OK", (), ())
    assert ok.ok
    alarm = parse_health(text("910a-health-i0-c0-alarm-multiline-faultdiag.txt"))
    assert not alarm.ok
    assert alarm.status == "Alarm"
    assert alarm.error_codes == ("A4025021", "8C03A000", "8C084E00")
    assert len(alarm.information) == 3
    assert alarm.information[2].endswith("event state=Heartbeat Lost.")
    assert isinstance(
        parse_any(text("910a-health-i0-c0-alarm-multiline-faultdiag.txt")), HealthReport
    )


def test_list_fixture() -> None:
    rows = parse_list(text("910b-list-l-8npu-npu25.5.1-spaces.txt"))
    assert rows == tuple((i, 1) for i in range(8))
    assert parse_any(text("910b-list-l-8npu-npu25.5.1-spaces.txt")) == rows


def test_topo_fixture() -> None:
    topo = parse_topo(text("910b-info-t-topo-8npu-hccs.txt"))
    assert topo.npus == tuple(f"NPU{i}" for i in range(8))
    assert topo.links[0][0] == "X"
    assert topo.links[3][5] == "HCCS"
    assert topo.cpu_affinity[0] == "144-167"
    assert isinstance(parse_any(text("910b-info-t-topo-8npu-hccs.txt")), Topology)


def test_every_fixture_parses_or_raises_as_expected() -> None:
    errors = {e[0] for e in ERRORS}
    for path in sorted(FIXTURES.glob("*.txt")):
        if path.name in errors:
            with pytest.raises(NpuSmiError):
                parse_any(path.read_text())
        else:
            parsed = parse_any(path.read_text())
            assert isinstance(parsed, NpuReading | NpuDetail | HealthReport | Topology | tuple)
