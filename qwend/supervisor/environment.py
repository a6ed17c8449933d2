"""Ascend environment defaults for lane processes, by chip family (pure).

The supervisor builds a lane's environment as: inherited environment <
``lane_env_defaults(...)`` < the lane's own ``[lane.env]``. So every value here
is only a default; a lane file overrides any of them (set it to the value you
want; an empty string also counts as set).

Where the values come from (the vLLM-Ascend recipes for Qwen3.5 this project started from):

- ``PYTORCH_NPU_ALLOC_CONF=expandable_segments:True``: seeds 001 (27B, A2/A3),
  002 (397B-A17B) and 004 (27B). Lets the torch_npu caching allocator grow
  segments instead of fragmenting HBM. torch_npu documents it for the Atlas
  training series (910A) and A2 (910B) with HDK >= 23.0.0, and it is used on
  A3; it is not set for the inference-only 310/310P/310B.
- ``TASK_QUEUE_ENABLE=1``: seeds 001 and 002 (operator dispatch queue of torch_npu).
- ``OMP_PROC_BIND=false``, ``OMP_NUM_THREADS=1``: seeds 001 and 002 (004 uses
  10 threads with the binding also off); host threads must not pin and fight
  with the NPU dispatch threads.
- Multi-NPU lanes (tensor parallel over HCCL): ``HCCL_BUFFSIZE=512`` as seed
  001 uses for the dense 27B (the MoE 397B recipes use 1024: set it per lane);
  ``HCCL_OP_EXPANSION_MODE=AIV`` (seeds 002, 004) only on A2 (910B) and A3,
  the products for which the HCCL documentation lists AIV expansion; 910A falls
  back to its default, so it is left unset there.
- ``HCCL_CONNECT_TIMEOUT=1200``: a large model's ranks can reach the first
  collective minutes apart while loading weights; HCCL's 120 s default then
  aborts the start. Only for multi-NPU lanes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

FAMILIES = ("910A", "910B", "A3", "A5", "310P", "310B", "310")
"""Chip families known here (``family_of`` returns one of them, or None)."""

_COMMON = {
    "PYTORCH_NPU_ALLOC_CONF": "expandable_segments:True",
    "TASK_QUEUE_ENABLE": "1",
    "OMP_PROC_BIND": "false",
    "OMP_NUM_THREADS": "1",
}
_INFERENCE_ONLY = {"OMP_PROC_BIND": "false", "OMP_NUM_THREADS": "1"}
_MULTI_NPU = {"HCCL_BUFFSIZE": "512", "HCCL_CONNECT_TIMEOUT": "1200"}
_AIV = {"HCCL_OP_EXPANSION_MODE": "AIV"}


def family_of(name: str | None) -> str | None:
    """The family of a chip name as npu-smi prints it (or a family name), None when unknown.

    ``910B1``..``910B4``, ``910B2C`` -> 910B; ``Ascend910`` (how A3 hosts print
    it), ``Ascend910_93``, ``910C`` -> A3; ``910A``, ``910``, ``910PremiumA``,
    ``910ProB`` -> 910A. ``Ascend950*`` -> A5; ``A2`` -> 910B. A bare ``910B``
    is taken as the family name (A2), although some 24.x drivers print it for
    the old 910 (see the 910a-info-8npu-name910B capture); the only default
    that differs, ``HCCL_OP_EXPANSION_MODE=AIV``, is ignored by HCCL on 910A.
    """
    if not name:
        return None
    n = re.sub(r"[\s_-]+", "", name).upper()
    if n in ("A2", "ATLASA2"):
        return "910B"
    if n in FAMILIES:
        return n
    prefixed = n.startswith("ASCEND")
    n = n.removeprefix("ASCEND")
    if n.startswith("950"):
        return "A5"
    if re.match(r"910B\d", n):
        return "910B"
    if n.startswith(("910C", "91093")) or (n == "910" and prefixed):
        return "A3"
    for prefix, family in (("910", "910A"), ("310P", "310P"), ("310B", "310B"), ("310", "310")):
        if n.startswith(prefix):
            return family
    return None


def lane_env_defaults(npus: Sequence[int], chip_family: str | None) -> dict[str, str]:
    """Environment defaults for a lane on ``npus`` of ``chip_family`` (None: unknown).

    ``ASCEND_RT_VISIBLE_DEVICES`` is not among them: the supervisor sets it
    from the lane's ``npus``. An unknown family gets only the thread settings.
    """
    env: dict[str, str] = {}
    family = family_of(chip_family)  # accepts a family ("910B") or a chip name ("910B3")
    if family in ("910A", "910B", "A3", "A5"):
        env.update(_COMMON)
        if len(npus) > 1:
            env.update(_MULTI_NPU)
            if family in ("910B", "A3"):
                env.update(_AIV)
    else:  # 310 / 310P / 310B inference cards, or not known: only the safe thread settings
        env.update(_INFERENCE_ONLY)
    return env


def merged_lane_env(
    inherited: Mapping[str, str],
    npus: Sequence[int],
    chip_family: str | None,
    lane_env: Mapping[str, str],
) -> dict[str, str]:
    """inherited < ``lane_env_defaults(npus, chip_family)`` < the lane's own env."""
    return {**inherited, **lane_env_defaults(npus, chip_family), **lane_env}
