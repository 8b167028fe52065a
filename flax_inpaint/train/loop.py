"""The training loop: steps, checkpoints, metrics, samples, resume, stops, divergence.

A library module without clu or TensorFlow: `run_loop` takes the data iterator and the
metric writer, so the train mode (modes/train.py: tf.data and clu) and the benchmark drive the
same loop.

Nothing is lost silently: a loss that is not finite stops the run at the next metrics
fetch, before any checkpoint of a diverged state is written (the last finite one is kept)
and `errors.DivergedError` names the first bad step; SIGTERM/SIGINT save and exit; on several
hosts a SIGTERM to any one process stops all of them at one agreed step (JAX's preemption
sync point).
"""

import json
import pathlib
import signal
import time
from typing import Any, Callable, Iterator, Optional, Sequence, Tuple, Union

from absl import logging
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np

from flax_inpaint import errors
from flax_inpaint.config import config_lib
from flax_inpaint.data import images as images_lib
from flax_inpaint.evaluation import metrics as metrics_lib
from flax_inpaint.train import checkpointing
from flax_inpaint.train import masks
from flax_inpaint.train import setup
from flax_inpaint.train import sharding
from flax_inpaint.train import steps


class StopRequest:
  """SIGTERM/SIGINT set a flag; the loop checkpoints and exits at the next step.

  With several processes SIGTERM is left to JAX's preemption notifier (installed by
  jax.distributed.initialize), which agrees on one step for all of them: a Python handler
  here would replace it.
  """

  def __init__(self):
    self.signal_name = None
    self._previous = {}

  def __enter__(self):
    signals = [signal.SIGINT] + ([signal.SIGTERM] if jax.process_count() == 1 else [])
    for sig in signals:
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


def sample_kinds(config, num: int) -> list:
  """The mask kind of each sample image: the training kind, so that the grids show the holes
  the model learns on; for 'mixed' the kinds with weight, in turn; for 'files' (no key draws
  them) the first eval kind."""
  kind = config.masks.kind
  if kind in masks.EVAL_KINDS:
    return [kind] * num
  if kind == 'mixed':
    weighted = [k for k, w in zip(masks.EVAL_KINDS, config.masks.mix) if w > 0]
    return [weighted[i % len(weighted)] for i in range(num)]
  return [config.eval.mask_kinds[0]] * num


def sample_masks(sample_images: np.ndarray, config, base_key) -> np.ndarray:
  """Fixed masks for the sample grids: in fixed-mask mode (the overfit test) the very holes
  the model trains on, else eval masks of the training kind (`sample_kinds`)."""
  num, height, width, _ = sample_images.shape
  if config.masks.fixed and config.masks.kind in masks.DRAWN_KINDS:
    return np.asarray(masks.sample_masks(base_key, num, height, width, config.masks))
  return np.stack(
      [
          masks.eval_mask(config.eval.seed, i, height, width, config.masks, kind)
          for i, kind in enumerate(sample_kinds(config, num))
      ]
  )


def write_samples(workdir, writer, step, repair_fn, state, sample_images, hole_masks):
  """PNG grid (original | masked | repaired per row), a TensorBoard image, and the
  samples' hole PSNR (samples/hole_psnr)."""
  _, repaired = repair_fn(
      steps.inference_params(state),
      state.batch_stats,
      jnp.asarray(sample_images),
      jnp.asarray(hole_masks),
  )
  repaired = np.asarray(repaired)
  originals = sample_images.astype(np.float32) / 255.0
  hole_psnr = float(
      np.mean([metrics_lib.psnr(r, o, h) for r, o, h in zip(repaired, originals, hole_masks)])
  )
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
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

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


# What `train_batches` yields: uint8 images, or (images, holes) for masks.kind='files'.
LocalBatch = Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]


def _global_batch(local_batch: LocalBatch, mesh) -> Tuple[jax.Array, Optional[jax.Array]]:
  """(images, hole masks or None) sharded over the mesh, from a bare image batch or an
  (images, holes) pair."""
  if isinstance(local_batch, tuple):
    images, holes = local_batch
    return sharding.global_batch(images, mesh), sharding.global_batch(holes, mesh)
  return sharding.global_batch(local_batch, mesh), None


@jax.jit
def _accumulate(summed, step_metrics):
  """Sums the step's metrics into `summed` on the device (min for the first bad step)."""
  return {
      k: (jnp.minimum if k == steps.FIRST_NONFINITE_STEP else jnp.add)(summed[k], v)
      for k, v in step_metrics.items()
  }


def _first_nonfinite_step(flag) -> int:
  """The first step whose loss was not finite, from the fetched (or device) summed flag;
  0 when every step was finite."""
  step = int(jax.device_get(flag))
  return 0 if step == steps.NO_NONFINITE_STEP else step


@jax.jit
def _all_finite(tree) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def _diverged(workdir, first_bad_step, manager) -> errors.DivergedError:
  kept = manager.latest_step()
  kept_text = (
      f'kept the checkpoint of step {kept} in {checkpointing.checkpoint_dir(workdir)}'
      if kept is not None
      else 'no finite checkpoint was saved'
  )
  return errors.DivergedError(
      f'training diverged at step {first_bad_step} (a loss or parameter is not '
      f'finite); {kept_text}: lower --config.train.lr or set '
      '--config.train.grad_clip'
  )


def run_loop(
    components: setup.Components,
    workdir,
    *,
    train_batches: Iterator[LocalBatch],
    writer,
    sample_images: Optional[np.ndarray] = None,
    hooks: Sequence[Callable[[int], Any]] = (),
):
  """Trains to config.train.num_steps, resuming from the latest checkpoint.

  Writes WORKDIR/config.json (the resolved config) first.

  Args:
    components: `components.build(config)` of the resolved config.
    workdir: config.json, checkpoints/, samples/, train_metrics.jsonl go here.
    train_batches: yields this process's uint8 [local_batch, H, W, 3] rows, or
      (those rows, their [local_batch, H, W, 1] hole masks) for masks.kind='files'.
    writer: a clu MetricWriter (write_scalars, write_images, flush).
    sample_images: uint8 images for the sample grids (None: no grids).
    hooks: called with the step at the end of every iteration (progress reports).

  Returns:
    The final TrainState.

  Raises:
    errors.DivergedError: the loss was not finite (no checkpoint of that state is written).
  """
  config, mesh, model, tx = (components.config, components.mesh, components.model, components.tx)
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  config_lib.check_matches_run(config, workdir)
  config_lib.write_config_json(config, workdir)
  size, seed = config.data.image_size, config.train.seed
  init_option = '--config.train.init_from'
  if config.train.init_from and not checkpointing.checkpoint_dir(workdir).is_dir():
    setup.trained_source(config.train.init_from, init_option)  # Fails before saving.
  manager = checkpointing.make_manager(workdir, keep=config.train.keep_checkpoints)
  ema = steps.uses_ema(config.train)
  if manager.latest_step() is not None:
    abstract = steps.abstract_train_state(model, tx, size, seed, mesh, ema)
    state = checkpointing.restore(manager, abstract)
    logging.info(
        'Resuming from the checkpoint of step %d in %s',
        int(state.step),
        checkpointing.checkpoint_dir(workdir),
    )
  else:
    init_params = None
    if config.train.init_from:
      init_params = setup.load_trained(components, config.train.init_from, option=init_option)[0][
          'params'
      ]
      logging.info('Starting from the params of %s', config.train.init_from)
    state = steps.create_train_state(model, tx, size, seed, mesh, ema, init_params)
    logging.info('No checkpoint in %s: starting from step 0', checkpointing.checkpoint_dir(workdir))
  train_step = steps.make_train_step(model, tx, config, mesh)
  repair_fn = steps.make_eval_repair_fn(model)
  base_key = jax.random.key(seed)
  if sample_images is not None:
    sample_holes = sample_masks(sample_images, config, base_key)
    if int(state.step) == 0:  # The first evaluation: the untrained model.
      write_samples(workdir, writer, 0, repair_fn, state, sample_images, sample_holes)
  history = workdir / HISTORY_FILE
  step = int(state.step)
  if history.exists() and jax.process_index() == 0:
    # Lines logged after the checkpoint we resume from (a killed run) are replayed.
    history.write_text(
        ''.join(json.dumps(row) + '\n' for row in read_history(workdir) if row['step'] <= step)
    )
  num_steps, train_config = config.train.num_steps, config.train
  summed, count, last_log = None, 0, time.perf_counter()
  try:
    with StopRequest() as stop:
      while step < num_steps:
        images, hole_mask = _global_batch(next(train_batches), mesh)
        state, step_metrics = train_step(state, images, components.vgg_params, base_key, hole_mask)
        step += 1
        # Summed on the device: no host sync until the next log line or checkpoint.
        summed = step_metrics if summed is None else _accumulate(summed, step_metrics)
        count += 1
        # Read the flag once: a signal between two reads would exit without the save.
        # Every process reaches the preemption sync point at the same step (False on one).
        stopping = stop.signal_name or (
            'SIGTERM' if multihost_utils.reached_preemption_sync_point(step) else None
        )
        last = step == num_steps or stopping is not None
        log_now = step % train_config.log_every == 0 or last
        save_now = step % train_config.checkpoint_every == 0 or last
        if log_now:
          fetched = jax.device_get(summed)
          first_bad = _first_nonfinite_step(fetched.pop(steps.FIRST_NONFINITE_STEP))
          if first_bad:
            raise _diverged(workdir, first_bad, manager)
          scalars = {f'train/{k}': float(v) / count for k, v in fetched.items()}
          now = time.perf_counter()
          scalars['train/steps_per_sec'] = count / (now - last_log)
          writer.write_scalars(step, scalars)
          if jax.process_index() == 0:
            with history.open('a') as f:
              f.write(json.dumps({'step': step, **scalars}) + '\n')
          summed, count, last_log = None, 0, now
        elif save_now:  # Between log steps: fetch only the flag.
          first_bad = _first_nonfinite_step(summed[steps.FIRST_NONFINITE_STEP])
          if first_bad:
            raise _diverged(workdir, first_bad, manager)
        if sample_images is not None and (step % train_config.sample_every == 0 or last):
          write_samples(workdir, writer, step, repair_fn, state, sample_images, sample_holes)
        if save_now:
          # A finite loss can still leave non-finite params after the update: never save them.
          if not bool(_all_finite(state.params)):
            raise _diverged(workdir, step, manager)
          checkpointing.save(manager, step, state)
        for hook in hooks:
          hook(step)
        if stopping is not None:
          logging.warning('%s received: saved the checkpoint of step %d, exiting.', stopping, step)
          break
  finally:
    manager.wait_until_finished()  # A diverged run still completes its finite saves.
    manager.close()
    writer.flush()
  if history.exists() and jax.process_index() == 0:
    plot_loss_curves(workdir, workdir / 'loss_curves.png')
  return state
