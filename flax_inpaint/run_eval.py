"""`--mode=eval`: restore the latest checkpoint, repair the fixed eval set, compare.

Writes WORKDIR/eval/{metrics.json, report.md, manifest.json, grid_*.png}.
"""

import pathlib

from absl import logging
import jax
import numpy as np

from flax_inpaint import checkpointing
from flax_inpaint import config_validation
from flax_inpaint import evaluate
from flax_inpaint import images as images_lib
from flax_inpaint import models
from flax_inpaint import sharding
from flax_inpaint import steps


def load_eval_set(config):
  """(uint8 [N, s, s, 3], names): eval.dir's first N decodable images (no TF), or the
  first N of the eval split of data.source."""
  num, size = config.eval.num_images, config.data.image_size
  if not config.eval.dir:
    from flax_inpaint import input_pipeline  # pylint: disable=g-import-not-at-top
    return input_pipeline.eval_images(config, num)
  arrays, names, skipped = [], [], 0
  for path in images_lib.list_image_files(config.eval.dir):
    if len(arrays) == num:
      break
    try:
      arrays.append(images_lib.load(path, size=size, fit=config.data.fit,
                                    min_size=config.data.min_size))
      names.append(path.name)
    except images_lib.BadImageError as e:
      skipped += 1
      logging.warning('Skipping eval file %s', e)
  if not arrays:
    raise FileNotFoundError(f'config.eval.dir={config.eval.dir}: no decodable images')
  if skipped:
    logging.warning('Skipped %d undecodable file(s) in %s', skipped, config.eval.dir)
  return np.stack(arrays), names


def restore_model(config, workdir):
  """(model, params, batch_stats, step) of the latest checkpoint in workdir."""
  model = models.create_model(config.model)
  tx = steps.make_optimizer(config.train)
  abstract = steps.abstract_train_state(model, tx, config.data.image_size,
                                        config.train.seed, sharding.make_mesh())
  manager = checkpointing.make_manager(workdir, read_only=True)
  try:
    params, batch_stats, step = checkpointing.restore_weights(
        manager, abstract.params, abstract.batch_stats)
  finally:
    manager.close()
  return model, params, batch_stats, step


def model_repairer(model, params, batch_stats, batch_size):
  """f(float images, masks) -> composites, in batches of `batch_size`."""
  repair = steps.make_repair_fn(model)

  def run(images, hole_masks):
    outputs = []
    for start in range(0, len(images), batch_size):
      _, comp = repair(params, batch_stats, images[start:start + batch_size],
                       hole_masks[start:start + batch_size])
      outputs.append(np.asarray(comp))
    return np.concatenate(outputs)

  return run


def run(config, workdir, out_dir=None):
  """Evaluates the latest checkpoint of `workdir`; returns the metrics dict."""
  config_validation.validate(config, mode='eval')
  out_dir = pathlib.Path(out_dir or pathlib.Path(workdir) / 'eval')
  model, params, batch_stats, step = restore_model(config, workdir)
  logging.info('Evaluating the checkpoint of step %d', step)
  eval_images, names = load_eval_set(config)
  size = config.data.image_size
  hole_masks = evaluate.eval_masks(len(eval_images), size, size, seed=config.eval.seed,
                                   num_patches=config.masks.num_patches,
                                   patch_size=config.masks.patch_size)
  repairers = {'ours': model_repairer(model, params, batch_stats, config.eval.batch_size)}
  if config.eval.baselines:
    repairers.update(evaluate.baseline_repairers())
  results, outputs = evaluate.evaluate_methods(eval_images, hole_masks, repairers)
  manifest = evaluate.manifest(eval_images, hole_masks, names)
  if jax.process_index() == 0:
    evaluate.write_outputs(out_dir, results, outputs, eval_images, hole_masks, manifest,
                           extra={'step': step, 'eval_seed': config.eval.seed,
                                  'num_patches': config.masks.num_patches,
                                  'patch_size': config.masks.patch_size})
    logging.info('Wrote %s:\n%s', out_dir / 'metrics.json',
                 (out_dir / 'report.md').read_text())
  return results
