"""The training loop: steps, metrics, checkpoints, stops, divergence. It only loops.

A library module without clu or TensorFlow: `run_loop` takes the state to start from
(`setup.initial_state`: restored, init_from or fresh), the data iterator, the metric writer
and the sample-grid callback, so the train mode (modes/train.py: tf.data and clu) and the
benchmark drive the same loop.

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
from flax_inpaint.train import checkpointing
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
    state: steps.TrainState,
    workdir,
    *,
    train_batches: Iterator[LocalBatch],
    writer,
    samples: Optional[Callable[[int, steps.TrainState], Any]] = None,
    hooks: Sequence[Callable[[int], Any]] = (),
) -> steps.TrainState:
  """Trains `state` to config.train.num_steps: steps, metrics, checkpoints, stops.

  Args:
    components: `setup.build(config)` of the resolved config.
    state: where the run starts (`setup.initial_state`: restored, init_from or fresh).
    workdir: checkpoints/, train_metrics.jsonl and loss_curves.png go here.
    train_batches: yields this process's uint8 [local_batch, H, W, 3] rows, or
      (those rows, their [local_batch, H, W, 1] hole masks) for masks.kind='files'.
    writer: a clu MetricWriter (write_scalars, write_images, flush).
    samples: called with (step, state) every config.train.sample_every steps, at the last
      step, and at step 0 of a fresh run (None: no sample grids).
    hooks: called with the step at the end of every iteration (progress reports).

  Returns:
    The final TrainState.

  Raises:
    errors.DivergedError: the loss was not finite (no checkpoint of that state is written).
  """
  config, mesh = components.config, components.mesh
  workdir = pathlib.Path(workdir)
  manager = checkpointing.make_manager(workdir, keep=config.train.keep_checkpoints)
  train_step = steps.make_train_step(
      components.model,
      components.tx,
      config,
      mesh,
      discriminator=components.discriminator,
      disc_tx=components.disc_tx,
  )
  base_key = jax.random.key(config.train.seed)
  step = int(state.step)
  if samples is not None and step == 0:  # The first evaluation: the untrained model.
    samples(0, state)
  history = workdir / HISTORY_FILE
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
        if samples is not None and (step % train_config.sample_every == 0 or last):
          samples(step, state)
        if save_now:
          # A finite loss can still leave non-finite params after the update: never save them.
          if not bool(_all_finite((state.params, state.disc_params))):
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
  logging.info(
      'Training ended at step %d: checkpoint in %s, metrics in %s, loss curves in %s',
      step,
      checkpointing.checkpoint_dir(workdir),
      history,
      workdir / 'loss_curves.png',
  )
  return state
