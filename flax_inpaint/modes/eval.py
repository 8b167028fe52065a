"""`--mode=eval`: a trained run or a release against the classical fills.

The tables are `evaluation.evaluate`'s; this mode loads the model (or none, for
`eval.model=False`) and hands it over as the 'ours' row.
"""

import pathlib

from absl import logging

from flax_inpaint.evaluation import evaluate
from flax_inpaint.train import setup
from flax_inpaint.train import steps
from flax_inpaint.train import validation


def main(config, workdir, flag_values):
  """The cli's entry: --mode=eval of a training run (tables in WORKDIR/eval) or a release
  (tables in --output)."""
  run(config, workdir, None if flag_values.workdir else flag_values.output)


def run(config, workdir, out_dir=None) -> dict:
  """Evaluates the latest checkpoint of `workdir`, a training run or a release (config None:
  its config.json), or only the baselines (`eval.model=False`); returns the metrics written
  to `out_dir`/metrics.json (default WORKDIR/eval)."""
  out_dir = pathlib.Path(out_dir or pathlib.Path(workdir) / 'eval')
  if config is not None and not config.eval.model:
    logging.info('eval.model=False: evaluating the baselines only')
    return evaluate.run(validation.resolve(config, mode='eval'), {}, out_dir)
  trained = setup.load_trained(workdir, config, mode='eval')
  logging.info('Evaluating %s', trained.description)
  ours = steps.model_repairer(trained.components, trained.variables, trained.config.eval.batch_size)
  return evaluate.run(trained.config, {'ours': ours}, out_dir, trained.step)
