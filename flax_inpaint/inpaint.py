"""`--mode=inpaint`: repair users' own images, any size.

Masks: 8-bit or 1-bit images, non-zero = hole; without --mask, the image's alpha
channel (alpha < 128 = hole). Images are reflect-padded to the model's multiple, run,
cropped back; pixels outside the holes are returned bit for bit, as PNG.
"""

import pathlib

from absl import logging
import numpy as np
from PIL import Image

from flax_inpaint import images as images_lib
from flax_inpaint import models
from flax_inpaint import run_eval
from flax_inpaint import steps


class InpaintError(ValueError):
  pass


def _pad_amounts(size, multiple):
  return (-size) % multiple


def read_image_and_alpha(path):
  """(RGB uint8 [H, W, 3], hole mask from alpha or None)."""
  with Image.open(path) as image:
    image.load()
    alpha_hole = None
    if image.mode in ('RGBA', 'LA', 'PA') or (image.mode == 'P' and 'transparency' in image.info):
      alpha = np.asarray(image.convert('RGBA'))[..., 3]
      alpha_hole = alpha < 128
    return images_lib.to_rgb_uint8(image), alpha_hole


def read_mask(path) -> np.ndarray:
  """bool [H, W]: non-zero pixels are holes (any PIL mode; colour masks use any channel)."""
  with Image.open(path) as mask:
    mask.load()
    array = np.asarray(mask)
  return array.any(axis=-1) if array.ndim == 3 else array.astype(bool)


def inpaint_array(repair_fn, params, batch_stats, image, hole, multiple):
  """Repairs one uint8 [H, W, 3] image with a bool [H, W] hole mask; returns uint8."""
  height, width = hole.shape
  pad_y, pad_x = _pad_amounts(height, multiple), _pad_amounts(width, multiple)
  mode = 'reflect' if pad_y < height and pad_x < width else 'symmetric'
  padded = np.pad(image, ((0, pad_y), (0, pad_x), (0, 0)), mode=mode)
  padded_hole = np.pad(hole, ((0, pad_y), (0, pad_x)), mode=mode)
  prediction, _ = repair_fn(params, batch_stats, padded[None].astype(np.float32) / 255.0,
                            padded_hole[None, ..., None].astype(np.float32))
  prediction = np.asarray(prediction[0, :height, :width])
  painted = np.clip(np.round(prediction * 255.0), 0, 255).astype(np.uint8)
  return np.where(hole[..., None], painted, image)


def _pairs(input_path, mask_path):
  input_path = pathlib.Path(input_path).expanduser()
  if input_path.is_dir():
    inputs = [p for p in images_lib.list_image_files(input_path)
              if p.suffix.lower() in images_lib.IMAGE_SUFFIXES]
  elif input_path.is_file():
    inputs = [input_path]
  else:
    raise FileNotFoundError(f'--input={input_path}: no such file or folder')
  if mask_path is None:
    return [(p, None) for p in inputs]
  mask_path = pathlib.Path(mask_path).expanduser()
  if mask_path.is_file():
    return [(p, mask_path) for p in inputs]
  if not mask_path.is_dir():
    raise FileNotFoundError(f'--mask={mask_path}: no such file or folder')
  masks_by_stem = {p.stem: p for p in images_lib.list_image_files(mask_path)}
  pairs = []
  for p in inputs:
    if p.stem not in masks_by_stem:
      raise InpaintError(f'{p}: no mask named {p.stem}.* in --mask={mask_path}')
    pairs.append((p, masks_by_stem[p.stem]))
  return pairs


def run(config, workdir, input_path, mask_path, output_dir):
  """Repairs every input image; writes OUTPUT/<name>.png. Returns the output paths."""
  pairs = _pairs(input_path, mask_path)
  model, params, batch_stats, step = run_eval.restore_model(config, workdir)
  logging.info('Inpainting %d image(s) with the checkpoint of step %d', len(pairs), step)
  repair_fn = steps.make_repair_fn(model)
  multiple = models.size_multiple(config.model)
  output_dir = pathlib.Path(output_dir).expanduser()
  output_dir.mkdir(parents=True, exist_ok=True)
  written = []
  for image_path, hole_path in pairs:
    image, alpha_hole = read_image_and_alpha(image_path)
    if hole_path is not None:
      hole = read_mask(hole_path)
    elif alpha_hole is not None:
      hole = alpha_hole
    else:
      raise InpaintError(f'{image_path}: no --mask given and the image has no alpha channel')
    if hole.shape != image.shape[:2]:
      raise InpaintError(f'mask {hole_path} is {hole.shape[1]}x{hole.shape[0]} but image '
                         f'{image_path} is {image.shape[1]}x{image.shape[0]}: they must match')
    if not hole.any():
      logging.warning('%s: the mask has no hole pixels; copying the image through', image_path)
      repaired = image
    else:
      repaired = inpaint_array(repair_fn, params, batch_stats, image, hole, multiple)
    out = output_dir / f'{image_path.stem}.png'
    images_lib.save_png(repaired, out)
    written.append(out)
  return written
