"""`--mode=eval`: the latest checkpoint (or a release) against the classical fills.

The tables are `evaluation.evaluate`'s; this is only the command line's entry.
"""

from flax_inpaint.evaluation import evaluate


def run_mode(mode, config, workdir, flag_values, eval_dir=None):
  """The cli's entry: --mode=eval (`eval_dir`: the tables' folder for a release)."""
  del mode, flag_values
  evaluate.run(config, workdir, eval_dir)
