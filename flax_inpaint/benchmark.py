"""Times the real train step on device-resident data; prints one JSON line.

  python -m flax_inpaint.benchmark --config=configs/reference.py \
      --config.model.dtype=bfloat16 --batch=64 --steps=50 --warmup=5
  python -m flax_inpaint.benchmark --config=configs/test.py --mode=loop

Imports neither TensorFlow nor clu: runs on a bare JAX image. `--mode=loop` runs the
training loop of main.py (`train.run_loop`: host batches, metrics, sample grids,
checkpoints) and reports it beside the bare step.
"""

import json
import os
import statistics
import tempfile
import time

from absl import app
from absl import flags
import jax
import numpy as np
from ml_collections import config_flags

from flax_inpaint import config_validation
from flax_inpaint import losses
from flax_inpaint import models
from flax_inpaint import sharding
from flax_inpaint import steps

FLAGS = flags.FLAGS
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


def _setup(config):
  config_validation.validate(config)
  from flax_inpaint import train  # pylint: disable=g-import-not-at-top
  vgg_params, loss_config = train.load_vgg_params(config.loss)
  mesh = sharding.make_mesh()
  model = models.create_model(config.model)
  tx = steps.make_optimizer(config.train)
  return mesh, model, tx, vgg_params, loss_config


def _device_batches(config, mesh, count=4):
  rng = np.random.default_rng(0)
  size = config.data.image_size
  shape = (config.train.batch_size // jax.process_count(), size, size, 3)
  return [sharding.global_batch(rng.integers(0, 256, shape, np.uint8), mesh)
          for _ in range(count)]


def time_step(config, num_steps, warmup, profile_dir=None):
  """Compile, warm up, then time `num_steps` steps; returns the result dict."""
  mesh, model, tx, vgg_params, loss_config = _setup(config)
  state = steps.create_train_state(model, tx, config.data.image_size, config.train.seed, mesh)
  step = steps.make_train_step(model, tx, loss_config, config.masks, mesh)
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
  plain_loss = {**losses.resolve_loss_config(loss_config), 'vgg_input_channels': 3}
  plain = steps.make_train_step(model.clone(upsample_impl='gather', input_channels=4), tx,
                                plain_loss, config.masks, mesh)
  model_flops = conv_flops(jax.make_jaxpr(plain)(state, batches[0], vgg_params, key).jaxpr)
  batch = config.train.batch_size
  images_per_s = num_steps * batch / elapsed
  loss = float(metrics['loss'])
  if not np.isfinite(loss):
    raise FloatingPointError(f'loss is {loss} after {warmup + 2 * num_steps} steps')
  return {
      'device': jax.devices()[0].device_kind, 'num_devices': jax.device_count(),
      'platform': jax.devices()[0].platform, 'dtype': config.model.dtype,
      'batch': batch, 'image_size': config.data.image_size,
      'model': f'{config.model.size}/{config.model.bottleneck}/{config.model.norm}',
      'ops': (f'{config.model.pool_impl}/{config.model.upsample_impl}/'
              f'relu_{config.model.relu_impl}/in_{config.model.input_channels}/'
              f'vgg_in_{config.loss.vgg_input_channels}'),
      'images_per_s': round(images_per_s, 2),
      'median_ms_per_step': round(1e3 * statistics.median(per_step), 3),
      'compile_s': round(compile_s, 2),
      'seconds_to_first_step': round(to_first_step, 2) if warmup else None,
      'peak_memory_bytes': peak_memory_bytes(),
      'gflop_per_image': round(flops / batch / 1e9, 2),
      'achieved_tflop_per_s': round(flops * num_steps / elapsed / 1e12, 2),
      'model_gflop_per_image': round(model_flops / batch / 1e9, 2),
      'model_tflop_per_s': round(model_flops * num_steps / elapsed / 1e12, 2),
      'final_loss': round(loss, 5), 'jax': jax.__version__,
  }


def time_loop(config, num_steps, warmup, workdir):
  """The training loop of main.py: host batches, metrics, checkpoints (async) on.

  Timed between two log steps (each syncs the host with the device), so compilation
  and the end-of-run work (last checkpoint, loss-curve plot) stay out.
  """
  from flax_inpaint import train  # pylint: disable=g-import-not-at-top
  mesh, _, _, vgg_params, loss_config = _setup(config)
  rng = np.random.default_rng(0)
  size, local = config.data.image_size, config.train.batch_size // jax.process_count()
  host_batches = [rng.integers(0, 256, (local, size, size, 3), np.uint8) for _ in range(4)]
  config = config.copy_and_resolve_references()
  config.train.num_steps = warmup + num_steps
  log_every = config.train.log_every
  first = -(-warmup // log_every) * log_every
  last = (config.train.num_steps - 1) // log_every * log_every
  if last <= first:
    raise ValueError(f'--mode=loop needs two log steps after warmup: raise --steps above '
                     f'2 * config.train.log_every={log_every}')
  stamps = {}
  batches = (host_batches[i % 4] for i in range(10 ** 9))
  train.run_loop(config, workdir, mesh=mesh, train_batches=batches,
                 writer=train.LogOnlyWriter(), sample_images=None, vgg_params=vgg_params,
                 loss_config=loss_config,
                 hooks=[lambda s: stamps.setdefault(s, time.perf_counter())])
  elapsed = stamps[last] - stamps[first]
  return {'loop_images_per_s': round((last - first) * config.train.batch_size / elapsed, 2),
          'loop_timed_steps': last - first,
          'loop_checkpoint_every': config.train.checkpoint_every,
          'loop_log_every': log_every}


def main(argv):
  del argv
  config = FLAGS.config.copy_and_resolve_references()
  if FLAGS.batch:
    config.train.batch_size = FLAGS.batch
  from flax_inpaint import train  # pylint: disable=g-import-not-at-top
  train.setup_compilation_cache(config.compilation_cache_dir)
  result = time_step(config, FLAGS.steps, FLAGS.warmup, FLAGS.profile_dir)
  if FLAGS.mode == 'loop':
    with tempfile.TemporaryDirectory() as tmp:
      loop = time_loop(config, FLAGS.steps, FLAGS.warmup, FLAGS.workdir or tmp)
    result.update(loop)
    result['loop_overhead_pct'] = round(
        100 * (result['images_per_s'] / loop['loop_images_per_s'] - 1), 1)
  print(json.dumps(result), flush=True)


if __name__ == '__main__':
  app.run(main)
