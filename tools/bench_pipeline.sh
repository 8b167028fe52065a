#!/usr/bin/env bash
# Input-pipeline throughput on ../shared/data/album-covers-dev (BENCHMARKS.md):
# (a) 512x512 JPEG files (the dev covers upscaled, as the Kaggle originals are 512x512)
#     through decode + resize to 256; (b) the prepared 256x256 album_covers TFDS set.
set -eu
DEV=${DEV:-../shared/data/album-covers-dev}
TMP=${TMP_BENCH:-/tmp/flax_inpaint_bench}
mkdir -p "$TMP"
if [ ! -d "$TMP/jpeg512" ]; then
  python - "$DEV" "$TMP/jpeg512" <<'PY'
import pathlib, sys
from PIL import Image
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
dst.mkdir(parents=True)
for p in sorted(src.rglob('*.jpg')):
  Image.open(p).convert('RGB').resize((512, 512), Image.Resampling.LANCZOS).save(
      dst / p.name, quality=90)
PY
fi
if [ ! -d "$TMP/tfds/album_covers" ]; then
  python main.py --mode=prepare --config=configs/full.py --config.data.manual_dir="$DEV" \
      --config.data.data_dir="$TMP/tfds"
fi
# One core: the process pinned to CPU 0 (taskset) and a 1-thread tf.data pool.
for threads in 1 2; do
  PIN=""; [ $threads = 1 ] && PIN="taskset -c 0"
  $PIN python -m flax_inpaint.input_benchmark --benchmark=folder --dir="$TMP/jpeg512" \
      --threads=$threads --batches=200 2>/dev/null | tail -1
  $PIN python -m flax_inpaint.input_benchmark --benchmark=album_covers --data_dir="$TMP/tfds" \
      --threads=$threads --batches=200 2>/dev/null | tail -1
done
