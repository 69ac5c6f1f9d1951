#!/usr/bin/env bash
# The one prepared GPU check, for a session that is lent a GPU machine (the device tool). Runs
# from the repository root there, in under 8 minutes, with no Hub access:
#   1. float16 parity on the real CUDA kernels: the fast backend and lm-eval's hf against a
#      float32 reference, pythia-410m and -1.4b shapes (benchmarks/bench_fp16.py), and the
#      out-of-memory backoff on the real card;
#   2. bench_sweep on 410m (4 checkpoints) and 1.4b (3 checkpoints) shapes in float16, all
#      documents of the five tasks: per-checkpoint overhead, start-up, and the peak GPU memory
#      against one model (at most one model resident while the next one is prefetched).
# It ends with a summary of the lines that answer those questions; everything goes to
# $OUT/gpu.log as well. Before calling the device, run benchmarks/gpu_wheels.sh here and carry
# .whl (see benchmarks/README.md). Smoke test on a CPU: QUICK=1 DEVICE=cpu PY=.venv/bin/python
# bash benchmarks/gpu.sh (tiny shapes, a few documents).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-/tmp/evalsuite-gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if ! "$PY" -c "import lm_eval, duckdb, datasets" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || { echo "installing .whl failed"; exit 1; }
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [ "${QUICK:-0}" = 1 ]; then
    small=14m; large=14m; limit=(--limit 5); fp16_limit=(--limit 3)
else
    small=410m; large=1.4b; limit=(); fp16_limit=(--limit 100)
fi

step() {  # step NAME SECONDS COMMAND...: run it with a time limit, output kept, status said
    local name=$1 seconds=$2
    shift 2
    echo "=== $name"
    timeout "$seconds" "$@" 2>&1 | grep -v -e '^WARNING' -e '^INFO'
    echo "=== $name: exit status ${PIPESTATUS[0]}"
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
    "$PY" -c "import torch, transformers, pyarrow, datasets, lm_eval, duckdb; print('torch', torch.__version__,
        'transformers', transformers.__version__, 'pyarrow', pyarrow.__version__, 'datasets',
        datasets.__version__, 'lm_eval', lm_eval.__version__, 'duckdb', duckdb.__version__)" 2>&1 | tail -1
    for shape in "$small" "$large"; do
        step "float16 parity and OOM backoff, $shape" 120 \
            "$PY" benchmarks/bench_fp16.py --device "$DEVICE" --shape "$shape" "${fp16_limit[@]}"
    done
    step "sweep, $small, float16" 150 "$PY" benchmarks/bench_sweep.py --shape "$small" \
        --device "$DEVICE" --dtype float16 --checkpoints 4 "${limit[@]}"
    step "sweep, $large, float16" 180 "$PY" benchmarks/bench_sweep.py --shape "$large" \
        --device "$DEVICE" --dtype float16 --checkpoints 3 "${limit[@]}"
} 2>&1 | tee "$OUT/gpu.log"

echo
echo "=== summary"
grep -E -e '^=== .*exit status' -e 'overhead of checkpoints' -e '^GPU memory' -e '^a fresh' \
    -e '^float16' -e '^out-of-memory' -e '^torch ' "$OUT/gpu.log" | tee "$OUT/summary.txt"
