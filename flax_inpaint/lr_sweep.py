"""`--mode=lr_sweep`: the seed's learning-rate search.

Short runs, one per learning rate in `config.sweep.lrs`, on the same data and masks
(same seeds), each in WORKDIR/lr_<lr>/. Writes WORKDIR/lr_sweep.png (loss curves) and
WORKDIR/lr_sweep.md (final losses).
"""

import json
import pathlib

from flax_inpaint import train


def plot(histories, out_path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
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


def run(config, workdir):
  """Trains one run per lr; returns {lr: final loss}."""
  workdir = pathlib.Path(workdir)
  histories = {}
  for lr in config.sweep.lrs:
    run_config = config.copy_and_resolve_references()
    run_config.train.lr = float(lr)
    run_dir = workdir / f'lr_{lr:g}'
    train.train_and_evaluate(run_config, run_dir)
    histories[float(lr)] = train.read_history(run_dir)
  plot(histories, workdir / 'lr_sweep.png')
  final = {lr: rows[-1]['train/loss'] for lr, rows in histories.items() if rows}
  lines = ['| lr | final training loss |', '|---|---|']
  lines += [f'| {lr:g} | {loss:.5f} |' for lr, loss in sorted(final.items())]
  best = min(final, key=final.get)
  lines += ['', f'Lowest final loss: lr {best:g}']
  (workdir / 'lr_sweep.md').write_text('\n'.join(lines) + '\n')
  (workdir / 'lr_sweep.json').write_text(json.dumps({str(k): v for k, v in final.items()}))
  return final
