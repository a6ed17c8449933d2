"""The live stats stream of the control socket: full frame once, then deltas (pure).

``GET /v1/stats?follow=1`` answers NDJSON ``StatsUpdate`` lines. The first is
``full`` (the whole ``StatsFrame``); every later one carries only what changed
since the previous tick, and an empty update is the heartbeat that tells a
client the daemon is alive and that a sample interval passed. The daemon computes
one delta per tick for all subscribers, so a watcher costs it a write, not a
snapshot.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from qwend.api.codec import Message
from qwend.api.messages import LaneInfo, PromotionAccepted

__all__ = [
    "ClassSample",
    "NpuSample",
    "StatsFrame",
    "StatsUpdate",
    "apply_update",
    "diff_frames",
    "full_update",
    "steady_lane",
]


@dataclass(frozen=True)
class ClassSample(Message):
    """Live latency of one request class (multimodal, short_text, long_text) from the router."""

    name: str
    requests: int = 0
    errors: int = 0
    ttft_p50_ms: float | None = None
    e2e_p95_ms: float | None = None
    tokens_per_s: float | None = None


@dataclass(frozen=True)
class NpuSample(Message):
    """One NPU chip as the monitor last read it."""

    npu: int
    chip: int
    name: str = ""
    health: str = ""
    aicore_pct: int | None = None
    hbm_used_mb: int | None = None
    hbm_total_mb: int | None = None
    lanes: tuple[str, ...] = ()
    """Lanes whose processes run on this chip."""

    @property
    def key(self) -> str:
        return f"{self.npu}.{self.chip}"


@dataclass(frozen=True)
class StatsFrame(Message):
    """Everything the live view shows, at daemon time ``at``."""

    at: float
    """Daemon wall clock (epoch seconds) of this frame."""
    started_at: float = 0.0
    """When the daemon started (uptime is ``at - started_at``)."""
    lanes: tuple[LaneInfo, ...] = ()
    """Lanes in the daemon's order; ``uptime_s`` is left out (it changes every tick)."""
    active: Mapping[str, str] = field(default_factory=dict)
    """Role -> active lane."""
    classes: tuple[ClassSample, ...] = ()
    npus: tuple[NpuSample, ...] = ()
    npu_note: str = ""
    """Why there are no NPU samples (monitor disabled, no reading yet, npu-smi error)."""
    promotions: tuple[PromotionAccepted, ...] = ()
    """Promotions (and rollbacks) running now."""


@dataclass(frozen=True)
class StatsUpdate(Message):
    """One NDJSON line of the stats stream."""

    seq: int
    """Tick number; a gap means the client missed updates and must resubscribe."""
    at: float
    full: bool = False
    """This update is a whole frame (the first line of a stream)."""
    started_at: float | None = None
    lanes: tuple[LaneInfo, ...] = ()
    """Lanes that changed (all of them when ``full``)."""
    order: tuple[str, ...] | None = None
    """The lane names in order, when the set or order of lanes changed."""
    active: Mapping[str, str] | None = None
    classes: tuple[ClassSample, ...] = ()
    class_order: tuple[str, ...] | None = None
    """The class names in order, when the set of classes changed."""
    npus: tuple[NpuSample, ...] = ()
    npu_order: tuple[str, ...] | None = None
    """Chip keys (``npu.chip``) in order, when the set of chips changed."""
    npu_note: str | None = None
    promotions: tuple[PromotionAccepted, ...] | None = None

    @property
    def empty(self) -> bool:
        """A heartbeat: nothing changed."""
        return not self.full and self == StatsUpdate(self.seq, self.at)


def steady_lane(lane: LaneInfo) -> LaneInfo:
    """``lane`` without the fields that change by themselves every tick (uptime)."""
    return dataclasses.replace(lane, uptime_s=None)


def full_update(seq: int, frame: StatsFrame) -> StatsUpdate:
    """The whole ``frame`` as the first line of a stream."""
    return StatsUpdate(
        seq=seq,
        at=frame.at,
        full=True,
        started_at=frame.started_at,
        lanes=frame.lanes,
        order=tuple(lane.name for lane in frame.lanes),
        active=dict(frame.active),
        classes=frame.classes,
        class_order=tuple(c.name for c in frame.classes),
        npus=frame.npus,
        npu_order=tuple(n.key for n in frame.npus),
        npu_note=frame.npu_note,
        promotions=frame.promotions,
    )


_T = TypeVar("_T")


def _changed(old: Iterable[_T], new: Iterable[_T], key: str) -> tuple[_T, ...]:
    before = {getattr(item, key): item for item in old}
    return tuple(item for item in new if before.get(getattr(item, key)) != item)


def diff_frames(seq: int, old: StatsFrame, new: StatsFrame) -> StatsUpdate:
    """What a client holding ``old`` needs to hold ``new``."""
    names = tuple(lane.name for lane in new.lanes)
    chips = tuple(n.key for n in new.npus)
    classes = tuple(c.name for c in new.classes)
    return StatsUpdate(
        seq=seq,
        at=new.at,
        started_at=None if new.started_at == old.started_at else new.started_at,
        lanes=_changed(old.lanes, new.lanes, "name"),
        order=None if names == tuple(lane.name for lane in old.lanes) else names,
        active=None if dict(new.active) == dict(old.active) else dict(new.active),
        classes=_changed(old.classes, new.classes, "name"),
        class_order=None if classes == tuple(c.name for c in old.classes) else classes,
        npus=_changed(old.npus, new.npus, "key"),
        npu_order=None if chips == tuple(n.key for n in old.npus) else chips,
        npu_note=None if new.npu_note == old.npu_note else new.npu_note,
        promotions=None if new.promotions == old.promotions else new.promotions,
    )


def _merge(
    old: Iterable[_T], changed: Iterable[_T], order: Iterable[str] | None, key: str
) -> tuple[_T, ...]:
    items = {getattr(item, key): item for item in old}
    for item in changed:
        items[getattr(item, key)] = item
    names = list(items) if order is None else list(order)
    return tuple(items[name] for name in names if name in items)


def apply_update(frame: StatsFrame | None, update: StatsUpdate) -> StatsFrame:
    """The frame after ``update`` (a full update needs no previous frame)."""
    base = StatsFrame(at=update.at) if update.full or frame is None else frame
    return StatsFrame(
        at=update.at,
        started_at=base.started_at if update.started_at is None else update.started_at,
        lanes=_merge(base.lanes, update.lanes, update.order, "name"),
        active=base.active if update.active is None else dict(update.active),
        classes=_merge(base.classes, update.classes, update.class_order, "name"),
        npus=_merge(base.npus, update.npus, update.npu_order, "key"),
        npu_note=base.npu_note if update.npu_note is None else update.npu_note,
        promotions=base.promotions if update.promotions is None else update.promotions,
    )
