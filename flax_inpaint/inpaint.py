"""`--mode=inpaint`: repair users' image files with a trained model; nothing is lost.

  python main.py --mode=inpaint --workdir=W --input=IMG_OR_DIR [--mask=MASK_OR_DIR] \
      --output=OUT [--mask_threshold=128] [--overwrite]

Masks: a file for every image, or a folder with a mask named like each image (any
extension); a pixel is a hole where any colour channel is >= --mask_threshold. Without
--mask, the image's alpha channel (alpha < 128 = hole). EXIF orientation is applied to
both. Each result is a PNG in the image's own layout (greyscale, alpha kept) with every
pixel outside the holes bit for bit the input's, and its path is printed.

Nothing is lost: an input is never replaced (unless --overwrite), inputs that share a
name get distinct outputs, and a bad image or mask is reported in one line while the
rest of the folder is still repaired; the run then ends with status 2 and a count.
"""

import pathlib
import sys
from typing import List, Optional, Tuple
import warnings

from absl import logging

from flax_inpaint import api
from flax_inpaint import image_files
from flax_inpaint import images as images_lib


def _inputs(input_path) -> Tuple[List[pathlib.Path], Optional[pathlib.Path]]:
  """The image files to repair, and the folder they were found in (None for a file)."""
  input_path = pathlib.Path(input_path).expanduser()
  if input_path.is_dir():
    return [p for p in images_lib.list_image_files(input_path)
            if p.suffix.lower() in images_lib.IMAGE_SUFFIXES], input_path
  if input_path.is_file():
    return [input_path], None
  raise FileNotFoundError(f'--input={input_path}: no such file or folder')


def _mask_finder(mask_path):
  """f(image path) -> its mask path, or None when the holes come from the alpha."""
  if mask_path is None:
    return lambda _: None
  mask_path = pathlib.Path(mask_path).expanduser()
  if mask_path.is_file():
    return lambda _: mask_path
  if not mask_path.is_dir():
    raise FileNotFoundError(f'--mask={mask_path}: no such file or folder')
  by_stem = {p.stem: p for p in images_lib.list_image_files(mask_path)}

  def find(image_path):
    if image_path.stem not in by_stem:
      raise image_files.MaskError(f'{image_path}: no mask named {image_path.stem}.* in '
                                  f'--mask={mask_path}')
    return by_stem[image_path.stem]

  return find


def repair_file(inpainter: api.Inpainter, image_path, mask_path, output_path, *,
                mask_threshold: int) -> pathlib.Path:
  """Reads, repairs and writes one image. Raises image_files.ImageFileError (one line)."""
  image = image_files.read_image(image_path)
  if mask_path is None:
    hole = image_files.alpha_hole(image)
    if hole is None:
      raise image_files.MaskError(f'{image_path}: no --mask given and the image has no '
                                  'alpha channel')
    image_files.check_hole(hole, image)
  else:
    hole = image_files.read_mask(mask_path, threshold=mask_threshold, image=image)
  repaired = inpainter.inpaint_array(image.pixels, hole, opaque_holes=mask_path is None)
  return image_files.write_png(repaired, output_path, icc_profile=image.icc_profile)


def run(config, workdir, input_path, mask_path, output_dir, *, mask_threshold: int = 128,
        overwrite: bool = False) -> int:
  """Repairs every input; prints each path written. Returns the number of failed inputs."""
  inputs, root = _inputs(input_path)
  outputs = image_files.output_paths(inputs, pathlib.Path(output_dir).expanduser(),
                                     overwrite=overwrite, root=root)
  find_mask = _mask_finder(mask_path)
  inpainter = api.Inpainter.from_workdir(workdir, config)
  logging.info('Inpainting %d image(s) with the checkpoint of step %d', len(inputs),
               inpainter.step)
  failed = 0
  for image_path, output_path in zip(inputs, outputs):
    try:
      with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always', image_files.ImageFileWarning)
        written = repair_file(inpainter, image_path, find_mask(image_path), output_path,
                              mask_threshold=mask_threshold)
      for warning in caught:
        print(f'warning: {warning.message}', file=sys.stderr)
      print(written, flush=True)
    except image_files.ImageFileError as e:
      failed += 1
      print(f'error: {e}', file=sys.stderr, flush=True)
  if failed:
    print(f'error: {failed} of {len(inputs)} image(s) could not be repaired (see above); '
          'the others were written', file=sys.stderr)
  return failed
