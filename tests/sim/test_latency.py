"""The sim's latency model (pure) and its engine loop (in process, no sockets)."""

from __future__ import annotations

import asyncio
import statistics

import pytest

from qwend import tokens
from qwend.sim import latency, textgen
from qwend.sim.engine import Engine, SeqState, SimSequence, TokenEvent
from qwend.sim.latency import PROFILES, concurrent_wall_s, profile_for, single_request_s

# The seed's 910A table (seconds; v3 ranges as midpoints).
SEED_SINGLE = {
    "baseline": {8: 0.946, 32: 3.644, 64: 6.670, "mm": 0.695},
    "recurrent_v2": {8: 0.908, 32: 3.196, 64: 6.160, "mm": 0.654},
    "v3": {8: 0.8665, 32: 3.274, 64: 6.2175, "mm": 0.6805},
}
SEED_CONC8 = {"baseline": 9.542, "recurrent_v2": 6.650, "v3": 6.189}
PROMPT = latency.SEED_PROMPT_TOKENS


@pytest.mark.parametrize("variant", sorted(SEED_SINGLE))
def test_single_requests_match_the_seed_within_10_percent(variant: str) -> None:
    profile = profile_for(variant)
    for key, seed in SEED_SINGLE[variant].items():
        if key == "mm":
            predicted = single_request_s(profile, PROMPT, 8, latency.SEED_IMAGE_TOKENS)
        else:
            assert isinstance(key, int)
            predicted = single_request_s(profile, PROMPT, key)
        assert predicted == pytest.approx(seed, rel=0.10), (variant, key)


@pytest.mark.parametrize("variant", sorted(SEED_CONC8))
def test_concurrency_8_matches_the_seed_within_10_percent(variant: str) -> None:
    predicted = concurrent_wall_s(profile_for(variant), 8, PROMPT, 32)
    assert predicted == pytest.approx(SEED_CONC8[variant], rel=0.10)


def test_v3_degrades_least_under_concurrency() -> None:
    slopes = {name: p.batch_slope for name, p in PROFILES.items()}
    assert min(slopes, key=lambda name: slopes[name]) in ("v3", "v4")
    assert slopes["v3"] < slopes["recurrent_v2"] < slopes["baseline"]
    for batch in (8, 16, 32):
        assert PROFILES["v3"].batch_factor(batch) < PROFILES["baseline"].batch_factor(batch)


@pytest.mark.parametrize("profile", list(PROFILES.values()), ids=list(PROFILES))
def test_step_costs_are_positive_and_monotonic(profile: latency.VariantProfile) -> None:
    assert profile.prefill_s(0) > 0
    assert profile.prefill_s(100) < profile.prefill_s(1000)
    assert profile.prefill_s(10, 256) > profile.prefill_s(10)
    factors = [profile.batch_factor(b) for b in range(1, 40)]
    assert factors[: latency.BATCH_KNEE] == [1.0] * latency.BATCH_KNEE
    assert factors == sorted(factors)
    assert profile.decode_s(0) == profile.decode_s(1) == profile.decode_token_s


def test_unknown_variant_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="recurrent_v2"):
        profile_for("v9")


def test_image_requests_answer_briefly_unless_asked_not_to() -> None:
    seq = SimSequence("r", 10, 256, max_tokens=8, seed=1)
    assert seq.natural_length() == latency.IMAGE_ANSWER_TOKENS
    assert SimSequence("r", 10, 256, 8, 1, ignore_eos=True).natural_length() == 8
    assert SimSequence("r", 10, 0, 8, 1, natural_tokens=3).natural_length() == 3


def test_pseudo_text_is_deterministic_and_one_token_per_piece() -> None:
    seed = textgen.text_seed("prompt", 0)
    pieces = [textgen.text_piece(seed, i) for i in range(50)]
    assert pieces == [textgen.text_piece(seed, i) for i in range(50)]
    assert tokens.count_tokens("".join(pieces)) == 50
    assert pieces != [textgen.text_piece(seed + 1, i) for i in range(50)]


def test_tokenizer_basics() -> None:
    assert tokens.count_tokens("") == 0
    assert tokens.split_pieces("hello, world") == ["hell", "o", ",", " worl", "d"]
    english = "The router sends short prompts to the throughput lane and images elsewhere. " * 20
    assert tokens.count_tokens(english) == pytest.approx(len(english) / 4, rel=0.3)
    assert tokens.split_pieces("a bc.") == ["a", " bc", "."]
    assert len(tokens.token_ids("same words")) == tokens.count_tokens("same words")
    assert tokens.token_ids("x y") == tokens.token_ids("x y")
    assert tokens.image_tokens(448, 448) == 256
    assert tokens.image_tokens(None, None) == tokens.DEFAULT_IMAGE_TOKENS
    assert tokens.image_tokens(1, 1) == tokens.MIN_IMAGE_TOKENS


# -- the engine loop, in process (a large time scale keeps it fast) -----------------------


async def drain(seq: SimSequence) -> list[TokenEvent]:
    events = []
    while True:
        event = await seq.events.get()
        events.append(event)
        if event.finish_reason is not None:
            return events


async def run_engine(engine: Engine, seqs: list[SimSequence]) -> list[list[TokenEvent]]:
    task = asyncio.create_task(engine.run())
    try:
        for seq in seqs:
            engine.submit(seq)
        return await asyncio.wait_for(asyncio.gather(*(drain(s) for s in seqs)), 10)
    finally:
        task.cancel()


async def test_engine_generates_max_tokens_then_length() -> None:
    engine = Engine(profile_for("v3"), time_scale=1000)
    [events] = await run_engine(engine, [SimSequence("a", 20, 0, 5, seed=7)])
    assert len(events) == 5
    assert [e.finish_reason for e in events] == [None] * 4 + ["length"]
    assert engine.num_running == engine.num_waiting == 0


async def test_engine_batches_concurrent_sequences_and_is_slower_per_step() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.gaps: list[float] = []

        def on_prefill(self, seq: SimSequence) -> None:
            pass

        def on_token(self, seq: SimSequence, gap_s: float | None) -> None:
            if gap_s is not None:
                self.gaps.append(gap_s)

        def on_finish(self, seq: SimSequence) -> None:
            pass

        def on_load_change(self) -> None:
            pass

    profile = profile_for("baseline")
    scale = 20.0
    alone = Recorder()
    await run_engine(
        Engine(profile, time_scale=scale, listener=alone), [SimSequence("a", 20, 0, 6, 1)]
    )
    crowd = Recorder()
    seqs = [SimSequence(str(i), 20, 0, 6, i) for i in range(8)]
    await run_engine(Engine(profile, time_scale=scale, listener=crowd), seqs)
    # Median: the first gaps of early sequences also span the prefills of later ones.
    gap_alone = statistics.median(alone.gaps)
    gap_crowd = statistics.median(crowd.gaps)
    assert gap_alone == pytest.approx(profile.decode_s(1) / scale, rel=0.5)
    assert gap_crowd == pytest.approx(profile.decode_s(8) / scale, rel=0.5)
    assert gap_crowd > 1.5 * gap_alone


async def test_engine_abort_removes_a_running_sequence() -> None:
    engine = Engine(profile_for("v3"), time_scale=1000)
    task = asyncio.create_task(engine.run())
    try:
        seq = engine.submit(SimSequence("a", 20, 0, 10_000, seed=1))
        await seq.events.get()
        assert engine.num_running == 1
        assert engine.abort(seq) is True
        assert seq.state is SeqState.ABORTED
        assert engine.num_running == 0
        assert engine.abort(seq) is False
    finally:
        task.cancel()


async def test_engine_stop_strings_cut_the_text() -> None:
    engine = Engine(profile_for("v3"), time_scale=1000)
    [full] = await run_engine(engine, [SimSequence("a", 20, 0, 12, seed=3)])
    text = "".join(e.text for e in full)
    word = text.split()[4]
    seq = SimSequence("b", 20, 0, 12, seed=3, stop=(word,))
    [cut] = await run_engine(Engine(profile_for("v3"), time_scale=1000), [seq])
    assert cut[-1].finish_reason == "stop"
    assert seq.text == text[: text.index(word)]
    assert "".join(e.text for e in cut) == seq.text


async def test_engine_queues_beyond_max_num_seqs() -> None:
    engine = Engine(profile_for("v3"), time_scale=1000, max_num_seqs=2)
    seqs = [SimSequence(str(i), 20, 0, 4, i) for i in range(4)]
    task = asyncio.create_task(engine.run())
    try:
        for seq in seqs:
            engine.submit(seq)
        await seqs[0].events.get()
        await seqs[1].events.get()
        assert engine.num_running == 2
        assert engine.num_waiting == 2
        await asyncio.wait_for(asyncio.gather(*(drain(s) for s in seqs[2:])), 10)
        assert all(s.generated == 4 for s in seqs)
        assert seqs[2].first_token_at is not None and seqs[1].last_token_at is not None
        assert seqs[2].first_token_at >= seqs[1].last_token_at  # waited for a free slot
    finally:
        task.cancel()
