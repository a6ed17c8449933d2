"""What a vLLM lane's ``--kv-transfer-config`` says about its part in prefill/decode
disaggregation, and whether that agrees with ``lane.kv_role`` (pure).

vLLM's KV connectors (Mooncake, NIXL, LMCache ...) take a JSON object whose ``kv_role``
is ``kv_producer`` (computes KV for others: a prefill instance), ``kv_consumer``
(receives KV: a decode instance) or ``kv_both`` (either; NIXL setups use it on both
sides). qwend's router decides which hop a lane serves from ``lane.kv_role``; a lane
whose engine plays the other part fails every request it is given (a producer never
decodes for the router, a consumer never hands out KV), so the mismatch is refused at
``check-config`` time instead of at the first request.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from qwend.config.model import KvRole
from qwend.config.parallel import is_vllm, option

KV_TRANSFER_CONFIG = ("--kv-transfer-config",)
_AGREES: dict[str, tuple[KvRole | None, ...]] = {
    "kv_producer": (KvRole.PREFILL,),
    "kv_consumer": (KvRole.DECODE,),
    "kv_both": (KvRole.PREFILL, KvRole.DECODE, None),
}
_ROLE_FOR = {"kv_producer": KvRole.PREFILL, "kv_consumer": KvRole.DECODE}


def engine_kv_role(argv: Sequence[str]) -> tuple[str | None, str | None]:
    """``(kv_role of --kv-transfer-config, problem)`` of a vLLM command; ``(None, None)``
    when it is not vLLM or has no KV connector."""
    if not is_vllm(argv):
        return None, None
    text = option(argv, KV_TRANSFER_CONFIG)
    if text is None:
        return None, None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        return None, f"--kv-transfer-config is not valid JSON ({exc}); quote the JSON object"
    role = doc.get("kv_role") if isinstance(doc, dict) else None
    if role not in _AGREES:
        known = ", ".join(_AGREES)
        return None, f"--kv-transfer-config has kv_role {role!r}; vLLM expects one of {known}"
    return str(role), None


def kv_role_problem(argv: Sequence[str], kv_role: KvRole | None) -> tuple[str, str] | None:
    """``(key, message)`` when the command's KV connector disagrees with ``kv_role``."""
    engine, problem = engine_kv_role(argv)
    if problem is not None:
        return "lane.command", problem
    if engine is None:
        if kv_role is not None and is_vllm(argv):
            return "lane.kv_role", (
                f'kv_role = "{kv_role}" but the vLLM command has no --kv-transfer-config: '
                "without a KV connector the lane cannot hand over or pull KV; add one "
                f'(kv_role "{"kv_producer" if kv_role is KvRole.PREFILL else "kv_consumer"}")'
                " or remove kv_role"
            )
        return None
    if kv_role in _AGREES[engine]:
        return None
    if kv_role is None:
        want = _ROLE_FOR[engine]
        return "lane.kv_role", (
            f"the command's --kv-transfer-config has kv_role {engine!r} but the lane has no "
            f'kv_role: set kv_role = "{want}" (or use "kv_both" to serve whole requests)'
        )
    want_engine = "kv_producer" if kv_role is KvRole.PREFILL else "kv_consumer"
    return "lane.kv_role", (
        f'kv_role = "{kv_role}" but the command\'s --kv-transfer-config has kv_role '
        f'{engine!r}; make them agree (kv_role "{_ROLE_FOR[engine]}", or {want_engine!r} '
        "in the connector's JSON)"
    )
