"""A real ``qwend-sim serve`` subprocess driven by the ``openai`` package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletionContentPartImageParam, ChatCompletionMessageParam

from qwend import tokens
from qwend.sim.latency import IMAGE_ANSWER_TOKENS
from tests.support.simlane import DEFAULT_MODEL as MODEL
from tests.support.simlane import SimLaneProcess, data_url, png_bytes, start_sim_lane


@pytest.fixture(scope="module")
def lane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimLaneProcess]:
    state = tmp_path_factory.mktemp("sim-api")
    proc = start_sim_lane(state_dir=state, npus="3", time_scale=50)
    yield proc
    proc.stop()


@pytest.fixture
def client(lane: SimLaneProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=lane.openai_url, api_key="unused", max_retries=0, timeout=30)


def test_models_lists_served_model_with_devices(client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL]
    entry = models.data[0].model_dump()
    assert entry["max_model_len"] == 32768
    assert entry["metadata"]["ascend_rt_visible_devices"] == "3"


def test_chat_non_stream_has_usage_and_length_finish(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Tell me about lanes."}]
    reply = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8)  # type: ignore[arg-type]
    choice = reply.choices[0]
    assert choice.finish_reason == "length"
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert tokens.count_tokens(choice.message.content) == 8
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 8
    assert reply.usage.prompt_tokens == tokens.chat_text_tokens(messages)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 8


def test_chat_stream_with_include_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Stream please"}],
        max_completion_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    content = [c.choices[0].delta.content for c in chunks if c.choices]
    assert len(content) == 6
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes == [None] * 5 + ["length"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6


def test_stream_without_include_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=3, stream=True
    )
    chunks = list(stream)
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_completions_stream_and_not(client: openai.OpenAI) -> None:
    whole = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5)
    assert whole.choices[0].finish_reason == "length"
    assert whole.usage is not None
    assert whole.usage.prompt_tokens == tokens.count_tokens("Once upon a time")
    streamed = client.completions.create(
        model=MODEL, prompt="Once upon a time", max_tokens=5, stream=True
    )
    text = "".join(c.choices[0].text for c in streamed)
    assert text == whole.choices[0].text  # deterministic pseudo-text


def test_same_request_gives_same_text_and_temperature_changes_it(client: openai.OpenAI) -> None:
    def ask(temperature: float) -> str:
        reply = client.completions.create(
            model=MODEL, prompt="abc", max_tokens=6, temperature=temperature
        )
        return reply.choices[0].text

    assert ask(0.0) == ask(0.0)
    assert ask(0.0) != ask(0.9)


def test_stop_string_cuts_the_answer(client: openai.OpenAI) -> None:
    full = client.completions.create(model=MODEL, prompt="stop test", max_tokens=10)
    text = full.choices[0].text
    word = text.split()[3]
    cut = client.completions.create(model=MODEL, prompt="stop test", max_tokens=10, stop=[word])
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].text == text[: text.index(word)]


def test_no_max_tokens_answers_naturally(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=MODEL, prompt="open ended")
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 64


def test_image_part_counts_image_tokens(client: openai.OpenAI) -> None:
    text_part = {"type": "text", "text": "What colour is this?"}
    image_part = {"type": "image_url", "image_url": {"url": data_url(png_bytes(300, 200))}}
    messages = [{"role": "user", "content": [text_part, image_part]}]
    reply = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8)  # type: ignore[arg-type]
    assert reply.usage is not None
    expected_image = tokens.image_tokens(300, 200)
    assert expected_image == 11 * 8
    assert reply.usage.prompt_tokens == tokens.chat_text_tokens(messages) + expected_image
    # A short answer about the image, then end of sequence.
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens == IMAGE_ANSWER_TOKENS


def test_image_request_with_ignore_eos_runs_to_max_tokens(client: openai.OpenAI) -> None:
    image: ChatCompletionContentPartImageParam = {
        "type": "image_url",
        "image_url": {"url": data_url(png_bytes(28, 28))},
    }
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": [image]}],
        max_tokens=7,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 7
    assert chunks[-1].usage.prompt_tokens >= tokens.MIN_IMAGE_TOKENS


async def test_tokenize_has_vllm_shape(lane: SimLaneProcess) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{lane.base_url}/tokenize", json={"model": MODEL, "prompt": "hello world, sim"}
        ) as resp:
            assert resp.status == 200
            body = await resp.json()
        messages = [{"role": "user", "content": "hello world"}]
        async with session.post(f"{lane.base_url}/tokenize", json={"messages": messages}) as resp:
            chat = await resp.json()
    assert set(body) >= {"count", "max_model_len", "tokens"}
    assert body["count"] == len(body["tokens"]) == tokens.count_tokens("hello world, sim")
    assert body["max_model_len"] == 32768
    assert chat["count"] == len(chat["tokens"]) == tokens.chat_text_tokens(messages)


async def test_metrics_use_vllm_names(lane: SimLaneProcess, client: openai.OpenAI) -> None:
    client.completions.create(model=MODEL, prompt="metrics", max_tokens=3)
    async with aiohttp.ClientSession() as session, session.get(f"{lane.base_url}/metrics") as resp:
        text = await resp.text()
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:inter_token_latency_seconds_bucket",
        "qwend_sim_requests_aborted_total",
    ):
        assert name in text, name


def test_state_file_exists_while_serving(lane: SimLaneProcess) -> None:
    assert (Path(lane.state_dir) / f"lane-{lane.pid}.json").exists()


def test_echo_answers_the_rest_of_the_message_verbatim(client: openai.OpenAI) -> None:
    said = "Here: <img src=x onerror=alert(1)> and <script>alert(2)</script>\n```py\nx = 1\n```"
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "/echo " + said}]
    stream = client.chat.completions.create(model=MODEL, messages=messages, stream=True)
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(pieces) == said
    assert len([p for p in pieces if p]) == tokens.count_tokens(said)  # token by token
    short = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=3)
    assert short.choices[0].finish_reason == "length"
    assert short.choices[0].message.content == "".join(tokens.split_pieces(said)[:3])
