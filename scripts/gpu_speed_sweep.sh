#!/usr/bin/env bash
# Next GPU session (issue 6's open target): measure variants of the reference workload one by
# one, and keep a profile of the baseline. Run with the device tool:
#   run(command="bash scripts/gpu_speed_sweep.sh", carry=[".gpu_wheels"])
# (.gpu_wheels: `pip download --no-deps -d .gpu_wheels ml-collections`).
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD
PY=python3
$PY -c "import ml_collections" 2>/dev/null || $PY -m pip install -q --no-deps --no-index .gpu_wheels/*.whl
CACHE=/tmp/jax_cache_sweep
B="$PY -m flax_inpaint.benchmark --config=configs/reference.py --steps=30 --warmup=5 --config.model.dtype=bfloat16 --config.compilation_cache_dir=$CACHE"
run() { echo "== $1"; shift; timeout 150 "$@" 2>>"$OUT/stderr.txt" | tail -1 | tee -a "$OUT/sweep.jsonl"; }
run baseline_with_profile $B --profile_dir=/tmp/profile
(cd /tmp/profile && tar czf "$OUT/profile.tgz" .)
for batch in 128 256; do run "batch_$batch" $B --batch=$batch; done
run autotune_4 env XLA_FLAGS=--xla_gpu_autotune_level=4 $B
tail -c 8000 "$OUT/stderr.txt" > "$OUT/stderr_tail.txt"; rm -f "$OUT/stderr.txt"
