"""Throughput of the input pipeline alone (no model): images per second per core.

python -m flax_inpaint.input_benchmark --benchmark=folder --dir=IMAGES --threads=1
python -m flax_inpaint.input_benchmark --benchmark=album_covers --data_dir=TFDS_DIR
"""

import argparse
import json
import os
import time

import tensorflow as tf

from flax_inpaint.config import schema
from flax_inpaint.data import pipeline


def benchmark(dataset: tf.data.Dataset, num_batches: int, batch_size: int) -> dict:
  iterator = dataset.as_numpy_iterator()
  next(iterator)  # Warm-up: builds the pipeline, fills the prefetch buffer once.
  start = time.perf_counter()
  for _ in range(num_batches):
    next(iterator)
  elapsed = time.perf_counter() - start
  return {'images_per_s': num_batches * batch_size / elapsed, 'seconds': elapsed}


def main(argv=None):
  parser = argparse.ArgumentParser(prog='python -m flax_inpaint.input_benchmark')
  parser.add_argument('--benchmark', choices=('folder', 'album_covers'), required=True)
  parser.add_argument('--dir', help='folder of images (folder benchmark)')
  parser.add_argument('--data_dir', help='prepared TFDS dir (album_covers benchmark)')
  parser.add_argument('--image_size', type=int, default=256)
  parser.add_argument('--batch', type=int, default=64)
  parser.add_argument('--batches', type=int, default=50)
  parser.add_argument('--threads', type=int, default=0, help='0 = all cores')
  args = parser.parse_args(argv)
  config = schema.get_config()
  config.data.source = args.benchmark
  config.data.dir = args.dir
  config.data.data_dir = args.data_dir
  config.data.image_size = args.image_size
  config.data.train_split = 'train'
  config.train.batch_size = args.batch
  options = tf.data.Options()
  if args.threads:
    options.threading.private_threadpool_size = args.threads
  cores = args.threads or len(os.sched_getaffinity(0))
  try:  # A missing folder or unprepared set: one line, exit status 2.
    ds = pipeline.train_dataset(config, process_index=0, process_count=1)
  except (FileNotFoundError, ValueError) as e:
    parser.exit(2, f'error: {str(e).splitlines()[0]}\n')
  ds = ds.with_options(options)
  result = benchmark(ds, args.batches, args.batch)
  result.update(
      source=args.benchmark,
      cores=cores,
      batch=args.batch,
      image_size=args.image_size,
      images_per_s_per_core=result['images_per_s'] / cores,
  )
  print(json.dumps(result))
  return 0
