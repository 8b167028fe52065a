"""Times repairs of large photos on this machine, beside the classical fills (push-pull,
OpenCV Navier-Stokes and Telea, PatchMatch); prints JSON.

  python -m flax_inpaint.inference_benchmark --model=album-covers
  python -m flax_inpaint.inference_benchmark --config=configs/full.py
  python -m flax_inpaint.inference_benchmark --config=configs/full.py --workdir=W \
      --cases=2048x1536:4x32 --repeats=5

Each case (WIDTHxHEIGHT:COUNTxSIDE holes, spread over the image) runs in a fresh process,
so `peak_rss_mb` (the process's peak resident memory, Python and jax included) is that
case's own. Timings are warm: one untimed repair first (compilation), then the median of
`--repeats`. Without --workdir the model has random weights of the config's size: speed
does not depend on the weights' values; --model times a released model. Imports neither
TensorFlow nor clu.
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import time

from absl import flags
import jax
from ml_collections import config_flags
import numpy as np
from PIL import Image

from flax_inpaint.inference import api
from flax_inpaint.train import setup
from flax_inpaint.train import steps
from flax_inpaint.train import validation

# The cases of issue 14: a camera photo with a few scratches, a 12 MP photo with one
# sticker, and the training size with the same scratches (the 3x comparison).
DEFAULT_CASES = ('256x256:4x32', '2048x1536:4x32', '4000x3000:1x200')

FLAGS = flags.FLAGS


def define_flags() -> None:
  """This program's flags (its entry point calls this before parsing; never at import)."""
  config_flags.DEFINE_config_file('config', 'configs/full.py', 'The model config.')
  flags.DEFINE_string('workdir', None, 'A trained run (default: random weights).')
  flags.DEFINE_string('model', None, 'A released model (pretrained.names()) instead of --config.')
  flags.DEFINE_list('cases', list(DEFAULT_CASES), 'WIDTHxHEIGHT:COUNTxSIDE cases.')
  flags.DEFINE_integer('repeats', 5, 'Timed repairs per case (median reported).')
  flags.DEFINE_bool('one', False, 'Run the single case in --cases in this process.')


def parse_case(case: str):
  size, holes = case.split(':')
  width, height = (int(v) for v in size.split('x'))
  count, side = (int(v) for v in holes.split('x'))
  return width, height, count, side


def case_inputs(width, height, count, side, seed=0):
  """A smooth photo-like image and `count` square holes spread over it."""
  rng = np.random.default_rng(seed)
  small = rng.integers(0, 256, (12, 16, 3), np.uint8)
  image = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC))
  hole = np.zeros((height, width), bool)
  for i in range(count):  # On a diagonal: far apart, one window each.
    y = (i + 1) * height // (count + 1) - side // 2
    x = (i + 1) * width // (count + 1) - side // 2
    hole[y : y + side, x : x + side] = True
  return image, hole


def build_inpainter(config, workdir, model=None):
  if model:
    return api.Inpainter.from_pretrained(model)
  if workdir:
    return api.Inpainter.from_workdir(workdir, config)
  resolved = validation.resolve(config, mode='inpaint')
  components = setup.build(resolved, training=False)
  variables = steps.init_variables(components.model, resolved.data.image_size)
  return api.Inpainter.from_variables(components, variables)


def _median_seconds(fn, repeats):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _classical_seconds(image, hole, repeats) -> dict:
  """Warm median seconds of each classical method (the push-pull fill compiles once)."""
  times = {}
  for method in api.CLASSICAL_METHODS:
    api.classical_inpaint_array(image, hole, method)
    times[method] = _median_seconds(
        lambda m=method: api.classical_inpaint_array(image, hole, m), repeats
    )
  return times


def run_case(config, workdir, case, repeats, model=None) -> dict:
  inpainter = build_inpainter(config, workdir, model)
  width, height, count, side = parse_case(case)
  image, hole = case_inputs(width, height, count, side)
  start = time.perf_counter()
  inpainter.inpaint(image, hole)
  first_s = time.perf_counter() - start
  ours_s = _median_seconds(lambda: inpainter.inpaint(image, hole), repeats)
  classical = _classical_seconds(image, hole, repeats)
  return {
      'case': case,
      'width': width,
      'height': height,
      'holes': f'{count}x{side}x{side}',
      'strategy': inpainter.options.strategy,
      'model': model or config.model.size,
      'weights': model or workdir or 'random',
      'seconds': round(ours_s, 4),
      'first_call_seconds': round(first_s, 3),
      'opencv_ns_seconds': round(classical['ns'], 4),
      'opencv_telea_seconds': round(classical['telea'], 4),
      'pushpull_seconds': round(classical['pushpull'], 4),
      'patchmatch_seconds': round(classical['patchmatch'], 4),
      'windows': sorted({s[1] for s in inpainter.program_shapes}),
      'peak_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
      'cpu_count': os.cpu_count(),
      'device': jax.devices()[0].device_kind,
      'jax': jax.__version__,
  }


def main(argv):
  del argv
  if FLAGS.one:
    print(
        json.dumps(
            run_case(FLAGS.config, FLAGS.workdir, FLAGS.cases[0], FLAGS.repeats, FLAGS.model)
        ),
        flush=True,
    )
    return
  passed = [a for a in sys.argv[1:] if not a.startswith('--cases')]
  for case in FLAGS.cases:
    out = subprocess.run(
        [sys.executable, '-m', 'flax_inpaint.inference_benchmark', '--one', f'--cases={case}']
        + passed,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
      sys.exit(f'case {case} failed:\n{out.stderr[-3000:]}')
    print(out.stdout.strip().splitlines()[-1], flush=True)
