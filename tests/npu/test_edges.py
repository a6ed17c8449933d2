"""npu-smi layouts no fixture shows in full: byte units, trailing warnings, broken rows."""

from __future__ import annotations

import pytest

from qwend.errors import NpuSmiError
from qwend.npu.parse import parse_detail, parse_info, parse_map

HEAD = """\
+------------------------------------------------------------------------------------------------+
| npu-smi 24.1.rc2                 Version: 24.1.rc2                                             |
+---------------------------+---------------+----------------------------------------------------+
| NPU   Name                | Health        | Power(W)    Temp(C)           Hugepages-Usage(page)|
| Chip                      | Bus-Id        | AICore(%)   Memory-Usage(MB)  HBM-Usage(MB)        |
+===========================+===============+====================================================+
| 0     910B3               | OK            | 97.9        34                0    / 0             |
| 0                         | 0000:C1:00.0  | 0           0    / 0          3408 / 65536         |
+===========================+===============+====================================================+
"""
PROC_B = """\
+---------------------------+---------------+----------------------------------------------------+
| NPU     Chip              | Process id    | Process name             | Process memory(B)       |
+===========================+===============+====================================================+
| 0       0                 | 4242          | python3                  | 1073741824              |
+===========================+===============+====================================================+
"""


def test_process_memory_in_bytes_is_converted_to_mb() -> None:
    reading = parse_info(HEAD + PROC_B)
    assert [(p.pid, p.memory_mb) for p in reading.processes] == [(4242, 1024)]


def test_trailing_and_leading_warnings_are_kept() -> None:
    out = "DrvMngGetConsoleLogLevel failed. (g_conLogLevel=3)\n" + HEAD + "Warning: something\n"
    reading = parse_info(out)
    assert len(reading.chips) == 1
    assert reading.warnings == (
        "DrvMngGetConsoleLogLevel failed. (g_conLogLevel=3)",
        "Warning: something",
    )


def test_container_pid_column() -> None:
    table = HEAD + (
        "| NPU     Chip              | Process id    | Process name       | Process memory(MB)"
        "    | Process id in container |\n"
        "| 0       0                 | 777           | vllm               | 30000                 "
        "| 12                      |\n"
    )
    (proc,) = parse_info(table).processes
    assert (proc.pid, proc.name, proc.memory_mb, proc.container_pid) == (777, "vllm", 30000, 12)


def test_truncated_chip_pair_raises_with_the_row() -> None:
    lines = HEAD.splitlines()
    broken = "\n".join(lines[:7])  # top row of the chip, bottom row missing
    with pytest.raises(NpuSmiError, match="910B3"):
        parse_info(broken)


def test_garbage_in_a_metric_cell_raises_with_the_row() -> None:
    bad = HEAD.replace("97.9        34", "97.9  hot   34")
    with pytest.raises(NpuSmiError, match="hot"):
        parse_info(bad)


def test_garbage_process_row_raises() -> None:
    with pytest.raises(NpuSmiError, match="abc"):
        parse_info(HEAD + PROC_B.replace("4242", "abc "))


def test_empty_output_raises() -> None:
    with pytest.raises(NpuSmiError):
        parse_info("")
    with pytest.raises(NpuSmiError):
        parse_map("\n")
    with pytest.raises(NpuSmiError):
        parse_detail("")


def test_map_garbage_raises_quoting_it() -> None:
    with pytest.raises(NpuSmiError, match="dcmi module initialize failed"):
        parse_map("dcmi module initialize failed. ret is -8005\n")
