"""`--mode=train` and `--mode=lr_sweep`: tf.data batches and clu writers around the loop.

The only module that imports clu. `train_and_evaluate(config, workdir)` reads top to
bottom: resolve the config, open the data, build the setup, build or restore the state, run
the loop, each one call; `lr_sweep` runs it once per learning rate and never picks a rate
whose run diverged.
"""

import json
import pathlib

from absl import logging
from clu import metric_writers
from clu import periodic_actions
import jax

from flax_inpaint import errors
from flax_inpaint.data import images
from flax_inpaint.data import pipeline
from flax_inpaint.train import loop
from flax_inpaint.train import samples
from flax_inpaint.train import setup
from flax_inpaint.train import validation


def _flat_hparams(tree, prefix=''):
  """{'train': {'lr': 1e-3}} -> {'train.lr': 1e-3}; non-scalars as strings."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flat_hparams(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value if isinstance(value, (int, float, str, bool)) else str(value)
  return flat


class _SkippedFilesReport:
  """A loop hook: logs the running total of skipped input files when it grows."""

  def __init__(self, skipped, writer, every: int, scalar: str = 'data/skipped_files'):
    self.skipped, self.writer, self.every, self.reported = skipped, writer, every, 0
    self.scalar = scalar

  def __call__(self, step):
    if step % self.every == 0 and self.skipped.count > self.reported:
      self.reported = self.skipped.count
      logging.warning('%s', self.skipped.summary())
      self.writer.write_scalars(step, {self.scalar: self.skipped.count})


def main(config, workdir, flag_values):
  """The cli's entry: --mode=train or --mode=lr_sweep in --workdir."""
  (lr_sweep if flag_values.mode == 'lr_sweep' else train_and_evaluate)(config, workdir)


def _progress_hooks(config, writer, skipped, mask_skipped) -> list:
  """Progress reports every 30 s, and running totals of skipped files when they grow."""
  hooks = [
      periodic_actions.ReportProgress(
          num_train_steps=config.train.num_steps, writer=writer, every_secs=30
      ),
      _SkippedFilesReport(skipped, writer, config.train.log_every),
  ]
  if config.masks.kind == 'files':
    hooks.append(
        _SkippedFilesReport(
            mask_skipped, writer, config.train.log_every, scalar='data/skipped_mask_files'
        )
    )
  return hooks


def train_and_evaluate(config, workdir):
  """Trains the config's model in `workdir` (resuming if it has checkpoints)."""
  config = validation.resolve(config)

  # The data first: a folder without images or masks is one line before anything compiles.
  skipped = images.SkipCounter(config.data.source)
  mask_skipped = images.SkipCounter('masks.dir')
  train_batches = pipeline.train_batches(config, skipped=skipped, mask_skipped=mask_skipped)
  sample_images = pipeline.eval_images(config, config.train.num_sample_images)[0]

  components = setup.build(config)
  state = setup.initial_state(components, workdir)

  writer = metric_writers.create_default_writer(
      workdir, just_logging=jax.process_index() > 0, asynchronous=True
  )
  # The values the run really uses (config.json holds the same).
  writer.write_hparams(_flat_hparams(config.to_dict()))
  try:
    state = loop.run_loop(
        components,
        state,
        workdir,
        train_batches=iter(train_batches),
        writer=writer,
        samples=samples.SampleGrids(components, workdir, writer, sample_images),
        hooks=_progress_hooks(config, writer, skipped, mask_skipped),
    )
  finally:
    writer.close()
  for counter in (skipped, mask_skipped):
    if counter.count:
      logging.warning('%s', counter.summary())
  return state


def _plot_sweep(histories, out_path):
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6, 4))
  for lr, rows in histories.items():
    ax.plot([r['step'] for r in rows], [r['train/loss'] for r in rows], label=f'lr {lr:g}')
  ax.set_xlabel('step')
  ax.set_ylabel('training loss')
  ax.set_yscale('log')
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(out_path, dpi=100)
  plt.close(fig)


def lr_sweep(config, workdir):
  """The seed's learning-rate search: one short run per rate in `config.sweep.lrs`, in
  WORKDIR/lr_<lr>/, same data and masks. Writes lr_sweep.{png,md,json}.

  Returns:
    {lr: final training loss, or None for a run that diverged}.
  """
  workdir = pathlib.Path(workdir)
  histories, final = {}, {}
  for lr in config.sweep.lrs:
    run_config = config.copy_and_resolve_references()
    run_config.train.lr = float(lr)
    run_dir = workdir / f'lr_{lr:g}'
    try:
      train_and_evaluate(run_config, run_dir)
      rows = loop.read_history(run_dir)
      final[float(lr)] = rows[-1]['train/loss'] if rows else None
    except errors.DivergedError as e:
      logging.warning('lr %g: %s', lr, e)
      final[float(lr)] = None
    histories[float(lr)] = loop.read_history(run_dir)
  _plot_sweep(histories, workdir / 'lr_sweep.png')
  lines = ['| lr | final training loss |', '|---|---|']
  lines += [
      f'| {lr:g} | {"diverged" if loss is None else f"{loss:.5f}"} |'
      for lr, loss in sorted(final.items())
  ]
  finite = {lr: loss for lr, loss in final.items() if loss is not None}
  if finite:
    best = min(finite, key=finite.get)
    lines += ['', f'Lowest final loss: lr {best:g} (diverged rates are never picked)']
  else:
    lines += ['', 'Every rate diverged: no rate is picked.']
  (workdir / 'lr_sweep.md').write_text('\n'.join(lines) + '\n')
  (workdir / 'lr_sweep.json').write_text(json.dumps({str(k): v for k, v in final.items()}))
  return final
