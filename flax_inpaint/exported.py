"""Loading a model written by `python -m flax_inpaint.export`: jax and numpy only.

The file is a zip: `meta.json` (format, training size, window sizes, the checkpoint's
step), `params.npz` (the params' leaves, in order) and one `program_<S>.bin` per window
side S: `jax.export`'s serialized StableHLO of the predict function, polymorphic in the
batch. No flax, no TensorFlow and none of this package's training code is imported, so an
exported model runs wherever jax does.
"""

import io
import json
import zipfile

import jax
import numpy as np

FORMAT = 'flax_inpaint.exported'
FORMAT_VERSION = 1


class ExportError(ValueError):
  """A file that is not an exported flax_inpaint model (one line)."""


def _read(path):
  try:
    with zipfile.ZipFile(path) as archive:
      meta = json.loads(archive.read('meta.json'))
      if meta.get('format') != FORMAT or meta.get('format_version') != FORMAT_VERSION:
        raise ExportError(f'{path}: not a flax_inpaint export (format {meta.get("format")!r} '
                          f'version {meta.get("format_version")!r})')
      with np.load(io.BytesIO(archive.read('params.npz')), allow_pickle=False) as npz:
        leaves = [npz[f'leaf_{i:04d}'] for i in range(len(npz.files))]
      programs = {int(side): archive.read(f'program_{side}.bin') for side in meta['buckets']}
  except (OSError, KeyError, zipfile.BadZipFile, ValueError) as e:
    if isinstance(e, ExportError):
      raise
    raise ExportError(f'{path}: not a readable flax_inpaint export ({type(e).__name__}: '
                      f'{e}); export it again with python -m flax_inpaint.export') from e
  return meta, leaves, programs


def load(path):
  """(predict, InferenceOptions, step) of an exported model.

  `predict(images uint8 [B, S, S, 3], holes bool [B, S, S]) -> float32 [B, S, S, 3]` for
  each exported window side S. Windows larger than the largest side are scaled down to
  it ('resize'): an exported model has no other programs.
  """
  from flax_inpaint import api  # pylint: disable=g-import-not-at-top
  meta, leaves, programs = _read(path)
  exported = {side: jax.export.deserialize(bytearray(blob)) for side, blob in programs.items()}
  device_leaves = [jax.device_put(leaf) for leaf in leaves]

  def predict(images, holes):
    side = images.shape[1]
    if side not in exported:
      raise ValueError(f'{path}: no program for {side}x{side} windows '
                       f'(exported sides: {sorted(exported)})')
    return np.asarray(exported[side].call(device_leaves, images, holes))

  options = api.InferenceOptions(train_size=meta['train_size'], multiple=meta['multiple'],
                                 strategy='resize', crop_margin=meta['crop_margin'],
                                 bucket_scales=tuple(meta['bucket_scales']))
  return predict, options, meta['step']
