"""`--mode=export`: a trained model as one self-contained file for inference anywhere.

  python main.py --mode=export --workdir=W --output=model.fipx
  python -m flax_inpaint.export --workdir=W --output=model.fipx [--config=FILE]
  then: Inpainter.from_export('model.fipx')   # jax and numpy only

Writes jax.export's StableHLO of the predict function for each window side the crop
strategy runs (`config.inpaint.bucket_scales` x `data.image_size`), polymorphic in the
batch and lowered for CPU and CUDA, plus the params (see exported.py for the layout).
"""

import io
import json
import os
import pathlib
import sys
import zipfile

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from flax_inpaint import api
from flax_inpaint import components as components_lib
from flax_inpaint import config_lib
from flax_inpaint import exported
from flax_inpaint import models
from flax_inpaint import steps

PLATFORMS = ('cpu', 'cuda')


def export_programs(model, variables, sides, platforms=PLATFORMS):
  """{side: serialized jax.export program} taking (param leaves, images, holes)."""
  leaves, treedef = jax.tree.flatten(variables)

  def predict(param_leaves, images, holes):
    restored = jax.tree.unflatten(treedef, param_leaves)
    return steps.make_predict_fn(model)(restored, images, holes)

  specs = [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in leaves]
  programs = {}
  for side in sides:
    batch, = jax.export.symbolic_shape('batch')
    images = jax.ShapeDtypeStruct((batch, side, side, 3), jnp.uint8)
    holes = jax.ShapeDtypeStruct((batch, side, side), jnp.bool_)
    program = jax.export.export(jax.jit(predict), platforms=platforms)(specs, images, holes)
    programs[side] = program.serialize()
  return programs, leaves


def run(config, workdir, output) -> pathlib.Path:
  """Exports the latest checkpoint of `workdir` to `output` (atomically); returns the path."""
  config = config_lib.config_for_workdir(config, workdir, mode='export')
  output = pathlib.Path(output).expanduser()
  components = components_lib.build(config, training=False)
  variables, step = components_lib.restore_variables(components, workdir)
  options = api.InferenceOptions.from_config(config, models.size_multiple(config.model))
  programs, leaves = export_programs(components.model, variables, options.buckets)
  params = io.BytesIO()
  np.savez(params, **{f'leaf_{i:04d}': np.asarray(leaf) for i, leaf in enumerate(leaves)})
  meta = {'format': exported.FORMAT, 'format_version': exported.FORMAT_VERSION,
          'step': step, 'train_size': options.train_size, 'multiple': options.multiple,
          'strategy': options.strategy, 'crop_margin': options.crop_margin,
          'bucket_scales': list(options.bucket_scales), 'buckets': list(options.buckets),
          'platforms': list(PLATFORMS), 'model': dict(config.model), 'jax': jax.__version__}
  output.parent.mkdir(parents=True, exist_ok=True)
  tmp = output.with_name(output.name + '.tmp')
  with zipfile.ZipFile(tmp, 'w', compression=zipfile.ZIP_DEFLATED) as archive:
    archive.writestr('meta.json', json.dumps(meta, indent=2))
    archive.writestr('params.npz', params.getvalue())
    for side, blob in programs.items():
      archive.writestr(f'program_{side}.bin', bytes(blob))
  os.replace(tmp, output)
  logging.info('Exported the checkpoint of step %d (%d programs: %s) to %s', step,
               len(programs), ', '.join(f'{s}x{s}' for s in programs), output)
  print(output)
  return output


if __name__ == '__main__':
  from flax_inpaint import cli  # pylint: disable=g-import-not-at-top
  cli.run([sys.argv[0], 'export'] + sys.argv[1:])
