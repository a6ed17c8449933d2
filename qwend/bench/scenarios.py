"""Benchmark scenarios (pure): the seed's cases by name, and open-loop load.

A *burst* sends its requests all at once and measures the wall time until the last
answer, which is how the seed deployment's 910A tables were measured (``text_N`` is
one request with ``max_tokens=N``; ``mm_8`` is one 448x448 image with
``max_tokens=8``; ``concurrency_K`` is K ``text_32`` requests at once). A *load*
scenario sends requests at a rate (Poisson or constant arrivals) for a duration,
drawing each request from a weighted mix, as ``vllm bench serve`` does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from qwend.errors import QwendError

TEXT_PROMPT = "Write a short note about the Ascend 910A NPU and its use."
"""The seed cases' text prompt (24 tokens with the chat template)."""
IMAGE_PROMPT = "What colour is this image? Answer in one word."
FILLER = "The lane serves requests on one NPU and reports its latency."
"""Sentence repeated to pad prompts of a requested length."""


class ScenarioError(QwendError):
    """A scenario name or load specification that cannot be used."""


@dataclass(frozen=True)
class RequestShape:
    """One request of a scenario."""

    max_tokens: int
    image: bool = False
    stream: bool = False
    prompt_words: int = 0
    """Words of padding before the prompt (0: the seed's short prompt)."""

    @property
    def label(self) -> str:
        return f"{'mm' if self.image else 'text'}_{self.max_tokens}"


@dataclass(frozen=True)
class Burst:
    """Requests sent at once; the figure is the wall time until the last answer."""

    name: str
    requests: tuple[RequestShape, ...]
    seed_label: str
    """The case's name in the seed's tables."""
    router: bool = False
    """One of the router's mixed cases (text and images through the router)."""


class Arrival(StrEnum):
    """How request start times are spread."""

    POISSON = "poisson"
    """Exponential gaps with mean 1/rate (a Poisson process, vLLM's default)."""
    CONSTANT = "constant"
    """Exactly 1/rate apart."""


@dataclass(frozen=True)
class Load:
    """Open-loop load: requests at ``rate`` per second for ``duration_s``, from ``mix``."""

    name: str
    rate: float
    duration_s: float
    arrival: Arrival
    mix: tuple[tuple[RequestShape, float], ...]
    """(request, weight) pairs; each request is drawn with probability weight/total."""
    seed: int = 0
    """Seeds arrivals and the mix draw, so two runs send the same requests."""

    def schedule(self) -> list[tuple[float, RequestShape]]:
        """Start offsets (seconds from the start) and requests; deterministic for ``seed``."""
        rng = random.Random(self.seed)
        shapes = [shape for shape, _ in self.mix]
        weights = [weight for _, weight in self.mix]
        out: list[tuple[float, RequestShape]] = []
        at = 0.0
        while True:
            at += rng.expovariate(self.rate) if self.arrival is Arrival.POISSON else 1 / self.rate
            if at >= self.duration_s:
                return out
            out.append((at, rng.choices(shapes, weights)[0]))


Scenario = Burst | Load

TEXT_8 = RequestShape(8)
TEXT_32 = RequestShape(32)
TEXT_64 = RequestShape(64)
MM_8 = RequestShape(8, image=True)


def _burst(name: str, label: str, *parts: tuple[int, RequestShape]) -> Burst:
    requests = tuple(shape for count, shape in parts for _ in range(count))
    return Burst(name, requests, label)


def _router(name: str, label: str, *parts: tuple[int, RequestShape]) -> Burst:
    requests = tuple(shape for count, shape in parts for _ in range(count))
    return Burst(name, requests, label, router=True)


SEED_CASES: dict[str, Burst] = {
    b.name: b
    for b in (
        _burst("text_8", "text_8", (1, TEXT_8)),
        _burst("text_32", "text_32", (1, TEXT_32)),
        _burst("text_64", "text_64", (1, TEXT_64)),
        _burst("mm_8", "mm_8", (1, MM_8)),
        _burst("stream_text_8", "stream_text_8 total", (1, RequestShape(8, stream=True))),
        _burst("concurrency_4", "concurrency=4 wall", (4, TEXT_32)),
        _burst("concurrency_8", "concurrency=8 wall", (8, TEXT_32)),
        _burst("mm_concurrency_2", "mm concurrency=2 wall", (2, MM_8)),
        _burst("mm_concurrency_4", "mm concurrency=4 wall", (4, MM_8)),
        _burst("mixed_2text_2mm", "mixed(2 text + 2 mm) wall", (2, TEXT_32), (2, MM_8)),
        _router("router_2text8_2mm8", "mixed(2 text8 + 2 mm8) wall", (2, TEXT_8), (2, MM_8)),
        _router("router_2text32_2mm8", "mixed(2 text32 + 2 mm8) wall", (2, TEXT_32), (2, MM_8)),
        _router("router_2text64_2mm8", "mixed(2 text64 + 2 mm8) wall", (2, TEXT_64), (2, MM_8)),
        _router("router_3text8_2mm8", "mixed(3 text8 + 2 mm8) wall", (3, TEXT_8), (2, MM_8)),
        _router("router_4text8_2mm8", "mixed(4 text8 + 2 mm8) wall", (4, TEXT_8), (2, MM_8)),
        _router("router_4text32_2mm8", "mixed(4 text32 + 2 mm8) wall", (4, TEXT_32), (2, MM_8)),
    )
}  # fmt: skip
"""The seed deployment's benchmark cases, by name."""

SUITES: dict[str, tuple[str, ...]] = {
    "seed": tuple(SEED_CASES),
    "seed-lane": tuple(name for name, b in SEED_CASES.items() if not b.router),
    "seed-router": tuple(name for name, b in SEED_CASES.items() if b.router),
}
"""Named groups of seed cases: all, the single-lane table, the router table."""

SEED_FIGURES: dict[str, dict[str, tuple[float, float]]] = {
    "baseline": {
        "text_8": (0.946, 0.946), "text_32": (3.644, 3.644), "text_64": (6.670, 6.670),
        "mm_8": (0.695, 0.695), "stream_text_8": (0.995, 0.995),
        "concurrency_4": (4.070, 4.070), "concurrency_8": (9.542, 9.542),
        "mm_concurrency_2": (1.163, 1.163), "mm_concurrency_4": (2.462, 2.462),
        "mixed_2text_2mm": (3.581, 3.581),
    },
    "recurrent_v2": {
        "text_8": (0.908, 0.908), "text_32": (3.196, 3.196), "text_64": (6.160, 6.160),
        "mm_8": (0.654, 0.654), "stream_text_8": (0.898, 0.898),
        "concurrency_4": (3.887, 3.887), "concurrency_8": (6.650, 6.650),
        "mm_concurrency_2": (1.156, 1.156), "mm_concurrency_4": (2.449, 2.449),
        "mixed_2text_2mm": (2.684, 2.684),
    },
    "v3": {
        "text_8": (0.852, 0.881), "text_32": (3.172, 3.376), "text_64": (5.889, 6.546),
        "mm_8": (0.663, 0.698), "stream_text_8": (0.849, 0.918),
        "concurrency_4": (3.106, 3.106), "concurrency_8": (6.189, 6.189),
        "mm_concurrency_2": (1.064, 1.064), "mm_concurrency_4": (2.842, 2.842),
        "mixed_2text_2mm": (3.090, 3.090),
    },
    "router": {
        "router_2text8_2mm8": (1.173, 1.173), "router_2text32_2mm8": (3.177, 3.177),
        "router_2text64_2mm8": (6.248, 6.248), "router_3text8_2mm8": (1.792, 1.792),
        "router_4text8_2mm8": (2.229, 2.229), "router_4text32_2mm8": (6.403, 6.403),
    },
}  # fmt: skip
"""The seed's measured walls (seconds, low-high where the seed gives a range), per
variant for the single-lane cases and for the three-lane router."""


def seed_figure(
    case: str, variants: frozenset[str], via_router: bool
) -> tuple[float, float] | None:
    """The seed's wall for ``case`` when served as the target was (else None).

    Router cases compare with the seed's router column; single-lane cases with the
    column of the one variant that served every request.
    """
    column = "router" if via_router and case in SEED_FIGURES["router"] else None
    if column is None and len(variants) == 1:
        column = next(iter(variants))
    return SEED_FIGURES.get(column or "", {}).get(case)


def resolve(names: list[str]) -> list[Burst]:
    """Seed cases and suites by name, in order, without duplicates."""
    out: list[Burst] = []
    for name in names:
        expanded = SUITES.get(name, (name,))
        for case in expanded:
            if case not in SEED_CASES:
                known = ", ".join([*SEED_CASES, *SUITES])
                raise ScenarioError(f"unknown scenario {name!r}; known: {known}")
            if SEED_CASES[case] not in out:
                out.append(SEED_CASES[case])
    return out


def parse_mix(text: str) -> tuple[tuple[RequestShape, float], ...]:
    """``text_8=3,mm_8=1,text-512-128`` -> weighted request shapes.

    An entry is a seed single-request case (``text_8``, ``text_32``, ``text_64``,
    ``mm_8``) or ``text-IN-OUT`` / ``mm-IN-OUT`` (IN words of prompt padding, OUT
    max tokens), optionally ``=WEIGHT`` (default 1).
    """
    mix: list[tuple[RequestShape, float]] = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, _, weight_text = entry.partition("=")
        try:
            weight = float(weight_text) if weight_text else 1.0
        except ValueError:
            raise ScenarioError(f"mix entry {entry!r}: weight must be a number") from None
        if weight <= 0:
            raise ScenarioError(f"mix entry {entry!r}: weight must be positive")
        mix.append((_shape(name, entry), weight))
    if not mix:
        raise ScenarioError("the request mix is empty; e.g. --mix text_8=3,mm_8=1")
    return tuple(mix)


def _shape(name: str, entry: str) -> RequestShape:
    case = SEED_CASES.get(name)
    if case is not None and len(case.requests) == 1:
        return case.requests[0]
    kind, _, rest = name.partition("-")
    words, _, out = rest.partition("-")
    if kind in ("text", "mm") and words.isdigit() and out.isdigit() and int(out) > 0:
        return RequestShape(int(out), image=kind == "mm", prompt_words=int(words))
    raise ScenarioError(
        f"mix entry {entry!r}: expected text_8, text_32, text_64, mm_8, "
        "text-IN-OUT or mm-IN-OUT (IN prompt words, OUT max tokens)"
    )


def make_load(
    rate: float, duration_s: float, arrival: Arrival, mix_text: str, seed: int = 0
) -> Load:
    """A checked open-loop load scenario."""
    if rate <= 0:
        raise ScenarioError(f"--rate must be positive, got {rate}")
    if duration_s <= 0:
        raise ScenarioError(f"--duration must be positive, got {duration_s}")
    name = f"load_{arrival.value}_{rate:g}rps_{duration_s:g}s"
    return Load(name, rate, duration_s, arrival, parse_mix(mix_text), seed)
