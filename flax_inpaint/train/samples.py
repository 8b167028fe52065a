"""Sample grids of a training run: a few fixed images repaired as the model learns.

`SampleGrids` is the training loop's `samples` callback: at each call it writes
WORKDIR/samples/step_NNNNNNN.png (original | masked | repaired per row), a TensorBoard
image, and the samples' hole PSNR (samples/hole_psnr).
"""

import pathlib

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from flax_inpaint.data import images as images_lib
from flax_inpaint.data import masks
from flax_inpaint.evaluation import metrics as metrics_lib
from flax_inpaint.train import steps


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


class SampleGrids:
  """The loop's `samples(step, state)` callback for `sample_images` (uint8 [N, H, W, 3])."""

  def __init__(self, components, workdir, writer, sample_images: np.ndarray):
    config = components.config
    self.workdir, self.writer, self.images = workdir, writer, sample_images
    # The training run's base key: in fixed-mask mode the grids show its very holes.
    self.holes = sample_masks(sample_images, config, jax.random.key(config.train.seed))
    self.repair_fn = steps.make_eval_repair_fn(components.model)

  def __call__(self, step: int, state) -> None:
    write_samples(self.workdir, self.writer, step, self.repair_fn, state, self.images, self.holes)
