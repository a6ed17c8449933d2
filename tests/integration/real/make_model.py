"""Make a tiny random Qwen3.5 (tokenizer + weights) in a local directory; no hub access.

Run by the real-backend virtualenv (see provision.sh). The tokenizer is a byte-level BPE
trained here on a small generated corpus, with Qwen's ChatML chat template and its
special tokens; the model is ``Qwen3_5ForCausalLM`` from a ``Qwen3_5TextConfig`` with tiny
dimensions (both attention kinds of Qwen3.5's hybrid layout: linear GDN and full), random
weights from a fixed seed. ``save_pretrained`` writes the directory ``transformers serve``
loads by path.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen3_5ForCausalLM,
    Qwen3_5TextConfig,
    Qwen3Config,
    Qwen3ForCausalLM,
)

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def corpus() -> list[str]:
    """A few thousand generated sentences: enough for a small BPE vocabulary."""
    words = [
        "the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "qwen",
        "serves", "tokens", "on", "ascend", "npus", "routers", "promote", "lanes", "stable",
        "throughput", "multimodal", "hello", "world", "say", "one", "two", "three", "count",
        "numbers", "letters", "reply", "answer", "question", "model", "stream", "usage", "done",
    ]  # fmt: skip
    return [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(12)) for i in range(3000)]


def make_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus(), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def make_model(tokenizer: PreTrainedTokenizerFast) -> Qwen3_5ForCausalLM:
    torch.manual_seed(0)
    config = Qwen3_5TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        layer_types=["linear_attention", "full_attention"],
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        linear_key_head_dim=16,
        linear_value_head_dim=16,
        linear_num_key_heads=2,
        linear_num_value_heads=4,
        max_position_embeddings=2048,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    return Qwen3_5ForCausalLM(config).eval()


def make_qwen3(tokenizer: PreTrainedTokenizerFast) -> Qwen3ForCausalLM:
    """A tiny Qwen3 for vLLM on the CPU, whose attention kernels need head_dim >= 32."""
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=2048,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    return Qwen3ForCausalLM(config).eval()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory to write")
    parser.add_argument("--vocab-size", type=int, default=512)
    parser.add_argument("--arch", choices=["qwen3.5", "qwen3"], default="qwen3.5")
    args = parser.parse_args()
    tokenizer = make_tokenizer(args.vocab_size)
    model: PreTrainedModel = (
        make_model(tokenizer) if args.arch == "qwen3.5" else make_qwen3(tokenizer)
    )
    args.out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(args.out)
    model.save_pretrained(args.out)
    # generation defaults: a short, deterministic-length answer unless asked otherwise.
    generation = {"max_new_tokens": 16, "eos_token_id": model.config.eos_token_id}
    (args.out / "generation_config.json").write_text(json.dumps(generation))
    params = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out}: {params} parameters, vocabulary {len(tokenizer)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
