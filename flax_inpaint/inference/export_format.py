"""The exported-model file: written by `--mode=export`, loaded with jax and numpy only.

The file is a zip: `meta.json` (format, the checkpoint's step, how images are cut into
windows: strategy, margin, window sides, the model's size multiple), `params.npz` (the
params' leaves, in order) and `program.bin`: `jax.export`'s serialized StableHLO of the
predict function, polymorphic in the batch and in the window's height and width (any
multiple of the model's size multiple). A model with a coarse fill (the released ones) gets
it as an input: the loader computes it with `nn/fills.py` (pure jax, no params), since the
push-pull pyramid's depth follows the window's size, which a symbolic shape does not give.
So an export runs every window the workdir's model runs, with the same strategy: it repairs
as the workdir does. No flax, no TensorFlow and none of this package's training code is
imported here, so an exported model runs wherever jax does.
"""

import io
import json
import os
import pathlib
import zipfile

import jax
import numpy as np

from flax_inpaint import errors
from flax_inpaint.nn import fills

FORMAT = 'flax_inpaint.exported'
# 1: one program per window side, always run with 'resize'. 2: one shape-polymorphic
# program, run with the workdir's strategy. 3: models with a coarse fill take it as input.
FORMAT_VERSION = 3
READ_VERSIONS = (2, 3)
META, PARAMS, PROGRAM = 'meta.json', 'params.npz', 'program.bin'
# The InferenceOptions fields meta.json records.
OPTION_KEYS = ('train_size', 'multiple', 'strategy', 'crop_margin', 'bucket_scales')


def check_output(path, *, overwrite: bool) -> pathlib.Path:
  """The path an export may be written to. Raises errors.ExportError for an existing file (unless
  overwrite), a folder, or a parent folder that does not exist."""
  path = pathlib.Path(path).expanduser()
  if path.is_dir():
    raise errors.ExportError(
        f'--output={path}: is a folder; name the file to write, e.g. '
        f'--output={path / "model.fipx"}'
    )
  if not path.parent.is_dir():
    raise errors.ExportError(f'--output={path}: no such folder {path.parent}: create it first')
  if path.exists() and not overwrite:
    raise errors.ExportError(
        f'--output={path}: already exists: choose another file, or pass '
        '--overwrite to replace it'
    )
  return path


def write(path, meta: dict, leaves, program: bytes) -> pathlib.Path:
  """Writes the zip atomically (a hidden temporary file renamed over `path`)."""
  path = pathlib.Path(path)
  params = io.BytesIO()
  np.savez(params, **{f'leaf_{i:04d}': np.asarray(leaf) for i, leaf in enumerate(leaves)})
  meta = dict(meta, format=FORMAT, format_version=FORMAT_VERSION)
  tmp = path.with_name(f'.{path.name}.tmp')
  try:
    with zipfile.ZipFile(tmp, 'w', compression=zipfile.ZIP_DEFLATED) as archive:
      archive.writestr(META, json.dumps(meta, indent=2))
      archive.writestr(PARAMS, params.getvalue())
      archive.writestr(PROGRAM, bytes(program))
    os.replace(tmp, path)
  finally:
    tmp.unlink(missing_ok=True)
  return path


def _check_format(path, meta) -> None:
  if meta.get('format') != FORMAT:
    raise errors.ExportError(f'{path}: not a flax_inpaint export (format {meta.get("format")!r})')
  if meta.get('format_version') not in READ_VERSIONS:
    raise errors.ExportError(
        f'{path}: a flax_inpaint export of format version '
        f'{meta.get("format_version")!r}, this version reads '
        f'{" or ".join(map(str, READ_VERSIONS))}: export it again (python main.py --mode=export)'
    )


def _read(path):
  try:
    with zipfile.ZipFile(path) as archive:
      meta = json.loads(archive.read(META))
      _check_format(path, meta)
      with np.load(io.BytesIO(archive.read(PARAMS)), allow_pickle=False) as npz:
        leaves = [npz[f'leaf_{i:04d}'] for i in range(len(npz.files))]
      program = archive.read(PROGRAM)
  except (OSError, KeyError, zipfile.BadZipFile, ValueError) as e:
    if isinstance(e, errors.ExportError):
      raise
    raise errors.ExportError(
        f'{path}: not a readable flax_inpaint export ({type(e).__name__}: '
        f'{e}); export it again with flax-inpaint export'
    ) from e
  return meta, leaves, program


def load(path):
  """(predict, the `InferenceOptions` fields, step, description) of an exported model
  (description: how logs name it, e.g. 'album-covers, 9,200 steps, exported to FILE').

  `predict(images uint8 [B, H, W, 3], holes bool [B, H, W]) -> float32 [B, H, W, 3]` for
  any H and W that are multiples of the model's size multiple (each new shape compiles
  once); the options are the workdir's, strategy included.
  """
  meta, leaves, program = _read(path)
  exported = jax.export.deserialize(bytearray(program))
  device_leaves = [jax.device_put(leaf) for leaf in leaves]
  multiple = meta['multiple']
  coarse_fill = meta['model'].get('coarse_fill', 'none')
  if coarse_fill not in fills.COARSE_FILLS:
    raise errors.ExportError(
        f'{path}: a model with coarse fill {coarse_fill!r}, which this version of flax_inpaint '
        f'does not know ({", ".join(fills.COARSE_FILLS)}): upgrade flax_inpaint'
    )

  def predict(images, holes):
    if images.shape[1] % multiple or images.shape[2] % multiple:
      raise ValueError(
          f'{path}: windows must have sides that are multiples of {multiple}, '
          f'got {images.shape[1]}x{images.shape[2]}'
      )
    fill = (fills.pushpull_uint8(images, holes),) if coarse_fill != 'none' else ()
    return np.asarray(exported.call(device_leaves, images, holes, *fill))

  options = {key: meta[key] for key in OPTION_KEYS}
  described = meta.get('description', f'the checkpoint of step {meta["step"]}')
  description = f'{described}, exported to {path}'
  return (
      predict,
      dict(options, bucket_scales=tuple(options['bucket_scales'])),
      meta['step'],
      description,
  )
