#!/usr/bin/env bash
# Provision the real-Ray test environment (`make real-ray` runs this first): a virtualenv
# of its own (never the project's .venv) with Ray from PyPI, pinned below (CPU only: Ray's
# wheel needs no GPU). Cached under $QWEND_REAL_CACHE (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/qwend-real, as the real-backend venv) and rebuilt only
# when the pin changes. Prints the virtualenv's directory on its last line.
set -euo pipefail
cache=${QWEND_REAL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qwend-real}
python=${PYTHON:-python3}

# Plain `ray` (no extras): `ray start`, the GCS, raylet, dashboard and the Python driver
# API are all in it; vLLM's Ray executor uses the same core.
RAY="ray==2.60.0"

venv="$cache/ray-venv"
stamp="$venv/.qwend-pins"
if [[ ! -x "$venv/bin/ray" || "$(cat "$stamp" 2>/dev/null)" != "$RAY" ]]; then
    echo "real Ray: creating $venv ($RAY)" >&2
    rm -rf "$venv"
    mkdir -p "$cache"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet --only-binary=:all: "$RAY"
    "$venv/bin/ray" --version >&2
    echo "$RAY" > "$stamp"
fi
echo "$venv"
