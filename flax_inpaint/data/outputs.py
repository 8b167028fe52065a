"""Where users' repaired images go: output names that never collide and never replace an
input unless asked to (`output_paths`, `check_overwrites`), and PNGs written atomically with
the input's ICC profile (`write_png`).
"""

import collections
import os
import pathlib
import secrets
from typing import Iterable, List, Optional

import numpy as np
from PIL import Image

from flax_inpaint import errors
from flax_inpaint.data import user_files


def _clash_key(path: pathlib.Path) -> str:
  # Case-insensitive: A.png and a.png are one file on macOS and Windows.
  return str(path).casefold()


def _file_id(path: pathlib.Path):
  stat = path.stat()
  return stat.st_dev, stat.st_ino


def output_paths(
    inputs: Iterable, output_dir, *, overwrite: bool = False, root=None
) -> List[pathlib.Path]:
  """The PNG each input is written to: OUTPUT/<stem>.png, or OUTPUT/<name>.png for every
  input whose stem another input shares (a.jpg, a.png -> a.jpg.png, a.png.png), whatever
  the order of `inputs`. root: the folder the inputs were found in; outputs then keep their
  subfolders (OUTPUT/sub/<stem>.png).

  Raises:
    errors.ImageFileError: an output would replace an input, or an existing file (unless
      overwrite), or two inputs would still get one name.
  """
  inputs = [pathlib.Path(p) for p in inputs]
  output_dir = pathlib.Path(output_dir)
  folders = [
      output_dir / p.parent.relative_to(root) if root is not None else output_dir for p in inputs
  ]
  by_stem = [folder / f'{p.stem}.png' for folder, p in zip(folders, inputs)]
  stem_counts = collections.Counter(_clash_key(o) for o in by_stem)
  outputs = [
      folder / f'{p.name}.png' if stem_counts[_clash_key(o)] > 1 else o
      for folder, p, o in zip(folders, inputs, by_stem)
  ]
  first_input = {}
  for source, output in zip(inputs, outputs):
    other = first_input.setdefault(_clash_key(output), source)
    if other != source:
      raise errors.ImageFileError(
          f'{other} and {source} would both be written to {output}: ' 'rename one'
      )
  check_overwrites(inputs, outputs, overwrite)
  return outputs


def check_overwrites(inputs, outputs, overwrite: bool) -> None:
  """Raises errors.ImageFileError when one of `outputs` is a folder, or (unless overwrite)
  an existing file: one of `inputs`, or any other."""
  input_ids = {_file_id(p) for p in inputs if p.exists()}
  for output in outputs:
    if output.is_dir():
      raise errors.ImageFileError(f'{output}: is a folder, where a result would be written')
    if overwrite or not output.exists():
      continue
    if _file_id(output) in input_ids:
      raise errors.ImageFileError(
          f'{output}: is an input image and would be overwritten: choose '
          'another output folder, or pass --overwrite'
      )
    raise errors.ImageFileError(
        f'{output}: already exists: choose another output folder, or pass '
        '--overwrite to replace it'
    )


def write_png(array: np.ndarray, path, *, icc_profile: Optional[bytes] = None) -> pathlib.Path:
  """Writes uint8 [H, W] / [H, W, 2] / [H, W, 3] / [H, W, 4] as an L / LA / RGB / RGBA PNG.

  Atomic: written to a hidden file in the same folder, then renamed over `path`, so an
  interrupted run never leaves a half-written PNG (or a half-replaced old one).
  """
  array = np.asarray(array)
  try:
    user_files.layout_of(array)
  except ValueError as e:
    raise ValueError(f'{path}: {e}') from None
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  image = Image.fromarray(array)
  temporary = path.with_name(f'.{path.name}.{secrets.token_hex(4)}.tmp')
  try:
    # 'x' creates the file with the user's umask (mkstemp's would be 0600).
    with open(temporary, 'xb') as file:
      image.save(file, format='PNG', **({'icc_profile': icc_profile} if icc_profile else {}))
      file.flush()
      os.fsync(file.fileno())
    os.replace(temporary, path)
  except BaseException:
    temporary.unlink(missing_ok=True)
    raise
  return path
