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
  """(serialized jax.export program taking (param leaves, images, holes[, fill]), param
  leaves).

  The program takes any batch and any window height and width that are multiples of
  `multiple`: the strategies' windows (buckets, larger 'crop' windows, 'full' images). A
  model with a coarse fill takes the fill as a 4th input (`fills.pushpull_uint8`, which the
  loader runs): the push-pull pyramid's depth follows the window's size, which a
  shape-polymorphic program does not know.
  """
  leaves, treedef = jax.tree.flatten(variables)
  given_fill = model.coarse_fill != 'none'

  def predict(param_leaves, images, holes, *fill):
    restored = jax.tree.unflatten(treedef, param_leaves)
    return steps.make_uint8_predict_fn(model)(restored, images, holes, *fill)

  specs = [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in leaves]
  batch, height, width = jax.export.symbolic_shape(f'batch, {multiple}*h, {multiple}*w')
  inputs = [
      jax.ShapeDtypeStruct((batch, height, width, 3), jnp.uint8),
      jax.ShapeDtypeStruct((batch, height, width), jnp.bool_),
  ]
  if given_fill:
    inputs.append(jax.ShapeDtypeStruct((batch, height, width, 3), jnp.float32))
  program = jax.export.export(jax.jit(predict), platforms=platforms)(specs, *inputs)
  return program.serialize(), leaves


def _meta(config, options: api.InferenceOptions, step: int, description: str) -> dict:
  options = dataclasses.asdict(options)
  return {
      **{key: options[key] for key in export_format.OPTION_KEYS},
      'bucket_scales': list(options['bucket_scales']),
      'step': step,
      'description': description,
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
    errors.ExportError: `output` exists (unless overwrite) or its folder does not.
  """
  output = export_format.check_output(output, overwrite=overwrite)
  trained = setup.load_trained(workdir, config, mode='export')
  config, step = trained.config, trained.step
  options = api.InferenceOptions.from_config(config, models.size_multiple(config.model))
  program, leaves = export_program(trained.components.model, trained.variables, options.multiple)
  export_format.write(output, _meta(config, options, step, trained.description), leaves, program)
  logging.info(
      'Exported %s (strategy %r, windows %s) to %s',
      trained.description,
      options.strategy,
      ', '.join(f'{s}x{s}' for s in options.buckets),
      output,
  )
  print(output)
  return output
