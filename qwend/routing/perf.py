"""The learned lane model (pure) the ``least_work`` policy prices lanes with.

``LanePerf`` is an online model of one lane: exponentially weighted least
squares of prefill time per token and inter-token latency against
concurrency, with a per-level decode curve that follows the knee a straight
line cannot. ``PerfView`` is its frozen picture for statistics.
"""

from __future__ import annotations

from dataclasses import dataclass


class _Fit:
    """Exponentially weighted least squares of y = a + b*x, with a scale-free prior.

    The prior is two pseudo-samples (x=1 and x=8, weight 0.5 each, never fading)
    on the line ``a0 * (1 + ratio*x)``: before any observation ``a0`` is the
    configured intercept; afterwards it follows the observed mean, so the prior
    only says "the relative slope is about ``ratio``" and never drags the level
    towards a guess made for another speed (another lane, another time scale).
    It keeps the fit defined when every sample came at one concurrency.
    """

    __slots__ = ("_a0", "_coef", "_ratio", "_sums", "decay")

    def __init__(self, a: float, b: float, decay: float) -> None:
        self.decay = decay
        self._a0 = a
        self._ratio = b / a if a > 0 else 0.0
        self._sums = [0.0] * 5
        self._coef: tuple[float, float] | None = None

    def observe(self, x: float, y: float) -> None:
        d, s = self.decay, self._sums
        s[0] = s[0] * d + 1.0
        s[1] = s[1] * d + x
        s[2] = s[2] * d + y
        s[3] = s[3] * d + x * x
        s[4] = s[4] * d + x * y
        self._coef = None

    def coefficients(self) -> tuple[float, float]:
        if self._coef is None:
            self._coef = self._fit()
        return self._coef

    def _fit(self) -> tuple[float, float]:
        w, sx, sy, sxx, sxy = self._sums
        ratio = self._ratio
        a0 = self._a0 if w <= 0 else (sy / w) / (1.0 + ratio * sx / w)
        for x in (1.0, 8.0):
            y = a0 * (1.0 + ratio * x)
            w, sx, sy, sxx, sxy = (
                w + 0.5,
                sx + 0.5 * x,
                sy + 0.5 * y,
                sxx + 0.5 * x * x,
                sxy + 0.5 * x * y,
            )
        det = w * sxx - sx * sx
        b = (w * sxy - sx * sy) / det if det > 1e-12 else 0.0
        b = max(0.0, b)  # more concurrency never makes a lane faster per request
        a = max(1e-9, (sy - b * sx) / w)
        return a, b

    def predict(self, x: float) -> float:
        a, b = self.coefficients()
        return a + b * x

    @property
    def samples(self) -> float:
        return self._sums[0]


CURVE_LEVELS = 16
"""Whole concurrency levels (1..16) the decode curve keeps an average for."""
CURVE_TRUST = 2.0
"""Decayed samples at which a level's own average weighs as much as the straight line."""
MIN_DECODE_TOKENS = 4
"""Answers shorter than this teach the decode model nothing: a one-word answer about an
image is all prefill (its own and its neighbours'), and would read as a slow decode."""
PEAK_MIN_GAIN = 1.01
"""Token-rate gain one more request must bring for the lane to count as not yet saturated."""


class _Curve:
    """Decode seconds per token at each whole concurrency level.

    A straight line cannot follow a knee: engines decode a small batch at the
    cost of one sequence and slow down linearly beyond it, so a line through
    such samples under-rates a lane at low load and over-rates it above the
    knee, and picks the wrong lane exactly where two lanes differ. Each level
    keeps its own decayed average (a sample at concurrency 2.6 counts 0.4 for
    level 2 and 0.6 for level 3), blended with the line where it has few
    samples and made non-decreasing (weighted pool-adjacent-violators).
    Observing is O(1); the table is rebuilt lazily when predicted from.
    """

    __slots__ = ("_decay", "_line", "_peak", "_sums", "_table", "_weights")

    def __init__(self, line: _Fit, decay: float) -> None:
        self._line = line
        self._decay = decay
        self._sums = [0.0] * (CURVE_LEVELS + 1)
        self._weights = [0.0] * (CURVE_LEVELS + 1)
        self._table: list[float] | None = None
        self._peak: tuple[int, int] | None = None
        """``(limit, peak)`` of the last ``peak`` call, until the next observation."""

    def observe(self, x: float, y: float) -> None:
        x = min(float(CURVE_LEVELS), max(1.0, x))
        low = int(x)
        share = x - low
        self._add(low, y, 1.0 - share)
        if share > 0.0:
            self._add(low + 1, y, share)
        self._table = None
        self._peak = None

    def _add(self, level: int, y: float, weight: float) -> None:
        d = self._decay**weight
        self._sums[level] = self._sums[level] * d + weight * y
        self._weights[level] = self._weights[level] * d + weight

    def predict(self, x: float) -> float:
        table = self._table
        if table is None:
            table = self._table = self._build()
        if x >= CURVE_LEVELS:
            return table[CURVE_LEVELS] + self._line.coefficients()[1] * (x - CURVE_LEVELS)
        if x <= 1.0:
            return table[1]
        low = int(x)
        share = x - low
        return table[low] * (1.0 - share) + table[low + 1] * share

    def peak(self, limit: int) -> int:
        """The concurrency (1..``limit``) past which the lane's token rate stops rising.

        Throughput at ``n`` requests is ``n / itl(n)`` tokens per second; the first
        ``n`` where one more request does not raise it is where the lane's batch
        saturates (or collapses: a variant whose per-sequence cost grows faster
        than the batch, like the seed's baseline past 4, serves fewer tokens at 8
        than at 4). A curve with no samples follows the prior line, whose
        throughput always rises: an unmeasured lane gets its whole ``limit``, and
        so does a lane never measured at the level where it would saturate.
        """
        cached = self._peak
        if cached is not None and cached[0] == limit:
            return cached[1]
        best = limit
        rate = 1.0 / self.predict(1.0)
        for n in range(2, min(limit, CURVE_LEVELS) + 1):
            if self._weights[n] < 1.0:
                break  # never measured this busy: no evidence of saturation, let it fill
            higher = n / self.predict(float(n))
            if higher <= rate * PEAK_MIN_GAIN:
                best = n - 1
                break
            rate = higher
        self._peak = (limit, best)
        return best

    def _build(self) -> list[float]:
        a, b = self._line.coefficients()
        sums, weights = self._sums, self._weights
        # Blocks of levels merged while they decrease (weighted isotonic fit).
        values: list[float] = []
        masses: list[float] = []
        counts: list[int] = []
        for level in range(1, CURVE_LEVELS + 1):
            w = weights[level] + CURVE_TRUST
            v = (sums[level] + CURVE_TRUST * (a + b * level)) / w
            n = 1
            while values and values[-1] > v:
                pw = masses.pop()
                v = (values.pop() * pw + v * w) / (pw + w)
                w += pw
                n += counts.pop()
            values.append(v)
            masses.append(w)
            counts.append(n)
        table = [0.0]
        for v, n in zip(values, counts, strict=True):
            table += [v] * n
        return table


PROMPT_OVERHEAD_TOKENS = 64.0
"""Fixed per-request prefill cost expressed in prompt tokens (scheduling, detokenising)."""


class LanePerf:
    """Online model of one lane: prefill time per token and decode time per token vs load.

    ``ttft(n) = (prompt + 64) * (c + d*n)`` where ``n`` is the number of requests
    the lane serves at once, fitted by exponentially weighted least squares
    (half-life ~``half_life`` samples) on top of a weak prior, so a lane nobody
    has measured yet still gets traffic. Decode time per token is a line
    ``a + b*n`` fitted the same way (reported in ``view``) under a per-level
    curve (``_Curve``) that follows knees the line cannot; ``itl(n)`` reads the curve.
    """

    __slots__ = ("_curve", "_itl", "_prefill")

    def __init__(
        self,
        *,
        prefill_s_per_token: float = 0.001,
        prefill_slope: float = 0.0005,
        itl_s: float = 0.05,
        itl_slope: float = 0.005,
        half_life: float = 32.0,
    ) -> None:
        decay = 0.5 ** (1.0 / half_life)
        self._prefill = _Fit(prefill_s_per_token, prefill_slope, decay)
        self._itl = _Fit(itl_s, itl_slope, decay)
        self._curve = _Curve(self._itl, decay)

    def observe_ttft(self, prompt_tokens: int, ttft: float, concurrency: float) -> None:
        """A streamed request's time to first token at mean concurrency ``concurrency``."""
        self._prefill.observe(concurrency, ttft / (prompt_tokens + PROMPT_OVERHEAD_TOKENS))

    def observe_itl(self, itl: float, concurrency: float) -> None:
        """A request's mean inter-token latency at mean concurrency ``concurrency``."""
        self._itl.observe(concurrency, itl)
        self._curve.observe(concurrency, itl)

    def observe_decode(self, completion_tokens: int, itl: float, concurrency: float) -> None:
        """An answer's mean inter-token latency; answers under ``MIN_DECODE_TOKENS`` are ignored."""
        if completion_tokens >= MIN_DECODE_TOKENS:
            self.observe_itl(itl, concurrency)

    def observe_total(
        self, prompt_tokens: int, completion_tokens: int, e2e: float, concurrency: float
    ) -> None:
        """A non-streamed request: split ``e2e`` into predicted prefill and observed decode."""
        decode = max(0.0, e2e - self.ttft(prompt_tokens, concurrency))
        self.observe_decode(completion_tokens, decode / max(1, completion_tokens), concurrency)

    def ttft(self, prompt_tokens: int, n: float) -> float:
        """Predicted time to first token with ``n`` requests on the lane."""
        return (prompt_tokens + PROMPT_OVERHEAD_TOKENS) * self._prefill.predict(n)

    def itl(self, n: float) -> float:
        """Predicted seconds per output token with ``n`` requests on the lane."""
        return self._curve.predict(n)

    def efficient_concurrency(self, limit: int) -> int:
        """Requests (at most ``limit``) beyond which the lane's learned token rate stops rising."""
        return self._curve.peak(limit)

    def cost(
        self,
        prompt_tokens: int,
        out_tokens: int,
        in_flight: int,
        outstanding: float,
        horizon: float = 0.0,
        reach: int = 0,
    ) -> float:
        """Predicted seconds of latency the system pays for placing one more request here.

        ``own``: its prefill plus ``out_tokens`` decode steps. A short request is over
        before the lane's batch changes and is priced at the batch it finds
        (``in_flight + 1``); a long one lives through many arrivals, so its steps are
        priced at a batch moved towards ``reach`` (the most the lane may serve at
        once) by ``horizon`` (0: short, 1: long).
        ``harm``: what it costs the ``in_flight`` requests already there: their decode
        steps stall during its prefill, and each of their ``outstanding`` tokens comes
        ``itl(n) - itl(n - 1)`` later once the batch is bigger.

        Minimising this (rather than a lane's drain time) keeps long requests on the
        lane that degrades least under concurrency and lets short ones fill the lane
        that degrades more: a short request pays a slow lane's per-token price for a
        few tokens only, a long one for hundreds, and the long ones are the p95.
        An idle lane still wins over a busy one of the same kind through ``harm``.
        """
        n = in_flight + 1
        itl = self.itl(n)
        own_n = n + horizon * max(0, reach - n)
        prefill = self.ttft(prompt_tokens, n)
        own = prefill + out_tokens * self.itl(own_n)
        harm = in_flight * prefill + outstanding * (itl - self.itl(in_flight))
        return own + harm

    @property
    def samples(self) -> float:
        """Weight of real (decayed) samples behind the decode fit."""
        return self._itl.samples

    def view(self, limit: int = CURVE_LEVELS) -> PerfView:
        """The fitted coefficients, for statistics (``limit``: the lane's admission limit)."""
        c, d = self._prefill.coefficients()
        a, b = self._itl.coefficients()
        return PerfView(c, d, a, b, self._itl.samples, self.efficient_concurrency(limit))


@dataclass(frozen=True, slots=True)
class PerfView:
    """Learned lane model coefficients (see ``LanePerf``)."""

    prefill_s_per_token: float
    prefill_slope: float
    """Extra prefill seconds per token for each additional concurrent request."""
    itl_s: float
    """Decode seconds per token, intercept."""
    itl_slope: float
    """Extra decode seconds per token for each additional concurrent request."""
    samples: float
    """Decayed weight of observations behind the fit."""
    efficient_concurrency: int
    """Requests at once beyond which the learned token rate stops rising (``least_work``
    fills the lane up to this, not to its admission limit)."""
