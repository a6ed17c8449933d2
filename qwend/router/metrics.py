"""``GET /metrics`` of the router: Prometheus text built from a snapshot.

Nothing is counted through prometheus-client on the request path (that would
cost a lock per increment); a scrape takes a ``RouterSnapshot`` on the event
loop (cheap) and renders it in a worker thread with a private registry, so a
scrape never blocks the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from qwend.routing.snapshot import RouterSnapshot
from qwend.routing.windows import LatencyStats

_P = "qwend_router_"
_QUANTILES = (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99"))


class _SnapshotCollector:
    """A collector that yields the metric families of one snapshot."""

    def __init__(self, snap: RouterSnapshot) -> None:
        self._snap = snap

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
        ):
            yield CounterMetricFamily(_P + name, text, value=value)
        yield GaugeMetricFamily(_P + "in_flight", "Requests in flight", value=snap.in_flight)
        yield GaugeMetricFamily(_P + "queued", "Requests waiting for a slot", value=snap.queued)
        yield from self._lanes()
        yield from self._classes()

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
        latency = _latency_families("lane_", labels)
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
            _add_latency(latency, key, lane.latency)
        yield from gauges.values()
        yield from counters.values()
        yield breaker
        yield from latency.values()

    def _classes(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(_P + "class_requests", "Requests per class", labels=["cls"])
        errors = CounterMetricFamily(_P + "class_errors", "Errors per class", labels=["cls"])
        latency = _latency_families("class_", ["cls"])
        for cls in self._snap.classes:
            requests.add_metric([cls.name], cls.requests)
            errors.add_metric([cls.name], cls.errors)
            _add_latency(latency, [cls.name], cls.latency)
        yield requests
        yield errors
        yield from latency.values()


def _latency_families(prefix: str, labels: list[str]) -> dict[str, GaugeMetricFamily]:
    return {
        k: GaugeMetricFamily(
            f"{_P}{prefix}{k}_seconds",
            f"{k} percentiles over the window",
            labels=[*labels, "quantile"],
        )
        for k in ("ttft", "itl", "e2e")
    }


def _add_latency(
    families: dict[str, GaugeMetricFamily], key: list[str], stats: LatencyStats
) -> None:
    for kind, fam in families.items():
        pcts = getattr(stats, kind)
        for quantile, attr in _QUANTILES:
            value = getattr(pcts, attr)
            if value is not None:
                fam.add_metric([*key, quantile], value)


def _render(snap: RouterSnapshot) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snap))
    data: bytes = generate_latest(registry)
    return data


async def render_metrics(snap: RouterSnapshot) -> bytes:
    """Prometheus text exposition of ``snap``, rendered off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, _render, snap)
