"""``GET /metrics`` of the router: Prometheus text built from a snapshot.

Nothing is counted through prometheus-client on the request path (that would
cost a lock per increment); a scrape takes a ``RouterSnapshot`` and the traffic
histograms on the event loop (cheap) and renders them in a worker thread with a
private registry, so a scrape never blocks the loop. Latency is exported as
histograms (aggregatable across instances); the window percentiles stay in the
status view. The daemon adds its other services' families (lane states, NPUs,
promotions, build info) through ``METRICS_SOURCES_KEY``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from qwend.routing.histograms import Measure, SeriesKey, TrafficView
from qwend.routing.snapshot import RouterSnapshot

_P = "qwend_router_"


class _SnapshotCollector:
    """A collector that yields the metric families of one snapshot."""

    def __init__(self, snap: RouterSnapshot, traffic: tuple[TrafficView, ...]) -> None:
        self._snap = snap
        self._traffic = traffic

    def collect(self) -> Iterator[Metric]:
        snap = self._snap
        info = GaugeMetricFamily(_P + "policy_info", "Text policy in force", labels=["policy"])
        info.add_metric([snap.policy], 1)
        yield info
        for name, value, text in (
            ("requests", snap.requests, "Requests received"),
            ("retries", snap.retries, "Attempts re-sent to another lane before the first byte"),
            ("retries_refused", snap.retries_refused, "Retries refused by the retry budget"),
            ("spills", snap.spills, "Short text spilled off the throughput lane"),
            ("rejected_queue_full", snap.rejected_queue_full, "429 answers (queue full/timeout)"),
            ("rejected_no_lane", snap.rejected_no_lane, "503 answers (no eligible lane)"),
            ("mid_stream_errors", snap.mid_stream_errors, "Streams ended by an error event"),
            ("client_disconnects", snap.client_disconnects, "Clients that left early"),
            ("bad_requests", snap.bad_requests, "400 answers"),
            ("pd_requests", snap.pd_requests, "Attempts sent to a prefill/decode pair"),
            (
                "pd_transfer_failures",
                snap.pd_transfer_failures,
                "Pair attempts whose KV hand-over failed (no parameters, or the pull failed)",
            ),
        ):
            yield CounterMetricFamily(_P + name, text, value=value)
        yield GaugeMetricFamily(_P + "in_flight", "Requests in flight", value=snap.in_flight)
        yield GaugeMetricFamily(_P + "queued", "Requests waiting for a slot", value=snap.queued)
        yield from self._lanes()
        yield from self._classes()
        yield from _histogram_families(self._traffic)

    def _lanes(self) -> Iterator[Metric]:
        labels = ["lane", "role", "variant"]
        gauges = {
            k: GaugeMetricFamily(_P + "lane_" + k, d, labels=labels)
            for k, d in (
                ("in_flight", "Requests in flight on the lane"),
                ("accepting", "1 when the lane may receive new requests"),
                ("tokens_per_second", "Completion tokens/s over the window"),
                ("limit", "Admission limit (requests at once)"),
                (
                    "efficient_concurrency",
                    "Requests at once past which the learned token rate stops rising",
                ),
                ("model_itl_seconds", "Learned decode seconds per token (intercept)"),
                ("model_itl_slope_seconds", "Learned extra decode seconds per token per request"),
            )
        }
        counters = {
            k: CounterMetricFamily(_P + "lane_" + k, d, labels=labels)
            for k, d in (
                ("requests", "Attempts sent to the lane"),
                ("failures", "Failed attempts"),
                ("mid_stream_errors", "Streams broken by the lane"),
                ("disconnects", "Client disconnects while the lane served"),
            )
        }
        breaker = GaugeMetricFamily(
            _P + "lane_breaker_state", "Circuit breaker state", labels=[*labels, "state"]
        )
        for lane in self._snap.lanes:
            key = [lane.name, lane.role, lane.variant]
            gauges["in_flight"].add_metric(key, lane.in_flight)
            gauges["accepting"].add_metric(key, 1 if lane.accepting else 0)
            gauges["tokens_per_second"].add_metric(key, lane.latency.tokens_per_s)
            gauges["limit"].add_metric(key, lane.limit)
            gauges["efficient_concurrency"].add_metric(key, lane.perf.efficient_concurrency)
            gauges["model_itl_seconds"].add_metric(key, lane.perf.itl_s)
            gauges["model_itl_slope_seconds"].add_metric(key, lane.perf.itl_slope)
            counters["requests"].add_metric(key, lane.requests)
            counters["failures"].add_metric(key, lane.failures)
            counters["mid_stream_errors"].add_metric(key, lane.mid_stream_errors)
            counters["disconnects"].add_metric(key, lane.disconnects)
            for state in ("closed", "open", "half_open"):
                breaker.add_metric([*key, state], 1 if lane.breaker == state else 0)
        yield from gauges.values()
        yield from counters.values()
        yield breaker

    def _classes(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(_P + "class_requests", "Requests per class", labels=["cls"])
        errors = CounterMetricFamily(_P + "class_errors", "Errors per class", labels=["cls"])
        for cls in self._snap.classes:
            requests.add_metric([cls.name], cls.requests)
            errors.add_metric([cls.name], cls.errors)
        yield requests
        yield errors


def _bucket_label(bound: float) -> str:
    return repr(float(bound))


def _histogram_families(views: tuple[TrafficView, ...]) -> Iterator[Metric]:
    labels = ["lane", "role", "variant", "cls"]
    for measure in Measure:
        fam = HistogramMetricFamily(
            f"{_P}{measure.value}_seconds", _MEASURE_HELP[measure], labels=labels
        )
        for view in views:
            hist = view.histograms[measure]
            buckets = [
                (_bucket_label(b), float(c))
                for b, c in zip(hist.bounds, hist.cumulative, strict=False)
            ]
            buckets.append(("+Inf", float(hist.count)))
            fam.add_metric(_key_labels(view.key), buckets, sum_value=hist.total)
        yield fam
    for kind, text in (("prompt", "Prompt tokens"), ("completion", "Completion tokens")):
        tokens = CounterMetricFamily(
            f"{_P}{kind}_tokens", f"{text} of answered requests", labels=labels
        )
        for view in views:
            value = view.prompt_tokens if kind == "prompt" else view.completion_tokens
            tokens.add_metric(_key_labels(view.key), value)
        yield tokens


def _key_labels(key: SeriesKey) -> list[str]:
    return [key.lane, key.role, key.variant, key.cls]


_MEASURE_HELP = {
    Measure.TTFT: "Time to first token of streamed answers",
    Measure.ITL: "Mean inter-token latency of one streamed answer",
    Measure.E2E: "Request received to the last byte of a successful answer",
    Measure.QUEUE_WAIT: "Request received to the lane slot of its first attempt",
    Measure.PD_PREFILL: "Prefill hop on a prefill lane: sent to its KV transfer parameters",
    Measure.PD_DECODE_START: "Decode hop on a decode lane: sent to its first byte (KV pull)",
}


class _Families:
    """A collector of ready-made metric families (those of the other services)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _render(snap: RouterSnapshot, traffic: tuple[TrafficView, ...], extra: list[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snap, traffic))
    registry.register(_Families(extra))
    data: bytes = generate_latest(registry)
    return data


async def render_metrics(
    snap: RouterSnapshot,
    traffic: tuple[TrafficView, ...] = (),
    sources: Iterable[MetricsSource] = (),
) -> bytes:
    """Prometheus text exposition of ``snap``, ``traffic`` and what ``sources`` give,
    rendered off the event loop (the sources are called here, on it: they read live
    state)."""
    extra = [family for source in sources for family in source()]
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, _render, snap, traffic, extra)


MetricsSource = Callable[[], Iterable[Metric]]
"""Metric families of another service (lanes, NPUs, promotions), built on the event loop."""
METRICS_SOURCES_KEY: web.AppKey[list[MetricsSource]] = web.AppKey("qwend_metrics_sources", list)
"""The router app's extra ``/metrics`` sources; the daemon appends its services' here."""
