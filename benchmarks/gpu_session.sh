#!/usr/bin/env bash
# The CUDA checks and GPU benchmarks, on a GPU machine that has PyTorch but not this project's
# other packages, no network, and no room for the bundled model's weights.
#
#   bash benchmarks/gpu_session.sh prepare   # here: wheels into .whl/, the tokenizer into .gpu/tok
#   bash benchmarks/gpu_session.sh run OUT [STEP...]   # there: tests sweep long (default: all three)
#   bash benchmarks/gpu_session.sh with CMD...          # there: CMD in the same environment
#
# `prepare` needs this project's environment (the bundled model's tokenizer) and pip's index;
# `run` installs the carried wheels (transformers as pinned here, genlm-backend for the vocabulary)
# under /tmp, puts the repository on the path as the `selfsteer` package, runs tests/test_cuda.py
# and `benchmarks.gpu_throughput` (the N sweep, then memory on a 1,000-token shared prompt); the
# log, JSON and PNG files go under OUT.
set -uo pipefail
cd "$(dirname "$0")/.."

prepare() {
    local py=${PYTHON:-python}
    rm -rf .whl .gpu && mkdir -p .whl .gpu/tok
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 -d .whl \
        "transformers==$("$py" -c 'import transformers; print(transformers.__version__)')" genlm-backend==0.3.1
    "$py" -c "
from benchmarks.environment import model_dir
from transformers import AutoTokenizer
AutoTokenizer.from_pretrained(model_dir()).save_pretrained('.gpu/tok')"
    echo "carry .whl and .gpu (both must be git-ignored, e.g. in .git/info/exclude)"
}

tests() {
    timeout 180 python3 -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py
}

sweep() {  # the throughput target (N=64) and the scaling curve
    timeout 420 python3 -m benchmarks.gpu_throughput --config llama-1b --particles 1 4 16 64 256 \
        --tokens 128 --tokenizer .gpu/tok --out "$1"
}

long() {  # peak memory against N on a 1,000-token shared prompt
    timeout 300 python3 -m benchmarks.gpu_throughput --config llama-1b --particles 1 16 64 \
        --tokens 32 --prompt-tokens 1000 --repeats 2 --tokenizer .gpu/tok --out "$1/long_prompt"
}

environment() {
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    mkdir -p /tmp/pkg/selfsteer
    for d in smc programs planners training cli; do ln -sfn "$PWD/$d" "/tmp/pkg/selfsteer/$d"; done
    export PYTHONPATH="/tmp/site:/tmp/pkg:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
    export SELFSTEER_TEST_TOKENIZER="$PWD/.gpu/tok"
}

with() {
    environment
    "$@"
}

run() {
    local out=${1:?usage: gpu_session.sh run OUT [tests|sweep|long ...]}
    shift
    local steps=("${@:-tests sweep long}")
    mkdir -p "$out"
    environment
    {
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
        python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
        for step in ${steps[@]}; do echo "== $step"; "$step" "$out"; done
    } 2>&1 | tee -a "$out/run.log"
}

"$@"
