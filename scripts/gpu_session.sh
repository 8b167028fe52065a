#!/usr/bin/env bash
# The GPU checks of BENCHMARKS.md, in one call of the device tool (jax, no TF/clu there):
#   run(command="bash scripts/gpu_session.sh", carry=[".gpu_wheels"])
# SMOKE=1 runs the same stages with tiny settings on a CPU, to check the script.
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD
LOG=$OUT/log.txt
PY=python3
$PY -c "import ml_collections" 2>/dev/null || $PY -m pip install -q --no-deps --no-index .gpu_wheels/*.whl >>"$LOG" 2>&1
DATA=$(ls -d .album_dev shared/data/album-covers-dev ../shared/data/album-covers-dev 2>/dev/null | head -1)
CACHE=/tmp/jax_cache_session; rm -rf "$CACHE"
if [ "${SMOKE:-0}" = 1 ]; then
  CFG=configs/test.py; STEPS=14; WARM=1; TRAIN_STEPS=4; EXTRA="--config.eval.num_images=8"; T=300
else
  CFG=configs/reference.py; STEPS=30; WARM=5; TRAIN_STEPS=2000; EXTRA=""; T=150
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv >>"$LOG" 2>&1
fi
$PY -c "import jax, flax, optax, orbax.checkpoint as o; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, 'orbax', o.__version__, jax.devices())" >>"$LOG" 2>&1
bench() {  # name, args...
  local name=$1; shift
  local start=$(date +%s.%N)
  timeout $T $PY -m flax_inpaint.benchmark --config=$CFG --steps=$STEPS --warmup=$WARM \
      --config.compilation_cache_dir=$CACHE "$@" > "$OUT/.b" 2>>"$LOG.stderr"
  local rc=$?
  local end=$(date +%s.%N)
  local json=$(tail -1 "$OUT/.b")
  echo "{\"name\": \"$name\", \"rc\": $rc, \"process_wall_s\": $($PY -c "print(round($end - $start, 2))"), \"result\": ${json:-null}}" >> "$OUT/bench.jsonl"
  echo "[$(date +%T)] $name rc=$rc $json" | tee -a "$LOG"
}
bench bf16_cold --config.model.dtype=bfloat16
bench bf16_warm_cache --config.model.dtype=bfloat16
bench fp32 --config.model.dtype=float32
bench bf16_loop --config.model.dtype=bfloat16 --mode=loop --config.train.log_every=20 \
    --config.train.checkpoint_every=25 --steps=$((STEPS * 3))
# Train the seed's final model (perceptual term off: no pretrained VGG16 here) and eval.
if [ -n "$DATA" ]; then
  W=/tmp/gpu_train; rm -rf $W
  TCFG=configs/full.py; [ "${SMOKE:-0}" = 1 ] && TCFG=configs/test.py
  timeout $((T * 3)) $PY scripts/gpu_train_eval.py --config=$TCFG --workdir=$W \
      --config.data.dir=$DATA/train --config.eval.dir=$DATA/val --config.train.batch_size=64 \
      --config.model.dtype=bfloat16 --config.loss.perceptual_weight=0 \
      --config.train.num_steps=$TRAIN_STEPS --config.train.checkpoint_every=1000 \
      --config.train.log_every=200 --config.train.sample_every=1000 \
      --config.compilation_cache_dir=$CACHE $EXTRA > "$OUT/train.txt" 2>&1
  echo "[$(date +%T)] train+eval rc=$?" | tee -a "$LOG"
  grep -E "step [0-9]+:|Resum|loaded" "$OUT/train.txt" | tail -12 >> "$LOG"
  cp $W/eval/metrics.json $W/eval/report.md $W/eval/grid_00.png $W/loss_curves.png "$OUT/" 2>>"$LOG"
  cp "$(ls $W/samples/*.png | tail -1)" "$OUT/samples_last.png" 2>>"$LOG"
  tail -c 20000 "$OUT/train.txt" > "$OUT/train_tail.txt"; rm -f "$OUT/train.txt"
fi
bench bf16_vgg_single_pass --config.model.dtype=bfloat16 --config.loss.vgg_single_pass=True
tail -c 30000 "$LOG.stderr" > "$OUT/stderr_tail.txt"; rm -f "$LOG.stderr" "$OUT/.b"
cat "$OUT/bench.jsonl"
