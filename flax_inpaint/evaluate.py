"""Reproducible evaluation: our model against classical inpainting.

Fixed eval set (first N images of the eval split, or a folder), masks a pure function
of (seed, image index), a manifest of their hashes, metrics on the composite for each
method, and the seed's picture grids (original | masked | ours | Telea).
"""

import hashlib
import json
import pathlib
from typing import Callable, Dict, Optional

import numpy as np

from flax_inpaint import images as images_lib
from flax_inpaint import masks
from flax_inpaint import metrics

METHODS = ('ours', 'telea', 'ns', 'mean_fill', 'masked')
METRIC_NAMES = ('hole_psnr', 'image_psnr', 'ssim', 'hole_mae', 'image_mae')


def eval_masks(num_images, height, width, *, seed, num_patches, patch_size):
  """[N, H, W, 1] float32 masks; mask i depends only on (seed, i)."""
  return np.stack([masks.eval_hole_mask(seed, i, height, width, num_patches=num_patches,
                                        patch_size=patch_size) for i in range(num_images)])


def manifest(eval_images: np.ndarray, hole_masks: np.ndarray, names=None) -> dict:
  """SHA-256 of each image and mask, and of the whole set: runs compare by these."""
  entries = []
  for i, (image, hole) in enumerate(zip(eval_images, hole_masks)):
    entries.append({'index': i, 'name': names[i] if names else str(i),
                    'image_sha256': hashlib.sha256(np.ascontiguousarray(image)).hexdigest(),
                    'mask_sha256': hashlib.sha256(
                        np.ascontiguousarray(hole.astype(np.uint8))).hexdigest()})
  whole = hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()
  return {'num_images': len(entries), 'set_sha256': whole, 'images': entries}


def masked_input(image, hole):
  return image * (1.0 - hole)


def mean_fill(image, hole):
  """Holes filled with the mean colour of the valid pixels."""
  valid = 1.0 - hole
  colour = (image * valid).sum(axis=(0, 1)) / max(valid.sum(), 1.0)
  return image * valid + colour * hole


def _opencv(image, hole, flag):
  import cv2  # pylint: disable=g-import-not-at-top
  image_u8 = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
  mask_u8 = (hole[..., 0] > 0).astype(np.uint8) * 255
  painted = cv2.inpaint(image_u8, mask_u8, 3, flag)
  repaired = painted.astype(np.float32) / 255.0
  return image * (1.0 - hole) + repaired * hole


def telea(image, hole):
  import cv2  # pylint: disable=g-import-not-at-top
  return _opencv(image, hole, cv2.INPAINT_TELEA)


def navier_stokes(image, hole):
  import cv2  # pylint: disable=g-import-not-at-top
  return _opencv(image, hole, cv2.INPAINT_NS)


BASELINES = {'telea': telea, 'ns': navier_stokes, 'mean_fill': mean_fill,
             'masked': masked_input}


def evaluate_methods(eval_images, hole_masks, repairers: Dict[str, Callable]):
  """Metrics per method, averaged over images (PSNR averaged per image).

  Args:
    eval_images: [N, H, W, 3] uint8.
    hole_masks: [N, H, W, 1] float32.
    repairers: name -> f(images float [n,H,W,3], masks) -> composites, batched.

  Returns:
    ({method: {metric: mean}}, {method: [N, H, W, 3] float composites}).
  """
  originals = eval_images.astype(np.float32) / 255.0
  results, outputs = {}, {}
  for name, repair in repairers.items():
    repaired = np.asarray(repair(originals, hole_masks), np.float32)
    rows = [metrics.image_metrics(r, o, h) for r, o, h in zip(repaired, originals, hole_masks)]
    results[name] = {k: float(np.mean([row[k] for row in rows])) for k in METRIC_NAMES}
    outputs[name] = repaired
  return results, outputs


def baseline_repairers():
  return {name: (lambda f: lambda ims, hs: np.stack([f(i, h) for i, h in zip(ims, hs)]))(fn)
          for name, fn in BASELINES.items()}


def report_table(results: dict, num_images: int, title: str = '') -> str:
  lines = [f'# Evaluation{": " + title if title else ""}', '',
           f'{num_images} images; metrics on the composite (holes from the model or '
           'baseline, the original elsewhere). PSNR in dB, averaged per image.', '',
           '| method | hole PSNR | image PSNR | SSIM | hole MAE | image MAE |',
           '|---|---|---|---|---|---|']
  for name in [m for m in METHODS if m in results] + [m for m in results if m not in METHODS]:
    r = results[name]
    lines.append(f"| {name} | {r['hole_psnr']:.2f} | {r['image_psnr']:.2f} | "
                 f"{r['ssim']:.4f} | {r['hole_mae']:.4f} | {r['image_mae']:.4f} |")
  return '\n'.join(lines) + '\n'


def write_outputs(out_dir, results, outputs, eval_images, hole_masks, manifest_dict,
                  *, grid_rows: int = 8, extra: Optional[dict] = None):
  """metrics.json, report.md, manifest.json and grids (original|masked|ours|Telea)."""
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  payload = {**results, '_meta': {'num_images': len(eval_images),
                                  'set_sha256': manifest_dict['set_sha256'], **(extra or {})}}
  (out_dir / 'metrics.json').write_text(json.dumps(payload, indent=2) + '\n')
  (out_dir / 'manifest.json').write_text(json.dumps(manifest_dict, indent=2) + '\n')
  (out_dir / 'report.md').write_text(report_table(results, len(eval_images)))
  originals = eval_images.astype(np.float32) / 255.0
  columns = [c for c in ('ours', 'telea') if c in outputs]
  for start in range(0, min(len(eval_images), 4 * grid_rows), grid_rows):
    rows = [[originals[i], masked_input(originals[i], hole_masks[i])] +
            [outputs[c][i] for c in columns]
            for i in range(start, min(start + grid_rows, len(eval_images)))]
    images_lib.save_png(images_lib.grid(rows), out_dir / f'grid_{start // grid_rows:02d}.png')
