"""The sim's latency model (pure): what one engine step costs on a 910A.

The engine (``qwend.sim.engine``) runs one step at a time, as a real serving
engine does, and asks this module how long each step takes:

* a **prefill step** processes one waiting sequence's prompt (text and image
  tokens) and yields its first token:
  ``prefill_s = prefill_base_s + prefill_token_s * text_tokens + image_token_s * image_tokens``;
* a **decode step** yields one token for every running sequence:
  ``decode_s = decode_token_s * batch_factor(B)`` with
  ``batch_factor(B) = 1 + batch_slope * max(0, B - BATCH_KNEE)``: small batches
  are memory-bound and cost the same as one sequence, larger ones grow
  linearly. ``v3`` has the smallest slope (degrades least under concurrency).

The constants are fitted to the 910A table of the seed deployment (see
``docs/sim.md`` for the derivation): ``text_N`` single requests give
``prefill`` and ``decode_token_s`` (a least-squares line through text_8/32/64),
``mm_8`` gives ``image_token_s`` and the concurrency=8 wall gives
``batch_slope``. ``chunk_v2`` and ``v4`` have no figures in the seed and are
interpolated/extrapolated from the measured variants.
"""

from __future__ import annotations

from dataclasses import dataclass

BATCH_KNEE = 4
"""Running sequences a decode step serves at single-sequence cost."""
IMAGE_ANSWER_TOKENS = 2
"""Natural answer length (then end-of-sequence) of a request with an image.

The seed's ``mm_8`` requests finish faster than a single ``text_8`` decode, so the
model answered them in a couple of tokens (a one-word answer about the image);
the sim reproduces that unless the request sets ``ignore_eos``.
"""
SEED_PROMPT_TOKENS = 24
"""Prompt size (tokens, chat template included) the constants are calibrated for."""
SEED_IMAGE_TOKENS = 256
"""Image size (tokens; a 448x448 image) the image constant is calibrated for."""
PREFILL_TOKEN_S = 0.0004
"""Prefill cost per text token (2,500 tokens/s; same for every variant)."""


@dataclass(frozen=True)
class VariantProfile:
    """Latency and memory constants of one backend variant on a 910A."""

    name: str
    """Variant label, as passed to ``--variant``."""
    startup_s: float
    """Default model-load time before the port is bound."""
    prefill_base_s: float
    """Fixed cost of a prefill step (scheduling, launch, first sampling)."""
    prefill_token_s: float
    """Cost per prompt text token in a prefill step."""
    image_token_s: float
    """Cost per image token in a prefill step (vision encoder plus the LLM's share)."""
    decode_token_s: float
    """Cost of a decode step with a batch of up to ``BATCH_KNEE`` sequences."""
    batch_slope: float
    """Extra decode cost, in units of ``decode_token_s``, per sequence above the knee."""
    measured: bool
    """Whether the seed has figures for this variant (False: interpolated)."""

    def prefill_s(self, text_tokens: int, image_tokens: int = 0) -> float:
        """Seconds for the prefill step of one sequence."""
        return (
            self.prefill_base_s
            + self.prefill_token_s * max(0, text_tokens)
            + self.image_token_s * max(0, image_tokens)
        )

    def batch_factor(self, batch: int) -> float:
        """Slow-down of a decode step serving ``batch`` sequences (1.0 up to the knee)."""
        return 1.0 + self.batch_slope * max(0, batch - BATCH_KNEE)

    def decode_s(self, batch: int) -> float:
        """Seconds for one decode step serving ``batch`` running sequences."""
        return self.decode_token_s * self.batch_factor(max(1, batch))


def _profile(
    name: str,
    *,
    prefill_s: float,
    decode_token_s: float,
    mm_prefill_s: float,
    batch_slope: float,
    measured: bool = True,
    startup_s: float = 45.0,
) -> VariantProfile:
    """Build a profile from the fitted per-request figures for the seed's prompt and image."""
    return VariantProfile(
        name=name,
        startup_s=startup_s,
        prefill_base_s=prefill_s - PREFILL_TOKEN_S * SEED_PROMPT_TOKENS,
        prefill_token_s=PREFILL_TOKEN_S,
        image_token_s=(mm_prefill_s - prefill_s) / SEED_IMAGE_TOKENS,
        decode_token_s=decode_token_s,
        batch_slope=batch_slope,
        measured=measured,
    )


# Fitted figures (seconds). prefill_s and decode_token_s: least-squares fit (relative
# error) of T(N) = prefill_s + (N - 1) * decode_token_s to text_8/32/64. mm_prefill_s:
# mm_8 minus one decode step (answer of IMAGE_ANSWER_TOKENS). batch_slope: from the
# concurrency=8 wall = 8 * prefill_s + 31 * decode_token_s * batch_factor(8).
PROFILES: dict[str, VariantProfile] = {
    p.name: p
    for p in (
        _profile(
            "baseline",
            prefill_s=0.2101,
            decode_token_s=0.1059,
            mm_prefill_s=0.5891,
            batch_slope=0.3483,
            startup_s=50.0,
        ),
        _profile(
            "chunk_v2",
            prefill_s=0.1900,
            decode_token_s=0.1030,
            mm_prefill_s=0.5700,
            batch_slope=0.2500,
            measured=False,
            startup_s=50.0,
        ),
        _profile(
            "recurrent_v2",
            prefill_s=0.2483,
            decode_token_s=0.0944,
            mm_prefill_s=0.5596,
            batch_slope=0.1486,
        ),
        _profile(
            "v3",
            prefill_s=0.1876,
            decode_token_s=0.0974,
            mm_prefill_s=0.5831,
            batch_slope=0.1383,
        ),
        _profile(
            "v4",
            prefill_s=0.1850,
            decode_token_s=0.0950,
            mm_prefill_s=0.5800,
            batch_slope=0.1300,
            measured=False,
        ),
    )
}
VARIANTS = tuple(PROFILES)
"""Variant names ``--variant`` accepts."""


def profile_for(variant: str) -> VariantProfile:
    """The profile of ``variant``; raises ``KeyError`` naming the known ones."""
    try:
        return PROFILES[variant]
    except KeyError:
        known = ", ".join(VARIANTS)
        raise KeyError(f"unknown variant {variant!r}; known variants: {known}") from None


def single_request_s(
    profile: VariantProfile, text_tokens: int, max_tokens: int, image_tokens: int = 0
) -> float:
    """Predicted end-to-end seconds of one request alone on an idle lane (for docs/tests)."""
    answer = max_tokens if image_tokens == 0 else min(max_tokens, IMAGE_ANSWER_TOKENS)
    steps = max(0, answer - 1)
    return profile.prefill_s(text_tokens, image_tokens) + steps * profile.decode_s(1)


def concurrent_wall_s(
    profile: VariantProfile, requests: int, text_tokens: int, max_tokens: int
) -> float:
    """Predicted wall of ``requests`` identical text requests sent at once (for docs/tests).

    The engine prefills each waiting sequence before decoding (prefill first),
    then decodes them together.
    """
    prefill = requests * profile.prefill_s(text_tokens)
    return prefill + max(0, max_tokens - 1) * profile.decode_s(requests)
