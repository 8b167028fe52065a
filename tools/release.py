"""Maintainers' tool for a shipped release: a run's learning curve, and the release files.

  # Hole PSNR of every kept checkpoint on the eval set (the model card's curve):
  python tools/release.py curve --workdir=/tmp/release --eval_dir=../shared/data/album-covers-dev/val
  # The latest checkpoint as flax_inpaint/weights/releases/NAME (float16 when it changes the hole
  # PSNR of every kind by less than 0.02 dB, else float32):
  python tools/release.py write --workdir=/tmp/release --name=album-covers \
      --eval_dir=../shared/data/album-covers-dev/val

  # The card's picture, on scikit-image's photos (shippable, unlike the covers):
  python tools/release.py grid --workdir=flax_inpaint/weights/releases/album-covers \
      --output=docs/releases/album-covers/grid.png

Then `python main.py --mode=eval --model=NAME --output=OUT` gives the card's numbers, and
  # Its tables, one per mask kind (hole PSNR, SSIM, LPIPS per method), from eval metrics.json
  # files (several: their methods side by side, when they scored the same images and masks):
  python tools/release.py tables --metrics=OUT/metrics.json[,BASELINES/metrics.json]
  # Per image, the model's LPIPS against a classical fill's (is a small mean margin real?):
  python tools/release.py paired --workdir=flax_inpaint/weights/releases/album-covers \
      --eval_dir=../shared/data/album-covers-dev/val --kinds=boxes --baseline=ns
  # PatchMatch's hole PSNR and LPIPS per patch radius, on the release's eval masks:
  python tools/release.py patchmatch_radius --workdir=album-covers \
      --eval_dir=../shared/data/album-covers-dev/val --num_images=60
"""

import json
import os
import pathlib
import sys
import time

from absl import app
from absl import flags
import jax
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flax_inpaint.config import config_lib
from flax_inpaint.data import images as images_lib
from flax_inpaint.data import masks
from flax_inpaint.evaluation import baselines
from flax_inpaint.evaluation import evaluate
from flax_inpaint.evaluation import metrics
from flax_inpaint.train import checkpointing
from flax_inpaint.train import setup
from flax_inpaint.train import steps
from flax_inpaint.weights import pretrained

FLAGS = flags.FLAGS
flags.DEFINE_string(
    'workdir', None, '`curve`, `write`: the training run; `grid`, `paired`: a run or a release.'
)
flags.DEFINE_string('eval_dir', None, '`curve`, `write`, `paired`: the folder of eval images.')
flags.DEFINE_string('name', pretrained.DEFAULT_RELEASE, '`write`: the release name.')
flags.DEFINE_string(
    'compare',
    None,
    '`grid`: another model (a release name or folder, or a run) for a column before this one;'
    ' PatchMatch replaces push-pull then.',
)
flags.DEFINE_integer(
    'total_steps',
    None,
    "`write`: the steps of every phase that trained the params (the run's own plus its "
    "init_from chain's); default: the checkpoint's step.",
)
flags.DEFINE_list('kinds', ['squares', 'boxes', 'strokes'], 'Mask kinds scored.')
flags.DEFINE_integer('num_images', 200, 'Eval images.')
flags.DEFINE_string(
    'output',
    None,
    '`grid`: the PNG to write; `write`: the folder (default'
    ' flax_inpaint/weights/releases/NAME; elsewhere a candidate that `init_from` and `--model`'
    ' take by its path, not shipped).',
)
flags.DEFINE_list('metrics', [], '`tables`: eval metrics.json files.')
flags.DEFINE_enum(
    'baseline', 'ns', list(baselines.BASELINES), '`paired`: the classical fill to compare with.'
)
flags.DEFINE_list('radii', ['1', '2', '3', '4', '5'], '`patchmatch_radius`: the radii tried.')
flags.DEFINE_integer(
    'crops_before',
    0,
    '`curve`: crops the run had seen before its step 0 (a run that starts from the params of'
    " another adds that run's crops).",
)
flags.DEFINE_integer('every', 1, '`curve`: only the checkpoints of steps that divide by this.')
# Storage in float16 must not move the eval by this much (hole PSNR, dB, any kind).
FLOAT16_TOLERANCE_DB = 0.02


def _setup(source):
  """(the trained model of `source` with --eval_dir as its eval set, the eval images as
  floats, their holes of each kind)."""
  if not FLAGS.eval_dir:
    raise app.UsageError('curve, write and paired need --eval_dir=FOLDER (the eval images)')
  directory = setup.trained_source(source)
  config = config_lib.read_config_json(directory)
  config.eval.dir, config.eval.num_images = FLAGS.eval_dir, FLAGS.num_images
  trained = setup.load_trained(directory, config, mode='eval')
  images, _ = evaluate.load_eval_set(trained.config)
  holes = {kind: evaluate.eval_masks(trained.config, kind, len(images)) for kind in FLAGS.kinds}
  return trained, images.astype(np.float32) / 255.0, holes


def _hole_scores(components, variables, images, holes, lpips=None) -> dict:
  """{kind: mean hole PSNR} of the model with `variables`; with an `evaluate.LpipsScorer`, also
  {kind + '_lpips': mean LPIPS} (None without its weights)."""
  repair = steps.model_repairer(components, variables, components.config.eval.batch_size)
  scores = {}
  for kind, kind_holes in holes.items():
    repaired = repair(images, kind_holes)
    scores[kind] = float(
        np.mean([metrics.psnr(r, o, h) for r, o, h in zip(repaired, images, kind_holes)])
    )
    if lpips is not None:
      values = lpips(repaired, images)
      scores[f'{kind}_lpips'] = None if values is None else float(values.mean())
  return scores


def curve(workdir):
  """One markdown row per kept checkpoint: step, crops seen, hole PSNR and LPIPS per kind."""
  trained, images, holes = _setup(workdir)
  components = trained.components
  lpips = evaluate.LpipsScorer(trained.config)
  manager = checkpointing.make_manager(workdir, read_only=True)
  checkpoint_steps = [s for s in sorted(manager.all_steps()) if s % FLAGS.every == 0]
  manager.close()
  batch = components.config.train.batch_size
  print('| step | crops seen | ' + ' | '.join(f'{k} hole PSNR / LPIPS' for k in FLAGS.kinds) + ' |')
  print('|---|---|' + '---|' * len(FLAGS.kinds))
  rows = []
  for step in checkpoint_steps:
    variables, _ = setup.trained_variables(components, workdir, step)
    scores = _hole_scores(components, variables, images, holes, lpips)
    crops = FLAGS.crops_before + step * batch
    rows.append({'step': step, 'crops_seen': crops, **scores})
    cells = [
        f'{scores[k]:.2f} / '
        + ('n/a' if scores[f'{k}_lpips'] is None else f"{scores[f'{k}_lpips']:.4f}")
        for k in FLAGS.kinds
    ]
    print(f'| {step} | {crops:,} | ' + ' | '.join(cells) + ' |', flush=True)
  (pathlib.Path(workdir) / 'release_curve.json').write_text(json.dumps(rows, indent=1) + '\n')


def write(workdir):
  """The latest checkpoint as flax_inpaint/weights/releases/NAME (or --output), in float16 when
  that is lossless enough (FLOAT16_TOLERANCE_DB)."""
  trained, images, holes = _setup(workdir)
  components, variables, step = trained.components, trained.variables, trained.step
  params = jax.device_get(variables['params'])
  half = jax.tree.map(lambda x: np.asarray(x, np.float16).astype(np.float32), params)
  full_db = _hole_scores(components, variables, images, holes)
  half_db = _hole_scores(components, {'params': half, 'batch_stats': {}}, images, holes)
  change = max(abs(full_db[k] - half_db[k]) for k in FLAGS.kinds)
  storage = 'float16' if change < FLOAT16_TOLERANCE_DB else 'float32'
  print(
      f'hole PSNR float32 {full_db}, float16 {half_db}: largest change {change:.4f} dB '
      f'-> {storage}'
  )
  config = config_lib.read_config_json(workdir)
  # The run's folders as the card's command names them (relative to the repository).
  for section, field in (('data', 'dir'), ('eval', 'dir')):
    if config[section][field]:
      config[section][field] = os.path.relpath(config[section][field], ROOT)
  total = FLAGS.total_steps or step
  folder = pathlib.Path(FLAGS.output) if FLAGS.output else pretrained.RELEASES_DIR / FLAGS.name
  out = pretrained.write(params, step, config, folder, storage, total_steps=total)
  print(f'Wrote {out} (step {step}; {total:,} steps in all)')


def grid(source):
  """original | holes | push-pull | OpenCV NS | the model, one row per photo and mask kind.

  With --compare=OTHER (a release or a run; issue 27's grid): original | holes | PatchMatch |
  OpenCV NS | OTHER | the model.
  """
  trained = setup.load_trained(setup.trained_source(source))
  config = trained.config
  repairers = [steps.model_repairer(trained.components, trained.variables, 1)]
  if FLAGS.compare:
    other = setup.load_trained(setup.trained_source(FLAGS.compare, '--compare'))
    repairers.insert(0, steps.model_repairer(other.components, other.variables, 1))
  classical = baselines.patchmatch if FLAGS.compare else baselines.pushpull
  size = config.data.image_size
  photos = images_lib.sample_photos(size).astype(np.float32) / 255.0
  rows = []
  for index, photo in enumerate(photos[:6]):
    kind = FLAGS.kinds[index % len(FLAGS.kinds)]
    hole = masks.eval_mask(0, index, size, size, config.masks, kind)
    rows.append(
        [
            photo,
            baselines.masked_input(photo, hole),
            classical(photo, hole),
            baselines.navier_stokes(photo, hole),
        ]
        + [repair(photo[None], hole[None])[0] for repair in repairers]
    )
  images_lib.save_png(images_lib.grid(rows), FLAGS.output)
  print(f'Wrote {FLAGS.output}')


def paired(source):
  """Per kind: mean LPIPS of the model and of --baseline on the same images and masks, the
  paired difference's 95% bootstrap interval, and on how many images the model is lower."""
  trained, images, holes = _setup(source)
  config = trained.config
  repair = steps.model_repairer(trained.components, trained.variables, config.eval.batch_size)
  scorer = evaluate.LpipsScorer(config)
  if scorer.linear is None:
    raise app.UsageError(f'paired needs the LPIPS weights: {scorer.reason}')
  baseline = baselines.repairers()[FLAGS.baseline]
  rng = np.random.default_rng(0)
  for kind in FLAGS.kinds:
    ours = scorer(repair(images, holes[kind]), images)
    theirs = scorer(np.asarray(baseline(images, holes[kind]), np.float32), images)
    diff = ours - theirs
    means = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(10_000)]
    low, high = np.percentile(means, [2.5, 97.5])
    print(
        f'{kind}: LPIPS model {ours.mean():.4f}, {FLAGS.baseline} {theirs.mean():.4f}, '
        f'difference {diff.mean():+.4f} (95% bootstrap [{low:+.4f}, {high:+.4f}]); '
        f'the model lower on {(diff < 0).sum()} of {len(diff)} images'
    )


def tables(_):
  """Markdown: per mask kind, hole PSNR / SSIM / LPIPS of every method of the --metrics files."""
  by_kind, meta = {}, None
  for path in FLAGS.metrics:
    if not pathlib.Path(path).is_file():
      raise app.UsageError(f'--metrics: {path} is no file (an eval folder holds metrics.json)')
    metrics_json = json.loads(pathlib.Path(path).read_text())
    # Methods side by side only when they scored the same images with the same masks.
    this = {k: metrics_json['_meta'][k] for k in ('set_sha256', 'eval_seed', 'num_images')}
    if meta is not None and this != meta:
      raise app.UsageError(f'{path}: another eval set or seed than {FLAGS.metrics[0]}')
    meta = this
    for kind, methods in metrics_json['by_mask_kind'].items():
      by_kind.setdefault(kind, {}).update(methods)
  for kind, methods in by_kind.items():
    print(f'\n{kind}:\n\n| method | hole PSNR (dB) | SSIM | LPIPS |\n|---|---|---|---|')
    for method, scores in methods.items():
      lpips = f"{scores['lpips']:.4f}" if scores.get('lpips') is not None else 'n/a'
      print(f"| {method} | {scores['hole_psnr']:.2f} | {scores['ssim']:.4f} | {lpips} |")


def patchmatch_radius(source):
  """Per kind and patch radius (--radii): PatchMatch's mean hole PSNR and LPIPS on the eval
  set (`source`'s masks), and its seconds per image: how baselines.PATCHMATCH_RADIUS was
  chosen."""
  trained, images, holes = _setup(source)
  scorer = evaluate.LpipsScorer(trained.config)
  images_u8 = np.round(images * 255).astype(np.uint8)
  print('| radius | ' + ' | '.join(f'{k} hole PSNR / LPIPS' for k in FLAGS.kinds) + ' | s/image |')
  print('|---|' + '---|' * (len(FLAGS.kinds) + 1))
  for radius in FLAGS.radii:
    cells, start = [], time.perf_counter()
    for kind in FLAGS.kinds:
      kind_holes = holes[kind]
      filled = np.stack(
          [baselines.patchmatch_uint8(u, h, int(radius)) for u, h in zip(images_u8, kind_holes)]
      )
      repaired = images * (1 - kind_holes) + filled.astype(np.float32) / 255.0 * kind_holes
      psnr = np.mean([metrics.psnr(r, o, h) for r, o, h in zip(repaired, images, kind_holes)])
      lpips = scorer(repaired, images)
      cells.append(f'{psnr:.2f} / ' + ('n/a' if lpips is None else f'{lpips.mean():.4f}'))
    per_image = (time.perf_counter() - start) / (len(images) * len(FLAGS.kinds))
    print(f'| {radius} | ' + ' | '.join(cells) + f' | {per_image:.2f} |', flush=True)


def main(argv):
  commands = {
      'curve': curve,
      'write': write,
      'grid': grid,
      'tables': tables,
      'paired': paired,
      'patchmatch_radius': patchmatch_radius,
  }
  if len(argv) != 2 or argv[1] not in commands:
    raise app.UsageError(
        f'usage: tools/release.py {{{",".join(commands)}}} --workdir=W ' '--eval_dir=D'
    )
  if argv[1] != 'tables' and not FLAGS.workdir:
    raise app.UsageError(f'{argv[1]} needs --workdir=DIR')
  commands[argv[1]](FLAGS.workdir)


if __name__ == '__main__':
  app.run(main)
