"""The per-script estimator and its online correction."""

from __future__ import annotations

import random
from typing import Any, ClassVar

import pytest

from qwend.compress.counting import (
    FEATURES,
    INITIAL_MARGIN,
    PRIOR_WEIGHTS,
    EstimatingCounter,
    TokenCounter,
    count_messages,
    message_features,
    text_features,
)
from qwend.tokens import REPLY_PRIMER_TOKENS


def test_units_by_script() -> None:
    f = text_features("Qwen3.5 在昇腾上运行, extraordinarily fast!")
    assert f.cjk == 6
    assert f.digit == 2
    assert f.word == 3  # Qwen, extraordinarily, fast
    assert f.long_word == 2  # "extraordinarily" is 15 characters: two pieces past six
    assert f.punct == 3  # . , !


def test_messages_count_images_and_template_overhead() -> None:
    counter = EstimatingCounter()
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}
    plain = [{"role": "user", "content": "hi"}]
    with_image = [{"role": "user", "content": [{"type": "text", "text": "hi"}, image]}]
    assert counter.estimate(with_image) - counter.estimate(plain) == pytest.approx(256.0)
    assert counter.estimate(plain) == (
        REPLY_PRIMER_TOKENS + PRIOR_WEIGHTS["message"] + PRIOR_WEIGHTS["word"]
    )
    # Counts are the estimate plus the safety margin, rounded up.
    assert count_messages(counter, plain) == REPLY_PRIMER_TOKENS + counter.count_message(plain[0])
    assert counter.count_message(plain[0]) == 6  # ceil((4 + 1.15) * 1.10)


def test_is_a_token_counter() -> None:
    counter: TokenCounter = EstimatingCounter()
    assert counter.count("") == 0


class HiddenTokenizer:
    """A lane whose tokenizer spends other weights than the prior, to learn from."""

    TRUE: ClassVar[dict[str, float]] = {
        "cjk": 1.1,
        "word": 1.6,
        "long_word": 0.5,
        "digit": 1.0,
        "punct": 1.0,
        "image": 400.0,
        "message": 6.0,
    }

    def prompt_tokens(self, messages: list[dict[str, Any]]) -> int:
        units = [message_features(m).vector() for m in messages]
        weights = [self.TRUE[name] for name in FEATURES]
        exact = sum(w * x for vector in units for w, x in zip(weights, vector, strict=True))
        return REPLY_PRIMER_TOKENS + round(exact)


def sample(rng: random.Random) -> list[dict[str, Any]]:
    zh = "我们今天讨论部署方案和性能指标"
    en = ["deploy", "the", "lane", "throughput", "latency", "configuration", "ok"]
    messages: list[dict[str, Any]] = []
    for _ in range(rng.randint(1, 5)):
        text = "".join(rng.choice(zh) for _ in range(rng.randint(0, 40)))
        text += " " + " ".join(rng.choice(en) for _ in range(rng.randint(0, 30)))
        text += " " + str(rng.randint(0, 10 ** rng.randint(1, 6))) + "." * rng.randint(0, 3)
        content: Any = text
        if rng.random() < 0.3:
            content = [{"type": "text", "text": text}, {"type": "image_url", "image_url": {}}]
        messages.append({"role": "user", "content": content})
    return messages


def relative_error(counter: EstimatingCounter, lane: HiddenTokenizer, rng: random.Random) -> float:
    errors = []
    for _ in range(50):
        messages = sample(rng)
        truth = lane.prompt_tokens(messages)
        errors.append(abs(counter.estimate(messages) - truth) / truth)
    return sum(errors) / len(errors)


def test_observed_prompt_sizes_correct_the_estimate() -> None:
    rng = random.Random(4)
    lane = HiddenTokenizer()
    counter = EstimatingCounter()
    before = relative_error(counter, lane, random.Random(99))
    for _ in range(300):
        messages = sample(rng)
        counter.observe(messages, lane.prompt_tokens(messages))
    after = relative_error(counter, lane, random.Random(99))
    assert before > 0.15
    assert after < 0.03, (before, after, counter.weights)
    assert counter.observations == 300
    assert counter.weights["cjk"] == pytest.approx(1.1, rel=0.1)


def test_counts_stay_above_the_truth_and_the_margin_follows_the_error() -> None:
    rng = random.Random(8)
    lane = HiddenTokenizer()
    counter = EstimatingCounter()
    under = 0
    for _ in range(400):
        messages = sample(rng)
        truth = lane.prompt_tokens(messages)
        under += count_messages(counter, messages) < truth
        counter.observe(messages, truth)
    assert under <= 20, f"{under} of 400 counts were below the lane's"
    assert counter.margin < INITIAL_MARGIN
    fresh = [sample(rng) for _ in range(100)]
    assert all(count_messages(counter, m) >= lane.prompt_tokens(m) for m in fresh)


def test_one_absurd_observation_cannot_wreck_the_weights() -> None:
    counter = EstimatingCounter()
    messages = [{"role": "user", "content": "hello there"}]
    counter.observe(messages, 10**9)
    for name, prior in PRIOR_WEIGHTS.items():
        assert counter.weights[name] <= 5.0 * prior
    counter.observe(messages, 0)  # no usage reported: nothing learned
    assert counter.observations == 1


def test_unknown_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown estimator weights"):
        EstimatingCounter({"emoji": 2.0})
