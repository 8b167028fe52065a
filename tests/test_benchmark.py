"""The benchmark CLI runs on CPU and prints its JSON; the core imports without TF/clu."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

CORE_MODULES = (
    'nn.models',
    'nn.ops',
    'nn.vgg16',
    'weights.vgg_weights',
    'train.losses',
    'data.masks',
    'data.crops',
    'train.steps',
    'train.sharding',
    'train.checkpointing',
    'train.setup',
    'config.config_lib',
    'train.validation',
    'train.loop',
    'inference.api',
    'modes.benchmark',
    'evaluation.evaluate',
    'modes.inpaint',
    'evaluation.metrics',
    'evaluation.baselines',
    'train.samples',
)


def run_python(args, timeout=300):
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  return subprocess.run(
      [sys.executable] + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
  )


def test_core_imports_without_tensorflow_or_clu():
  code = (
      'import sys\n'
      + ''.join(f'import flax_inpaint.{m}\n' for m in CORE_MODULES)
      + 'bad = sorted(m for m in sys.modules if m.split(".")[0] in '
      '("tensorflow", "clu", "tensorflow_datasets"))\n' + 'print(bad)\n'
  )
  result = run_python(['-c', code])
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip() == '[]'


@pytest.mark.parametrize('padded', [False, True])
def test_benchmark_prints_json_on_cpu(padded):
  flags = ['--config.impl.unet_input_channels=8', '--config.impl.vgg_input_channels=8']
  result = run_python(
      ['-m', 'flax_inpaint.benchmark', '--config=configs/test.py', '--steps=2', '--warmup=1']
      + (flags if padded else [])
  )
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  for key in (
      'device',
      'dtype',
      'batch',
      'images_per_s',
      'median_ms_per_step',
      'compile_s',
      'peak_memory_bytes',
      'gflop_per_image',
      'achieved_tflop_per_s',
      'seconds_to_first_step',
      'model_gflop_per_image',
      'model_tflop_per_s',
      'ops',
  ):
    assert key in report, key
  assert report['batch'] == 4 and report['images_per_s'] > 0
  assert report['gflop_per_image'] > 0
  if padded:  # The zero channels are computed, but the model's FLOPs are the plain ones'.
    assert report['gflop_per_image'] > report['model_gflop_per_image']
    assert report['ops'] == 'reshape/subpixel/relu_output/in_8/vgg_in_8'
  else:  # The default sub-pixel form does the plain form's FLOPs (its zero taps included).
    assert report['gflop_per_image'] == report['model_gflop_per_image']
    assert report['ops'] == 'reshape/subpixel/relu_output/in_4/vgg_in_3'


def test_reference_workload_counts_227_gflop_per_image():
  """The conv FLOP count of our reference train step matches issue 6's 227.5 GFLOP (the
  first U-Net conv's input gradient is never computed: 227.4)."""
  code = """
import jax, numpy as np
from flax_inpaint.config import config_lib
from flax_inpaint.modes import benchmark
from flax_inpaint.train import setup as components, steps, validation
config = config_lib.load_sibling('configs/x.py', 'reference')
config.train.batch_size = 4  # One image per virtual device.
config.data.data_dir = '/tmp/unused'
parts = components.build(validation.resolve(config))
state = jax.eval_shape(lambda: steps.init_state(parts.model, parts.tx, 256, 0))
step = steps.make_train_step(parts.model, parts.tx, parts.config, parts.mesh)
jaxpr = jax.make_jaxpr(step)(state, np.zeros((4, 256, 256, 3), np.uint8), parts.vgg_params,
                             jax.random.key(0))
print(benchmark.conv_flops(jaxpr.jaxpr) / 4 / 1e9)
"""
  result = run_python(['-c', code], timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert abs(float(result.stdout.strip().splitlines()[-1]) - 227.4) < 0.1


def test_loop_mode_reports_the_loop_beside_the_step(tmp_path):
  result = run_python(
      [
          '-m',
          'flax_inpaint.benchmark',
          '--config=configs/test.py',
          '--steps=9',
          '--warmup=1',
          '--mode=loop',
          f'--workdir={tmp_path}',
          '--config.train.log_every=4',
          '--config.train.checkpoint_every=4',
      ]
  )
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report['loop_images_per_s'] > 0 and report['loop_timed_steps'] == 4
  assert (tmp_path / 'checkpoints' / '8').is_dir()


def test_the_reference_config_needs_no_dataset():
  from conftest import load_config
  from flax_inpaint.modes import benchmark

  reference = load_config('reference')
  assert reference.data.source == 'album_covers' and reference.data.data_dir is None
  timed = benchmark.timed_config(reference, batch=8)
  assert (timed.data.source, timed.train.batch_size, timed.model.size) == ('samples', 8, 'small')


@pytest.mark.parametrize(
    'args,line',
    [
        (
            ['--config=configs/nope.py'],
            'error: --config=configs/nope.py: no such file (config '
            'files are in configs/, e.g. --config=configs/full.py)',
        ),
        (
            ['--config=configs/test.py', '--batch=6'],
            'error: config.train.batch_size=6 (global) is ' 'not divisible by the 4 devices',
        ),
        (
            ['--config=configs/test.py', '--config.trian.lr=1'],
            'error: --config.trian.lr=1: config '
            'has no field \'trian\' (did you mean "train"?); flax-inpaint MODE --help lists the '
            'fields of each mode',
        ),
    ],
)
def test_benchmark_user_errors_are_one_line_and_exit_2(args, line):
  result = run_python(['-m', 'flax_inpaint.benchmark'] + args)
  assert result.returncode == 2, result.stderr[-3000:]
  assert [l for l in result.stderr.splitlines() if l.startswith('error:')] == [line]
  assert 'Traceback' not in result.stderr
