"""Classical inpainting to compare against: the push-pull fill (fills.py), OpenCV Telea and
Navier-Stokes, PatchMatch (Barnes et al. 2009: texture copied from the known part of the
image), mean-colour fill, and the masked input itself. Images are float [H, W, 3] in [0, 1];
holes [H, W, 1], 1 = hole. Each returns the composite (the original outside the holes).
"""

import threading

import jax.numpy as jnp
import numpy as np

from flax_inpaint.nn import fills


def masked_input(image, hole):
  return image * (1.0 - hole)


def mean_fill(image, hole):
  """Holes filled with the mean colour of the valid pixels."""
  valid = 1.0 - hole
  colour = (image * valid).sum(axis=(0, 1)) / max(valid.sum(), 1.0)
  return image * valid + colour * hole


# PatchMatch's patch radius: patches of (2 r + 1)^2 pixels. Chosen on the dev val covers
# (BENCHMARKS.md, "PatchMatch's patch radius").
PATCHMATCH_RADIUS = 3
# Its random search starts from this seed at every call: the same input, the same repair.
PATCHMATCH_SEED = 0
# The seed is the library's process-wide state: set and used under one lock.
_PATCHMATCH_LOCK = threading.Lock()


def _mask_uint8(hole, shape) -> np.ndarray:
  return (np.asarray(hole).reshape(shape[:2]) > 0).astype(np.uint8) * 255


def opencv_inpaint_uint8(image_u8, hole, method: str, radius: int = 3) -> np.ndarray:
  """cv2.inpaint on uint8 [H, W, 3] with a bool/float hole mask [H, W] or [H, W, 1]."""
  import cv2  # Only for these methods.

  flag = {'telea': cv2.INPAINT_TELEA, 'ns': cv2.INPAINT_NS}[method]
  return cv2.inpaint(
      np.ascontiguousarray(image_u8), _mask_uint8(hole, image_u8.shape), radius, flag
  )


def patchmatch_uint8(image_u8, hole, radius: int = PATCHMATCH_RADIUS) -> np.ndarray:
  """PatchMatch (pypatchmatch) on uint8 [H, W, 3] with a hole mask [H, W] or [H, W, 1],
  seeded with PATCHMATCH_SEED: the same input gives the same repair."""
  from patchmatch import patch_match  # Loads its compiled library: only for this method.

  mask = _mask_uint8(hole, image_u8.shape)
  with _PATCHMATCH_LOCK:
    patch_match.set_random_seed(PATCHMATCH_SEED)
    return patch_match.inpaint(np.ascontiguousarray(image_u8), mask, patch_size=radius)


def inpaint_uint8(image_u8, hole, method: str) -> np.ndarray:
  """A classical method that works on uint8 pixels ('telea', 'ns', 'patchmatch')."""
  if method == 'patchmatch':
    return patchmatch_uint8(image_u8, hole)
  return opencv_inpaint_uint8(image_u8, hole, method)


def _uint8_method(image, hole, method):
  image_u8 = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
  repaired = inpaint_uint8(image_u8, hole, method).astype(np.float32) / 255.0
  return image * (1.0 - hole) + repaired * hole


def pushpull(image, hole):
  """The push-pull fill: the coarse fill the released model starts from."""
  filled = fills.pushpull_jit(
      jnp.asarray(image, jnp.float32)[None],
      jnp.asarray(hole, jnp.float32).reshape(image.shape[:2] + (1,))[None],
  )
  return np.asarray(filled[0])


def telea(image, hole):
  return _uint8_method(image, hole, 'telea')


def navier_stokes(image, hole):
  return _uint8_method(image, hole, 'ns')


def patchmatch(image, hole):
  return _uint8_method(image, hole, 'patchmatch')


# The classical repair methods, in the order every list of them shows: the eval tables,
# `Inpainter.repair_array`, the page's method menu and the API's schema read this.
CLASSICAL_METHODS = {
    'pushpull': pushpull,
    'telea': telea,
    'ns': navier_stokes,
    'patchmatch': patchmatch,
}
# The eval tables' rows: the classical methods, then two references that repair nothing.
BASELINES = {
    **CLASSICAL_METHODS,
    'mean_fill': mean_fill,
    'masked': masked_input,
}


def repairers():
  """name -> f(images [n, H, W, 3], holes [n, H, W, 1]) -> composites, per image."""
  return {
      name: (lambda f: lambda ims, hs: np.stack([f(i, h) for i, h in zip(ims, hs)]))(fn)
      for name, fn in BASELINES.items()
  }
