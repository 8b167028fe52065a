"""The training loop: data, checkpoints, metrics, samples, resume, signals.

`train_and_evaluate(config, workdir)` is what main.py runs. It is the only module that
imports clu (and, through the input pipeline, TensorFlow); `run_loop` takes the data
iterator and the metric writer, so benchmarks can drive it without either.
"""

import json
import pathlib
import signal
import time
from typing import Any, Callable, Iterator, Optional, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from flax_inpaint import checkpointing
from flax_inpaint import config_validation
from flax_inpaint import images as images_lib
from flax_inpaint import losses
from flax_inpaint import masks
from flax_inpaint import metrics as metrics_lib
from flax_inpaint import models
from flax_inpaint import sharding
from flax_inpaint import steps
from flax_inpaint import vgg


class StopRequest:
  """SIGTERM/SIGINT set a flag; the loop checkpoints and exits at the next step."""

  def __init__(self):
    self.signal_name = None
    self._previous = {}

  def __enter__(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, _):
    self.signal_name = signal.Signals(signum).name

  def __exit__(self, *_):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


class LogOnlyWriter:
  """A metric writer that only logs: for drivers without clu (clu imports TensorFlow)."""

  def write_scalars(self, step, scalars):
    logging.info('step %d: %s', step, {k: round(float(v), 5) for k, v in scalars.items()})

  def write_images(self, step, images):
    del step, images

  def flush(self):
    pass


def load_vgg_params(loss_config):
  """VGG params for the loss config, or None when no VGG term is used.

  Returns (params or None, loss_config with the perceptual term off when weights are
  missing and `require_vgg` is False).
  """
  resolved = losses.resolve_loss_config(loss_config)
  if not (resolved['perceptual_weight'] or resolved['style_weight']):
    return None, loss_config
  if loss_config.vgg_weights == 'random':
    logging.warning('loss.vgg_weights=random: a RANDOM VGG16 (tests and benchmarks only).')
    return vgg.init_random_params(), loss_config
  path = vgg.resolve_weights_path(loss_config.vgg_weights)
  if not path.is_file() and not loss_config.require_vgg:
    logging.warning('No VGG16 weights at %s: training WITHOUT the perceptual/style terms. '
                    'Run `python -m flax_inpaint.vgg fetch` to add them.', path)
    loss_config = loss_config.copy_and_resolve_references()
    loss_config.perceptual_weight = 0.0
    loss_config.style_weight = 0.0
    loss_config.preset = ''
    return None, loss_config
  return vgg.load_vgg16(path), loss_config


def sample_batch(sample_images: np.ndarray, mask_config, seed: int, base_key=None):
  """Fixed images and masks for the sample grids: eval masks, or in fixed-mask mode
  (the overfit test) the very holes the model trains on."""
  num, height, width, _ = sample_images.shape
  if mask_config.fixed and base_key is not None:
    hole_masks = masks.sample_hole_masks(base_key, num, height, width,
                                         num_patches=mask_config.num_patches,
                                         patch_size=mask_config.patch_size)
    return sample_images, np.asarray(hole_masks)
  hole_masks = np.stack([masks.eval_hole_mask(seed, i, height, width,
                                              num_patches=mask_config.num_patches,
                                              patch_size=mask_config.patch_size)
                         for i in range(len(sample_images))])
  return sample_images, hole_masks


def write_samples(workdir, writer, step, repair_fn, state, sample_images, hole_masks):
  """PNG grid (original | masked | repaired per row), a TensorBoard image, and the
  samples' hole PSNR (samples/hole_psnr)."""
  _, repaired = repair_fn(state.params, state.batch_stats, jnp.asarray(sample_images),
                          jnp.asarray(hole_masks))
  repaired = np.asarray(repaired)
  originals = sample_images.astype(np.float32) / 255.0
  hole_psnr = float(np.mean([metrics_lib.psnr(r, o, h)
                             for r, o, h in zip(repaired, originals, hole_masks)]))
  writer.write_scalars(step, {'samples/hole_psnr': hole_psnr})
  logging.info('Samples at step %d: hole PSNR %.2f dB', step, hole_psnr)
  rows = [[o, o * (1 - h), r] for o, h, r in zip(originals, hole_masks, repaired)]
  grid = images_lib.grid(rows)
  if jax.process_index() == 0:
    images_lib.save_png(grid, pathlib.Path(workdir) / 'samples' / f'step_{step:07d}.png')
  writer.write_images(step, {'samples': grid[None]})


HISTORY_FILE = 'train_metrics.jsonl'


def read_history(workdir) -> list:
  """The logged scalars of a run (WORKDIR/train_metrics.jsonl), one dict per log step."""
  path = pathlib.Path(workdir) / HISTORY_FILE
  return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def plot_loss_curves(workdir, out_path):
  """One panel per logged term against the step, from the run's history."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  rows = read_history(workdir)
  if not rows:
    return
  terms = [k for k in rows[-1] if k.startswith('train/') and k != 'train/grad_norm']
  fig, axes = plt.subplots(1, len(terms), figsize=(4 * len(terms), 3.2), squeeze=False)
  for ax, term in zip(axes[0], terms):
    points = [(r['step'], r[term]) for r in rows if term in r]
    ax.plot(*zip(*points))
    ax.set_title(term.removeprefix('train/'))
    ax.set_xlabel('step')
    ax.set_yscale('log')
    ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(out_path, dpi=100)
  plt.close(fig)


def run_loop(config, workdir, *, mesh, train_batches: Iterator[np.ndarray], writer,
             sample_images: Optional[np.ndarray] = None, vgg_params=None, loss_config=None,
             hooks: Sequence[Callable[[int], Any]] = ()):
  """Trains to config.train.num_steps, resuming from the latest checkpoint.

  Args:
    config: the full config.
    workdir: checkpoints/, samples/, train_metrics.jsonl and event files go here.
    mesh: the device mesh.
    train_batches: yields this process's uint8 [local_batch, H, W, 3] rows.
    writer: a clu MetricWriter (write_scalars, write_images, flush).
    sample_images: uint8 images for the sample grids (None: no grids).
    vgg_params: frozen VGG params (None when no VGG term).
    loss_config: the loss config to train with (default config.loss).
    hooks: called with the step at the end of every iteration (progress reports).

  Returns:
    The final TrainState.
  """
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  loss_config = loss_config or config.loss
  model = models.create_model(config.model)
  tx = steps.make_optimizer(config.train)
  size, seed = config.data.image_size, config.train.seed
  manager = checkpointing.make_manager(workdir, keep=config.train.keep_checkpoints)
  if manager.latest_step() is not None:
    abstract = steps.abstract_train_state(model, tx, size, seed, mesh)
    state = checkpointing.restore(manager, abstract)
    logging.info('Resuming from the checkpoint of step %d in %s', int(state.step),
                 checkpointing.checkpoint_dir(workdir))
  else:
    state = steps.create_train_state(model, tx, size, seed, mesh)
    logging.info('No checkpoint in %s: starting from step 0',
                 checkpointing.checkpoint_dir(workdir))
  train_step = steps.make_train_step(model, tx, loss_config, config.masks, mesh)
  repair_fn = steps.make_repair_fn(model)
  base_key = jax.random.key(seed)
  if sample_images is not None:
    sample_images, sample_masks = sample_batch(sample_images, config.masks, config.eval.seed,
                                               base_key)
    if int(state.step) == 0:  # The first evaluation: the untrained model.
      write_samples(workdir, writer, 0, repair_fn, state, sample_images, sample_masks)
  history = workdir / HISTORY_FILE
  step = int(state.step)
  if history.exists() and jax.process_index() == 0:
    # Lines logged after the checkpoint we resume from (a killed run) are replayed.
    history.write_text(''.join(json.dumps(row) + '\n' for row in read_history(workdir)
                               if row['step'] <= step))
  num_steps = config.train.num_steps
  summed, count, last_log = None, 0, time.perf_counter()
  with StopRequest() as stop:
    while step < num_steps:
      batch = sharding.global_batch(next(train_batches), mesh)
      state, step_metrics = train_step(state, batch, vgg_params, base_key)
      step += 1
      # Summed on the device: no host sync until the next log line.
      summed = step_metrics if summed is None else jax.tree.map(jnp.add, summed, step_metrics)
      count += 1
      # Read the flag once: a signal between two reads would exit without the save.
      stopping = stop.signal_name
      last = step == num_steps or stopping is not None
      if step % config.train.log_every == 0 or last:
        scalars = {f'train/{k}': float(v) / count for k, v in jax.device_get(summed).items()}
        now = time.perf_counter()
        scalars['train/steps_per_sec'] = count / (now - last_log)
        writer.write_scalars(step, scalars)
        if jax.process_index() == 0:
          with history.open('a') as f:
            f.write(json.dumps({'step': step, **scalars}) + '\n')
        summed, count, last_log = None, 0, now
      if sample_images is not None and (step % config.train.sample_every == 0 or last):
        write_samples(workdir, writer, step, repair_fn, state, sample_images, sample_masks)
      if step % config.train.checkpoint_every == 0 or last:
        checkpointing.save(manager, step, state)
      for hook in hooks:
        hook(step)
      if stopping is not None:
        logging.warning('%s received: saved the checkpoint of step %d, exiting.',
                        stopping, step)
        break
  manager.wait_until_finished()
  manager.close()
  writer.flush()
  if history.exists() and jax.process_index() == 0:
    plot_loss_curves(workdir, workdir / 'loss_curves.png')
  return state


def setup_compilation_cache(cache_dir: str):
  if cache_dir:
    path = pathlib.Path(cache_dir).expanduser()
    jax.config.update('jax_compilation_cache_dir', str(path))
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
    jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)


def _flat_hparams(tree, prefix=''):
  """{'train': {'lr': 1e-3}} -> {'train.lr': 1e-3}; non-scalars as strings."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flat_hparams(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value if isinstance(value, (int, float, str, bool)) else str(value)
  return flat


def train_and_evaluate(config, workdir):
  """Trains the config's model in `workdir` (resuming if it has checkpoints)."""
  config_validation.validate(config)
  from clu import metric_writers  # pylint: disable=g-import-not-at-top
  from clu import periodic_actions  # pylint: disable=g-import-not-at-top
  from flax_inpaint import input_pipeline  # pylint: disable=g-import-not-at-top
  setup_compilation_cache(config.compilation_cache_dir)
  vgg_params, loss_config = load_vgg_params(config.loss)
  mesh = sharding.make_mesh()
  train_batches = input_pipeline.train_batches(config)
  sample_images = input_pipeline.eval_images(config, config.train.num_sample_images)[0]
  writer = metric_writers.create_default_writer(
      workdir, just_logging=jax.process_index() > 0, asynchronous=True)
  writer.write_hparams(_flat_hparams(config.to_dict()))
  report = periodic_actions.ReportProgress(num_train_steps=config.train.num_steps,
                                           writer=writer, every_secs=30)
  hooks = [report]
  try:
    return run_loop(config, workdir, mesh=mesh, train_batches=iter(train_batches),
                    writer=writer, sample_images=sample_images, vgg_params=vgg_params,
                    loss_config=loss_config, hooks=hooks)
  finally:
    writer.close()
