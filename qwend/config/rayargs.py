"""What a ``ray start`` command line says about the Ray node it starts (pure).

A Ray-backed lane group is a lane group whose members run ``ray start``: the head on the
leader host, a worker joining it on every other one. qwend supervises each member as the
process it spawned, so the checks need to know from the argv whether the node is the
head, whether it stays in the foreground (``--block``), where a worker joins, the head's
GCS port and how many NPUs the node declares to Ray.

The argv is read as Ray's click command reads it: ``--flag VALUE`` or ``--flag=VALUE``,
flags spelled as Ray spells them (dashes; click does not take underscores), the last
occurrence wins. ``ray start ...`` and ``qwend-sim ray start ...`` (the simulator's Ray
mode, same flags) are recognised, the program given by name or by path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

RAY_HEAD_PORT_DEFAULT = 6379
"""``ray start --head`` without ``--port``: the GCS listens on 6379."""

NPU_RESOURCE = "NPU"
"""The custom resource Ray's Ascend support counts NPUs under (``--resources``)."""

_VALUED = frozenset(
    {
        "--address",
        "--port",
        "--node-ip-address",
        "--num-gpus",
        "--num-cpus",
        "--resources",
    }
)
"""Options whose value this module reads (every other token is left alone)."""
_FLAGS = frozenset({"--head", "--block"})


@dataclass(frozen=True)
class RayStart:
    """One ``ray start`` command line, as Ray would read it."""

    head: bool = False
    """``--head``: this node runs the GCS (the cluster's head)."""
    block: bool = False
    """``--block``: ``ray start`` stays in the foreground with its daemons (else it
    detaches them and exits: nothing would be left to supervise)."""
    address: str | None = None
    """``--address``: the head's GCS a worker joins (``HOST:PORT``)."""
    port: int = RAY_HEAD_PORT_DEFAULT
    """``--port``: the head's GCS port (6379 when not given)."""
    port_given: bool = False
    """Whether ``--port`` was written (else ``port`` is Ray's default)."""
    node_ip: str | None = None
    """``--node-ip-address``: the address this node is known by in the cluster."""
    num_gpus: int | None = None
    """``--num-gpus``: the accelerators this node declares (NPUs on Ascend)."""
    npu_resource: int | None = None
    """``--resources '{"NPU": n}'``: NPUs declared as Ray's custom resource."""
    problems: tuple[str, ...] = ()
    """Values Ray would refuse (a port that is no number, a missing value ...)."""

    @property
    def declared_npus(self) -> tuple[int, str] | None:
        """The NPUs this node gives Ray and the flag saying so (``--num-gpus`` first);
        None when neither says, so Ray counts ``ASCEND_RT_VISIBLE_DEVICES``."""
        if self.num_gpus is not None:
            return self.num_gpus, "--num-gpus"
        if self.npu_resource is not None:
            return self.npu_resource, f'--resources "{NPU_RESOURCE}"'
        return None

    def join_address(self) -> tuple[str, int | None] | None:
        """A worker's ``--address`` as (host, port); port None when none is written."""
        if self.address is None:
            return None
        host, colon, port = self.address.strip().rpartition(":")
        if not colon:
            return self.address.strip(), None
        host = host.strip("[]")  # [v6]:port
        return host, int(port) if port.isdigit() else None


def ray_start_args(argv: Sequence[str]) -> Sequence[str] | None:
    """The arguments after ``ray start`` (``qwend-sim ray start`` too); None for any other
    command. The words before ``ray`` are a program and its subcommands, no options."""
    for index, arg in enumerate(argv[:-1]):
        if arg.startswith("-"):
            return None
        if PurePath(arg).name == "ray" and argv[index + 1] == "start":
            return argv[index + 2 :]
    return None


def is_ray_start(argv: Sequence[str]) -> bool:
    """Whether ``argv`` starts a Ray node."""
    return ray_start_args(argv) is not None


def parse_ray_start(argv: Sequence[str]) -> RayStart | None:
    """The Ray node ``argv`` starts; None when it is no ``ray start``."""
    args = ray_start_args(argv)
    if args is None:
        return None
    values: dict[str, str] = {}
    flags: set[str] = set()
    problems: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        name, eq, value = arg.partition("=")
        if name in _FLAGS:
            if eq:
                problems.append(f"{name} is a flag and takes no value, got {arg!r}")
            flags.add(name)
        elif name in _VALUED:
            if not eq:
                if index + 1 >= len(args):
                    problems.append(f"{name} needs a value")
                    break
                index += 1
                value = args[index]  # click takes the next word, whatever it looks like
            values[name] = value
        index += 1
    port = _count(values, "--port", problems, least=1, most=65535)
    return RayStart(
        head="--head" in flags,
        block="--block" in flags,
        address=values.get("--address"),
        port=RAY_HEAD_PORT_DEFAULT if port is None else port,
        port_given=port is not None,
        node_ip=values.get("--node-ip-address"),
        num_gpus=_count(values, "--num-gpus", problems),
        npu_resource=_npu_resource(values.get("--resources"), problems),
        problems=tuple(problems),
    )


def _count(
    values: dict[str, str], name: str, problems: list[str], least: int = 0, most: int | None = None
) -> int | None:
    text = values.get(name)
    if text is None:
        return None
    number = int(text) if text.strip().isdigit() else -1
    if number < least or (most is not None and number > most):
        span = f"{least}-{most}" if most is not None else f">= {least}"
        problems.append(f"{name} must be a whole number {span}, got {text!r}")
        return None
    return number


def _npu_resource(text: str | None, problems: list[str]) -> int | None:
    """``{"NPU": n}`` of ``--resources`` (None when absent or not declared there)."""
    if text is None:
        return None
    try:
        resources = json.loads(text)
    except ValueError:
        resources = None
    if not isinstance(resources, dict):
        problems.append(f'--resources must be a JSON object such as {{"NPU": 8}}, got {text!r}')
        return None
    count = resources.get(NPU_RESOURCE)
    if count is None:
        return None
    if isinstance(count, bool) or not isinstance(count, int | float) or count < 0:
        problems.append(f'--resources "{NPU_RESOURCE}" must be a number >= 0, got {count!r}')
        return None
    if count != int(count):
        problems.append(f'--resources "{NPU_RESOURCE}" counts whole NPUs, got {count!r}')
        return None
    return int(count)
