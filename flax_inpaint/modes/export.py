"""`--mode=export`: a trained model as one self-contained file for inference anywhere.

  python main.py --mode=export --workdir=W --output=model.fipx [--overwrite]
  then: Inpainter.from_export('model.fipx')   # jax and numpy only

Writes jax.export's StableHLO of the predict function, polymorphic in the batch and in
the window's height and width and lowered for CPU and CUDA, the params, and how the run
cuts images into windows (`config.inpaint`: strategy, margin, window sides), so the export
repairs exactly as the workdir does (inference/export_format.py holds the layout). Like inpaint, it never
replaces an existing file without --overwrite and never creates folders.
"""

import dataclasses
import pathlib

from absl import logging
import jax
import jax.numpy as jnp

from flax_inpaint import errors
from flax_inpaint.inference import api
from flax_inpaint.inference import export_format
from flax_inpaint.nn import models
from flax_inpaint.train import setup
from flax_inpaint.train import steps

PLATFORMS = ('cpu', 'cuda')


def export_program(model, variables, multiple: int, platforms=PLATFORMS):
  """(serialized jax.export program taking (param leaves, images, holes), param leaves).

  The program takes any batch and any window height and width that are multiples of
  `multiple`: the strategies' windows (buckets, larger 'crop' windows, 'full' images).
  """
  leaves, treedef = jax.tree.flatten(variables)

  def predict(param_leaves, images, holes):
    restored = jax.tree.unflatten(treedef, param_leaves)
    return steps.make_uint8_predict_fn(model)(restored, images, holes)

  specs = [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in leaves]
  batch, height, width = jax.export.symbolic_shape(f'batch, {multiple}*h, {multiple}*w')
  images = jax.ShapeDtypeStruct((batch, height, width, 3), jnp.uint8)
  holes = jax.ShapeDtypeStruct((batch, height, width), jnp.bool_)
  program = jax.export.export(jax.jit(predict), platforms=platforms)(specs, images, holes)
  return program.serialize(), leaves


def _meta(config, options: api.InferenceOptions, step: int) -> dict:
  options = dataclasses.asdict(options)
  return {
      **{key: options[key] for key in export_format.OPTION_KEYS},
      'bucket_scales': list(options['bucket_scales']),
      'step': step,
      'platforms': list(PLATFORMS),
      'model': dict(config.model),
      'jax': jax.__version__,
  }


def main(config, workdir, flag_values):
  """The cli's entry: --mode=export --output=FILE [--overwrite]."""
  if not flag_values.output:
    raise errors.UsageError('--mode=export needs --output=FILE')
  export(config, workdir, flag_values.output, overwrite=flag_values.overwrite)


def export(config, workdir, output, *, overwrite: bool = False) -> pathlib.Path:
  """Exports the latest checkpoint of `workdir` (a run or a release) to `output`
  (atomically); returns the path.

  Raises:
    errors.ExportError: `output` exists (unless overwrite) or its folder does not; the
      model has a coarse fill (not exportable yet).
  """
  output = export_format.check_output(output, overwrite=overwrite)
  trained = setup.load_trained(workdir, config, mode='export')
  config, step = trained.config, trained.step
  if config.model.coarse_fill != 'none':
    # The push-pull pyramid's depth follows the window's size, which the shape-polymorphic
    # program does not know: it cannot be lowered for every window at once yet.
    raise errors.ExportError(
        f'--mode=export: a model with model.coarse_fill={config.model.coarse_fill!r} (such as '
        'the released album-covers model) cannot be exported yet; use it from Python '
        '(Inpainter.from_pretrained / from_workdir), inpaint or serve'
    )
  options = api.InferenceOptions.from_config(config, models.size_multiple(config.model))
  program, leaves = export_program(trained.components.model, trained.variables, options.multiple)
  export_format.write(output, _meta(config, options, step), leaves, program)
  logging.info(
      'Exported the checkpoint of step %d (strategy %r, windows %s) to %s',
      step,
      options.strategy,
      ', '.join(f'{s}x{s}' for s in options.buckets),
      output,
  )
  print(output)
  return output
