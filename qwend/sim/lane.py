"""One sim lane's state: settings, faults, engine, metrics and its NPU state record."""

from __future__ import annotations

import math
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwend.sim import state
from qwend.sim.dpranks import DpLayout, DpSettings
from qwend.sim.engine import Engine, SimSequence
from qwend.sim.kvtransfer import KvStore
from qwend.sim.latency import profile_for
from qwend.sim.metrics import SimMetrics
from qwend.sim.raycluster import RayDriverSettings
from qwend.sim.requests import ApiError, GenerationRequest

PROCESS_NAME = "python3"
"""How the lane shows in npu-smi's process table (vLLM/transformers lanes are python3)."""


@dataclass(frozen=True)
class FaultSettings:
    """Fault injection flags (real seconds, not divided by ``--time-scale``)."""

    fail_startup: bool = False
    """Exit with ``exit_code`` once the model load is over, without binding the port."""
    exit_code: int = 1
    """Exit status of every injected exit."""
    exit_after_requests: int | None = None
    """Exit abruptly after this many generation requests."""
    exit_after_seconds: float | None = None
    """Exit abruptly this long after the port is bound."""
    hang_health: bool = False
    """``/health`` never answers; generation still works."""
    error_rate: float = 0.0
    """Fraction of generation requests answered with ``error_status``."""
    error_status: int = 500
    """500 or 503."""
    stall_after_tokens: int | None = None
    """Streams stop getting tokens after this many (the connection stays open)."""
    leak_npu_memory_s: float = 0.0
    """After exit, the fake npu-smi keeps showing this lane's HBM for this long."""


@dataclass(frozen=True)
class KvSettings:
    """``--kv-*``: the lane's part in prefill/decode disaggregation."""

    role: str = "both"
    """``both`` (whole requests), ``prefill`` or ``decode``."""
    without_kv: str = "recompute"
    """Decode lane, request without transfer parameters: ``recompute`` or ``refuse``."""
    ttl_s: float = 30.0
    """Prefill lane: how long unclaimed KV is kept (real seconds)."""
    capacity: int = 256
    """Prefill lane: most unclaimed KV records kept (least recent dropped first)."""
    engine_id: str = ""
    """Prefill lane: ``remote_engine_id`` it hands out ("": a random one per process)."""
    advertise_host: str = ""
    """Prefill lane: ``remote_host`` it hands out ("": its listen host)."""
    pull_timeout_s: float = 5.0
    """Decode lane: how long pulling KV from a prefill lane may take."""


@dataclass(frozen=True)
class SimSettings:
    """How ``qwend-sim serve`` was started."""

    host: str
    port: int
    served_model_name: str
    variant: str
    lane_name: str
    startup_delay: float
    """Model-load seconds (before ``time_scale``)."""
    time_scale: float
    max_model_len: int
    max_num_seqs: int
    visible_devices: str
    """``ASCEND_RT_VISIBLE_DEVICES`` as found in the environment ("" if unset)."""
    state_dir: Path
    faults: FaultSettings = field(default_factory=FaultSettings)
    api_key: str = ""
    """vLLM's ``--api-key``: ``/v1`` requests need ``Authorization: Bearer KEY`` ("": none)."""
    kv: KvSettings = field(default_factory=lambda: KvSettings())
    """Prefill/decode disaggregation (default: a whole-request lane)."""
    dp: DpSettings = field(default_factory=lambda: DpSettings(DpLayout(1, 1, 0)))
    """Multi-node data parallelism (default: one process holds every rank)."""
    ray: RayDriverSettings | None = None
    """An engine on a Ray cluster: its workers run on the Ray nodes, and the process itself
    (the driver) holds no NPU, so it publishes no NPU state record."""

    @property
    def npus(self) -> tuple[int, ...]:
        """NPU ids of the lane (NPU 0 when unset, as the runtime would pick)."""
        return state.parse_visible_devices(self.visible_devices) or (0,)


class Faults:
    """Decides which requests fail; deterministic so tests can count on exact fractions."""

    def __init__(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._seen = 0

    @property
    def hang_health(self) -> bool:
        """Whether ``/health`` hangs."""
        return self.settings.hang_health

    def next_error(self) -> ApiError | None:
        """The injected error for the next request, if it gets one.

        Spreads errors evenly: request k fails when floor(k * rate) increases, so
        exactly ``rate`` of any long run fails.
        """
        rate = self.settings.error_rate
        self._seen += 1
        if rate <= 0 or math.floor(self._seen * rate) == math.floor((self._seen - 1) * rate):
            return None
        status = self.settings.error_status
        kind = "service_unavailable" if status == 503 else "server_error"
        return ApiError(status, f"injected fault: {status} (--error-rate)", type=kind)


class SimLane:
    """Everything a running sim lane holds; the app reads it under ``LANE_KEY``."""

    def __init__(self, settings: SimSettings, log: Any, on_exit_request: Callable[[], None]):
        self.settings = settings
        self.log = log
        self.faults = Faults(settings.faults)
        self.profile = profile_for(settings.variant)
        self.started_at = time.time()
        self.loaded_fraction = 0.0
        self.requests_done = 0
        self.failure: str | None = None
        """Why the lane can no longer serve (a lost DP engine): health answers 503."""
        self._on_exit_request = on_exit_request
        self._dirty = True
        self._started_ticks = state.process_start(os.getpid())
        self.metrics = SimMetrics(settings.served_model_name, on_load_change=self.mark_dirty)
        self.engine = Engine(
            self.profile,
            time_scale=settings.time_scale,
            max_num_seqs=settings.max_num_seqs,
            listener=self.metrics,
        )
        self.metrics.bind_engine(self.engine)
        kv = settings.kv
        self.kv_store = KvStore(
            kv.engine_id or secrets.token_hex(8), capacity=kv.capacity, ttl_s=kv.ttl_s
        )
        """The KV a prefill lane keeps for decode lanes (unused on other roles)."""

    def new_sequence(self, parsed: GenerationRequest, *, prefilled: bool = False) -> SimSequence:
        """Submit a validated request to the engine (``prefilled``: its KV came from a
        prefill lane, so it skips the prefill step)."""
        seq = SimSequence(
            # Random, not a counter: a prefill lane hands it out as the KV claim ticket.
            request_id=f"{os.getpid()}-{self.engine.next_id()}-{secrets.token_hex(8)}",
            prefilled=prefilled,
            text_tokens=parsed.text_tokens,
            image_tokens=parsed.image_tokens,
            max_tokens=parsed.max_tokens,
            natural_tokens=parsed.natural_tokens,
            seed=parsed.seed,
            script=parsed.script,
            stop=parsed.stop,
            ignore_eos=parsed.ignore_eos,
            stall_after=self.settings.faults.stall_after_tokens,
        )
        return self.engine.submit(seq)

    def request_done(self) -> None:
        """Count a finished generation request; trips ``--exit-after-requests``."""
        self.requests_done += 1
        limit = self.settings.faults.exit_after_requests
        if limit is not None and self.requests_done >= limit:
            self._on_exit_request()

    # -- the NPU state record ----------------------------------------------------------
    def mark_dirty(self) -> None:
        """The load changed; the next publish writes the record."""
        self._dirty = True

    def record(self) -> state.LaneRecord:
        """The record describing this lane now."""
        engine = self.engine
        return state.LaneRecord(
            pid=os.getpid(),
            lane=self.settings.lane_name,
            variant=self.settings.variant,
            npus=self.settings.npus,
            process_name=PROCESS_NAME,
            hbm_mb=state.hbm_mb(self.loaded_fraction, engine.num_running, engine.context_tokens),
            aicore_pct=state.aicore_pct(engine.step_kind, engine.num_running),
            updated=time.time(),
            started=self._started_ticks,
        )

    def tidy_state_dir(self) -> None:
        """Remove records left behind by killed lanes."""
        try:
            state.prune(self.settings.state_dir)
        except OSError as exc:
            self.log.warning(
                "cannot tidy sim state", dir=str(self.settings.state_dir), error=str(exc)
            )

    def publish(self, force: bool = False) -> None:
        """Write the state record if the load changed (or ``force``)."""
        if not (self._dirty or force) or self.settings.ray is not None:
            return
        self._dirty = False
        try:
            state.write_record(self.settings.state_dir, self.record())
        except OSError as exc:
            self.log.warning(
                "cannot write sim state", dir=str(self.settings.state_dir), error=str(exc)
            )

    def unpublish(self) -> None:
        """At exit: remove the record, or leave it leaking for ``--leak-npu-memory-s``."""
        leak = self.settings.faults.leak_npu_memory_s
        if self.settings.ray is not None:
            return
        try:
            if leak > 0:
                state.mark_leaking(self.settings.state_dir, self.record(), leak)
            else:
                state.remove_record(self.settings.state_dir, os.getpid())
        except OSError as exc:
            self.log.warning(
                "cannot update sim state", dir=str(self.settings.state_dir), error=str(exc)
            )
