#!/usr/bin/env bash
# Second GPU call: cold/warm compilation-cache start-up, then train + eval on album-covers-dev.
# Carry .gpu_wheels and .album_dev (a copy of ../shared/data/album-covers-dev).
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD
PY=python3; LOG=$OUT/log.txt
$PY -c "import ml_collections" 2>/dev/null || $PY -m pip install -q --no-deps --no-index .gpu_wheels/*.whl >>"$LOG" 2>&1
CACHE=/tmp/jax_cache_session; rm -rf "$CACHE"
STEPS=${STEPS:-5}; TRAIN_STEPS=${TRAIN_STEPS:-2000}; CFG=${CFG:-configs/reference.py}; TCFG=${TCFG:-configs/full.py}
for name in cold warm; do
  timeout 150 $PY -m flax_inpaint.benchmark --config=$CFG --steps=$STEPS --warmup=2 \
    --config.model.dtype=bfloat16 --config.compilation_cache_dir=$CACHE 2>>"$OUT/stderr.txt" | tail -1 \
    | sed "s/^/$name /" | tee -a "$LOG"
done
W=/tmp/gpu_train; rm -rf $W
timeout 330 $PY scripts/gpu_train_eval.py --config=$TCFG --workdir=$W \
    --config.data.dir=.album_dev/train --config.eval.dir=.album_dev/val --config.train.batch_size=64 \
    --config.model.dtype=bfloat16 --config.loss.perceptual_weight=0 \
    --config.train.num_steps=$TRAIN_STEPS --config.train.checkpoint_every=1000 \
    --config.train.log_every=250 --config.train.sample_every=1000 \
    --config.compilation_cache_dir=$CACHE ${EXTRA:-} > "$OUT/train.txt" 2>&1
echo "train+eval rc=$?" | tee -a "$LOG"
grep -E "step [0-9]+:|loaded|Evaluating" "$OUT/train.txt" | cut -c1-400 | tail -14 >> "$LOG"
cp $W/eval/metrics.json $W/eval/report.md $W/eval/grid_00.png $W/loss_curves.png "$OUT/" 2>>"$LOG"
cp "$(ls $W/samples/*.png | tail -1)" "$OUT/samples_last.png" 2>>"$LOG"
tail -c 20000 "$OUT/train.txt" > "$OUT/train_tail.txt"; rm -f "$OUT/train.txt"
tail -c 10000 "$OUT/stderr.txt" > "$OUT/stderr_tail.txt"; rm -f "$OUT/stderr.txt"
cat "$LOG"; cat $W/eval/report.md
