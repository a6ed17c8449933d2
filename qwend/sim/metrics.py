"""Prometheus metrics of a sim lane, under vLLM's names.

One ``CollectorRegistry`` per app (no global registry). Gauges read the engine
when scraped. Besides vLLM's names there is ``qwend_sim_requests_aborted_total``:
requests whose client disconnected mid-generation (vLLM counts those as
``vllm:request_success_total{finished_reason="abort"}``, which is kept too).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from qwend.sim.engine import Engine, SimSequence

TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
ITL_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
)  # fmt: skip
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0)


class SimMetrics:
    """The lane's metrics; also the engine's listener for token and request events."""

    def __init__(self, model_name: str, on_load_change: Callable[[], None] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._labels = {"model_name": model_name}
        names = ["model_name"]
        reg = self.registry
        self.running = Gauge(
            "vllm:num_requests_running", "Requests in the running batch", names, registry=reg
        )
        self.waiting = Gauge(
            "vllm:num_requests_waiting", "Requests waiting for prefill", names, registry=reg
        )
        self.prompt_tokens = Counter(
            "vllm:prompt_tokens", "Prefill tokens processed", names, registry=reg
        )
        self.generation_tokens = Counter(
            "vllm:generation_tokens", "Generation tokens produced", names, registry=reg
        )
        self.success = Counter(
            "vllm:request_success",
            "Finished requests by finish reason",
            [*names, "finished_reason"],
            registry=reg,
        )
        self.aborted = Counter(
            "qwend_sim_requests_aborted",
            "Requests aborted because the client disconnected mid-generation",
            names,
            registry=reg,
        )
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds",
            "Time to first token",
            names,
            buckets=TTFT_BUCKETS,
            registry=reg,
        )
        self.itl = Histogram(
            "vllm:inter_token_latency_seconds",
            "Time between consecutive output tokens",
            names,
            buckets=ITL_BUCKETS,
            registry=reg,
        )
        self.e2e = Histogram(
            "vllm:e2e_request_latency_seconds",
            "End-to-end request latency",
            names,
            buckets=E2E_BUCKETS,
            registry=reg,
        )
        self._load_callback = on_load_change

    def bind_engine(self, engine: Engine) -> None:
        """Make the gauges read ``engine`` at scrape time."""
        self.running.labels(**self._labels).set_function(lambda: engine.num_running)
        self.waiting.labels(**self._labels).set_function(lambda: engine.num_waiting)

    def render(self) -> bytes:
        """The text exposition of every metric."""
        return bytes(generate_latest(self.registry))

    # -- EngineListener ----------------------------------------------------------------
    def on_prefill(self, seq: SimSequence) -> None:
        """Count the sequence's prompt tokens."""
        self.prompt_tokens.labels(**self._labels).inc(seq.text_tokens + seq.image_tokens)

    def on_token(self, seq: SimSequence, gap_s: float | None) -> None:
        """Count a token; observe TTFT or ITL."""
        self.generation_tokens.labels(**self._labels).inc()
        if gap_s is None:
            assert seq.first_token_at is not None
            self.ttft.labels(**self._labels).observe(seq.first_token_at - seq.arrival)
        else:
            self.itl.labels(**self._labels).observe(gap_s)

    def on_finish(self, seq: SimSequence) -> None:
        """Count a finished or aborted request."""
        reason = seq.finish_reason or "abort"
        self.success.labels(**self._labels, finished_reason=reason).inc()
        if reason == "abort":
            self.aborted.labels(**self._labels).inc()
        elif seq.last_token_at is not None:
            self.e2e.labels(**self._labels).observe(seq.last_token_at - seq.arrival)

    def on_load_change(self) -> None:
        """Forward to the state-file writer, if any."""
        if self._load_callback is not None:
            self._load_callback()
