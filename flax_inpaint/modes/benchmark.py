"""Times the real train step on device-resident data; prints one JSON line.

  python -m flax_inpaint.benchmark --config=configs/reference.py \
      --config.model.dtype=bfloat16 --batch=64 --steps=50 --warmup=5
  python -m flax_inpaint.benchmark --config=configs/test.py --mode=loop

Imports neither TensorFlow nor clu: runs on a bare JAX image, and needs no dataset (the
batches are random and device-resident, whatever `config.data.source` says). `--mode=loop`
runs the training loop of main.py (`loop.run_loop`: host batches, metrics, checkpoints)
and reports it beside the bare step. A user error is one line and exit status 2, as in
main.py.
"""

import dataclasses
import json
import os
import statistics
import tempfile
import time

from absl import flags
import jax
import ml_collections
from ml_collections import config_flags
import numpy as np

from flax_inpaint.train import loop
from flax_inpaint.train import setup
from flax_inpaint.train import sharding
from flax_inpaint.train import steps
from flax_inpaint.train import validation

FLAGS = flags.FLAGS


def define_flags() -> None:
  """This program's flags (its entry point calls this before parsing; never at import)."""
  config_flags.DEFINE_config_file('config', 'configs/reference.py', 'Config to time.')
  flags.DEFINE_integer('batch', None, 'Global batch (default: config.train.batch_size).')
  flags.DEFINE_integer('steps', 20, 'Timed steps.')
  flags.DEFINE_integer('warmup', 3, 'Untimed steps after compilation.')
  flags.DEFINE_enum('mode', 'step', ['step', 'loop'], 'Bare step, or the training loop too.')
  flags.DEFINE_string('workdir', None, '--mode=loop: workdir (default: a temporary one).')
  flags.DEFINE_string('profile_dir', None, 'Also write a jax.profiler trace of 3 steps here.')


def conv_flops(jaxpr) -> float:
  """FLOPs of every convolution in a (closed) jaxpr, sub-jaxprs included (2 per MAC)."""
  total = 0.0
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == 'conv_general_dilated':
      lhs, rhs = (v.aval for v in eqn.invars[:2])
      out = eqn.outvars[0].aval
      rhs_spec = eqn.params['dimension_numbers'].rhs_spec
      in_features = rhs.shape[rhs_spec[1]]
      window = np.prod([rhs.shape[d] for d in rhs_spec[2:]])
      total += 2.0 * np.prod(out.shape) * in_features * window
    for param in eqn.params.values():
      for sub in (param if isinstance(param, (list, tuple)) else [param]):
        if isinstance(sub, jax.extend.core.ClosedJaxpr):
          total += conv_flops(sub.jaxpr)
        elif isinstance(sub, jax.extend.core.Jaxpr):
          total += conv_flops(sub)
  return total


def _seconds_since_process_start() -> float:
  """Wall time since this process started (imports and device start-up included)."""
  with open('/proc/self/stat') as f:
    start_ticks = int(f.read().rsplit(')', 1)[1].split()[19])
  with open('/proc/uptime') as f:
    uptime = float(f.read().split()[0])
  return uptime - start_ticks / os.sysconf('SC_CLK_TCK')


def peak_memory_bytes():
  stats = jax.local_devices()[0].memory_stats() or {}
  return stats.get('peak_bytes_in_use')


def _device_batches(config, mesh, count=4):
  rng = np.random.default_rng(0)
  size = config.data.crop_size or config.data.image_size  # What the step trains on.
  shape = (config.train.batch_size // jax.process_count(), size, size, 3)
  return [sharding.global_batch(rng.integers(0, 256, shape, np.uint8), mesh) for _ in range(count)]


def time_step(components, num_steps, warmup, profile_dir=None):
  """Compile, warm up, then time `num_steps` steps; returns the result dict."""
  config, mesh, model, tx = (components.config, components.mesh, components.model, components.tx)
  vgg_params = components.vgg_params
  state = steps.create_train_state(
      model, tx, config.data.image_size, config.train.seed, mesh, steps.uses_ema(config.train)
  )
  step = steps.make_train_step(model, tx, config, mesh)
  batches = _device_batches(config, mesh)
  key = jax.random.key(0)
  start = time.perf_counter()
  compiled = step.lower(state, batches[0], vgg_params, key).compile()
  compile_s = time.perf_counter() - start
  for i in range(warmup):
    state, metrics = compiled(state, batches[i % len(batches)], vgg_params, key)
    if i == 0:
      jax.block_until_ready(state)
      to_first_step = _seconds_since_process_start()
  jax.block_until_ready(state)
  per_step = []
  for i in range(num_steps):
    start = time.perf_counter()
    state, metrics = compiled(state, batches[i % len(batches)], vgg_params, key)
    jax.block_until_ready(state)
    per_step.append(time.perf_counter() - start)
  # Throughput without a host sync per step, as training runs.
  start = time.perf_counter()
  for i in range(num_steps):
    state, metrics = compiled(state, batches[i % len(batches)], vgg_params, key)
  jax.block_until_ready((state, metrics))
  elapsed = time.perf_counter() - start
  if profile_dir:  # After timing, so tracing never skews the numbers above.
    with jax.profiler.trace(profile_dir, create_perfetto_trace=True):
      for i in range(3):
        state, metrics = compiled(state, batches[i % len(batches)], vgg_params, key)
      jax.block_until_ready((state, metrics))
  # Counted after the timing, so seconds_to_first_step is what main.py would see.
  flops = conv_flops(jax.make_jaxpr(step)(state, batches[0], vgg_params, key).jaxpr)
  # The model's FLOPs as the plain forms compute them (upsampling, then a 3x3 conv; the
  # U-Net on 4 input channels, VGG16 on 3).
  plain_config = config.as_configdict()
  plain_config.impl.vgg_input_channels = 3
  plain = steps.make_train_step(
      model.clone(upsample_impl='gather', input_channels=4),
      tx,
      ml_collections.FrozenConfigDict(plain_config),
      mesh,
  )
  model_flops = conv_flops(jax.make_jaxpr(plain)(state, batches[0], vgg_params, key).jaxpr)
  batch = config.train.batch_size
  images_per_s = num_steps * batch / elapsed
  loss = float(metrics['loss'])
  if not np.isfinite(loss):
    raise FloatingPointError(f'loss is {loss} after {warmup + 2 * num_steps} steps')
  return {
      'device': jax.devices()[0].device_kind,
      'num_devices': jax.device_count(),
      'platform': jax.devices()[0].platform,
      'dtype': config.model.dtype,
      'batch': batch,
      'image_size': config.data.image_size,
      'crop_size': config.data.crop_size,
      'model': f'{config.model.size}/{config.model.bottleneck}/{config.model.norm}',
      'ops': (
          f'{config.impl.pool}/{config.impl.upsample}/relu_{config.impl.relu}/'
          f'in_{config.impl.unet_input_channels}/vgg_in_{config.impl.vgg_input_channels}'
      ),
      'images_per_s': round(images_per_s, 2),
      'median_ms_per_step': round(1e3 * statistics.median(per_step), 3),
      'compile_s': round(compile_s, 2),
      'seconds_to_first_step': round(to_first_step, 2) if warmup else None,
      'peak_memory_bytes': peak_memory_bytes(),
      'gflop_per_image': round(flops / batch / 1e9, 2),
      'achieved_tflop_per_s': round(flops * num_steps / elapsed / 1e12, 2),
      'model_gflop_per_image': round(model_flops / batch / 1e9, 2),
      'model_tflop_per_s': round(model_flops * num_steps / elapsed / 1e12, 2),
      'final_loss': round(loss, 5),
      'jax': jax.__version__,
  }


def time_loop(components, num_steps, warmup, workdir):
  """The training loop of main.py: host batches, metrics, checkpoints (async) on.

  Timed between two log steps (each syncs the host with the device), so compilation
  and the end-of-run work (last checkpoint, loss-curve plot) stay out.
  """
  config = components.config.as_configdict()
  rng = np.random.default_rng(0)
  size = config.data.crop_size or config.data.image_size
  local = config.train.batch_size // jax.process_count()
  host_batches = [rng.integers(0, 256, (local, size, size, 3), np.uint8) for _ in range(4)]
  config.train.num_steps = warmup + num_steps
  log_every = config.train.log_every
  first = -(-warmup // log_every) * log_every
  last = (config.train.num_steps - 1) // log_every * log_every
  if last <= first:
    raise ValueError(
        f'--mode=loop needs two log steps after warmup: raise --steps above '
        f'2 * config.train.log_every={log_every}'
    )
  stamps = {}
  batches = (host_batches[i % 4] for i in range(10**9))
  components = dataclasses.replace(components, config=ml_collections.FrozenConfigDict(config))
  loop.run_loop(
      components,
      setup.initial_state(components, workdir),
      workdir,
      train_batches=batches,
      writer=loop.LogOnlyWriter(),
      hooks=[lambda s: stamps.setdefault(s, time.perf_counter())],
  )
  elapsed = stamps[last] - stamps[first]
  return {
      'loop_images_per_s': round((last - first) * config.train.batch_size / elapsed, 2),
      'loop_timed_steps': last - first,
      'loop_checkpoint_every': config.train.checkpoint_every,
      'loop_log_every': log_every,
  }


def timed_config(config, batch=None) -> ml_collections.FrozenConfigDict:
  """The config as training resolves it (every train field checked), on random data: the
  data source is never read, so a dataset that is not prepared is no error."""
  config = config.copy_and_resolve_references()
  config.data.source = 'samples'
  if batch:
    config.train.batch_size = batch
  return validation.resolve(config)


def main(argv):
  del argv
  components = setup.build(timed_config(FLAGS.config, FLAGS.batch))
  result = time_step(components, FLAGS.steps, FLAGS.warmup, FLAGS.profile_dir)
  if FLAGS.mode == 'loop':
    with tempfile.TemporaryDirectory() as tmp:
      looped = time_loop(components, FLAGS.steps, FLAGS.warmup, FLAGS.workdir or tmp)
    result.update(looped)
    result['loop_overhead_pct'] = round(
        100 * (result['images_per_s'] / looped['loop_images_per_s'] - 1), 1
    )
  print(json.dumps(result), flush=True)
