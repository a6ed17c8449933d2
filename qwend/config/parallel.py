"""What a lane's command line says about the NPUs and side ports its backend uses (pure).

A vLLM server spreads one model over several NPUs: tensor x pipeline parallel ranks for
each data parallel rank that runs on this host. qwend pins a lane to ``npus`` through
``ASCEND_RT_VISIBLE_DEVICES``, so the two must agree: a lane listing fewer NPUs than its
ranks fails at start (after minutes of loading), one listing more leaves NPUs idle that
no other lane may use. Expert parallelism (``--enable-expert-parallel``) spreads the MoE
experts over those same ranks and adds no NPU.

Besides its HTTP port a multi-NPU backend opens side ports on the host: vLLM's data
parallel RPC port and torch's master port, HCCL's host socket ports, a Ray head's GCS
port. Two lanes that run at the same time must not share them. Only what the command
and environment say is known here; vLLM's defaults count where a feature is on (the DP
RPC port once DP > 1), HCCL's own default (60000 + 16) does not, as HCCL picks a free
range by itself then.

The argv is read as vLLM's ``FlexibleArgumentParser`` reads it: ``--flag VALUE`` or
``--flag=VALUE``, underscores in long names equal to dashes, the last occurrence wins.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath

from qwend.config.rayargs import parse_ray_start

VLLM_DP_RPC_PORT_DEFAULT = 29550
"""vLLM's ``--data-parallel-rpc-port`` when not given (vllm.config.ParallelConfig)."""

HCCL_BASE_PORT_SPAN = 16
"""Ports HCCL takes from ``HCCL_IF_BASE_PORT`` on: the base and the 15 after it."""

_TP = ("--tensor-parallel-size", "-tp")
_PP = ("--pipeline-parallel-size", "-pp")
_PCP = ("--prefill-context-parallel-size", "-pcp")
_DP = ("--data-parallel-size", "-dp")
_DP_LOCAL = ("--data-parallel-size-local", "-dpl")
_DP_RPC_PORT = ("--data-parallel-rpc-port", "-dpp")
_MASTER_PORT = ("--master-port",)
_EXPERT = ("--enable-expert-parallel", "-ep")
_HEADLESS = ("--headless",)

_ENV_PORTS = ("MASTER_PORT", "VLLM_PORT", "VLLM_DP_MASTER_PORT")
"""Environment variables naming one port the backend binds on the host."""
_ENV_RANGES = ("HCCL_HOST_SOCKET_PORT_RANGE", "HCCL_NPU_SOCKET_PORT_RANGE")
"""Environment variables naming ``FIRST-LAST`` port ranges (or ``auto``)."""
_RANGE_RE = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+))?\s*")


@dataclass(frozen=True)
class ParallelLayout:
    """How many NPUs of this host a vLLM lane's ranks occupy, and why."""

    tensor: int = 1
    pipeline: int = 1
    data: int = 1
    data_local: int | None = None
    """``--data-parallel-size-local``: DP ranks on this host (None: all of ``data``)."""
    expert: bool = False
    """``--enable-expert-parallel``: experts spread over the same ranks."""
    prefill_context: int = 1
    """``--prefill-context-parallel-size``: part of vLLM's world size (TP x PP x PCP)."""

    @property
    def npus(self) -> int:
        """NPUs this host gives the lane: TP x PP x PCP x local DP."""
        local = self.data if self.data_local is None else self.data_local
        return self.tensor * self.pipeline * self.prefill_context * local

    def describe(self) -> str:
        """``tensor 2 x data 1 = 2 NPUs`` (pipeline and expert parallelism when used)."""
        parts = [f"tensor {self.tensor}"]
        if self.pipeline != 1:
            parts.append(f"pipeline {self.pipeline}")
        if self.prefill_context != 1:
            parts.append(f"prefill context {self.prefill_context}")
        if self.data_local is None:
            parts.append(f"data {self.data}")
        else:
            parts.append(f"data {self.data_local} local (of {self.data})")
        text = " x ".join(parts) + f" = {self.npus} NPU{'s' if self.npus != 1 else ''}"
        if self.expert:
            text += " (expert parallel over the same ranks)"
        return text


@dataclass(frozen=True)
class SidePort:
    """Host ports a lane's backend binds besides its HTTP port."""

    source: str
    """Where it comes from: ``--data-parallel-rpc-port``, ``env HCCL_IF_BASE_PORT``."""
    first: int
    last: int

    def overlaps(self, other: SidePort) -> bool:
        """Whether the two ranges share a port."""
        return self.first <= other.last and other.first <= self.last

    def contains(self, port: int) -> bool:
        """Whether ``port`` is in the range."""
        return self.first <= port <= self.last

    def __str__(self) -> str:
        ports = str(self.first) if self.first == self.last else f"{self.first}-{self.last}"
        return f"{ports} ({self.source})"


def is_vllm(argv: Sequence[str]) -> bool:
    """Whether ``argv`` starts vLLM's OpenAI server (``vllm serve``, or its module)."""
    if len(argv) >= 2 and PurePath(argv[0]).name == "vllm" and argv[1] == "serve":
        return True
    for index, arg in enumerate(argv[:-1]):
        if arg == "-m" and argv[index + 1].startswith("vllm.entrypoints."):
            return True
    return False


def _long(arg: str) -> str:
    """vLLM's spelling of an option: underscores in a long name are dashes."""
    if arg.startswith("--"):
        name, eq, value = arg.partition("=")
        return name.replace("_", "-") + eq + value
    return arg


def option(argv: Sequence[str], names: Sequence[str]) -> str | None:
    """The value of the last ``NAME VALUE`` or ``NAME=VALUE`` among ``names``; None if absent."""
    found: str | None = None
    args = [_long(a) for a in argv]
    for index, arg in enumerate(args):
        for name in names:
            if arg == name and index + 1 < len(args):
                found = args[index + 1]
            elif arg.startswith(name + "="):
                found = arg[len(name) + 1 :]
    return found


def flag(argv: Sequence[str], names: Sequence[str]) -> bool:
    """Whether a boolean flag is on (its ``--no-`` form after it turns it off again)."""
    on = False
    for arg in (_long(a) for a in argv):
        if arg in names:
            on = True
        elif any(arg == "--no-" + n.removeprefix("--") for n in names if n.startswith("--")):
            on = False
    return on


def _size(argv: Sequence[str], names: Sequence[str], problems: list[str]) -> int | None:
    value = option(argv, names)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        problems.append(f"{names[0]} must be a whole number >= 1, got {value!r}")
        return None
    return number


def vllm_layout(argv: Sequence[str]) -> tuple[ParallelLayout | None, list[str]]:
    """The parallel layout of a vLLM command (None for another backend) and any problems."""
    if not is_vllm(argv):
        return None, []
    problems: list[str] = []
    tensor = _size(argv, _TP, problems) or 1
    pipeline = _size(argv, _PP, problems) or 1
    data = _size(argv, _DP, problems) or 1
    data_local = _size(argv, _DP_LOCAL, problems)
    if data_local is not None and data_local > data:
        problems.append(
            f"--data-parallel-size-local {data_local} exceeds --data-parallel-size {data}"
        )
    prefill_context = _size(argv, _PCP, problems) or 1
    layout = ParallelLayout(
        tensor, pipeline, data, data_local, flag(argv, _EXPERT), prefill_context
    )
    return layout, problems


def side_ports(argv: Sequence[str], env: Mapping[str, str]) -> tuple[list[SidePort], list[str]]:
    """Host ports the backend binds besides its HTTP port, and any unreadable value."""
    ports: list[SidePort] = []
    problems: list[str] = []

    def add(source: str, text: str, span: int = 1) -> None:
        match = _RANGE_RE.fullmatch(text)
        if match is None:
            if text.strip().lower() != "auto":
                problems.append(f"{source} must be a port or FIRST-LAST, got {text!r}")
            return
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else first + span - 1
        if not 1 <= first <= last <= 65535:
            problems.append(f"{source} must name ports in 1-65535, got {text!r}")
            return
        ports.append(SidePort(source, first, last))

    if is_vllm(argv):
        rpc = option(argv, _DP_RPC_PORT)
        layout, _ = vllm_layout(argv)
        if rpc is not None:
            add(_DP_RPC_PORT[0], rpc)
        elif layout is not None and layout.data > 1:
            add(f"{_DP_RPC_PORT[0]} (vLLM's default)", str(VLLM_DP_RPC_PORT_DEFAULT))
        master = option(argv, _MASTER_PORT)
        if master is not None:
            add(_MASTER_PORT[0], master)
    ray = parse_ray_start(argv)
    if ray is not None and ray.head:  # the GCS, which every Ray node and driver joins
        origin = "ray start --port" if ray.port_given else "ray start --head (Ray's default)"
        ports.append(SidePort(origin, ray.port, ray.port))
    if "HCCL_IF_BASE_PORT" in env:
        add("env HCCL_IF_BASE_PORT", env["HCCL_IF_BASE_PORT"], HCCL_BASE_PORT_SPAN)
    for name in _ENV_PORTS:
        if name in env:
            add(f"env {name}", env[name])
    for name in _ENV_RANGES:
        for part in env.get(name, "").split(","):
            if part.strip():
                add(f"env {name}", part)
    return ports, problems


def is_headless(argv: Sequence[str]) -> bool:
    """A vLLM worker node without an API server (it never answers on the lane's port)."""
    return is_vllm(argv) and flag(argv, _HEADLESS)
