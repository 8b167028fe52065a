"""Classical inpainting to compare against: the push-pull fill (fills.py), OpenCV Telea and
Navier-Stokes, mean-colour fill, and the masked input itself. Images are float [H, W, 3] in [0, 1]; holes
[H, W, 1], 1 = hole. Each returns the composite (the original outside the holes).
"""

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


def opencv_inpaint_uint8(image_u8, hole, method: str, radius: int = 3) -> np.ndarray:
  """cv2.inpaint on uint8 [H, W, 3] with a bool/float hole mask [H, W] or [H, W, 1]."""
  import cv2

  flag = {'telea': cv2.INPAINT_TELEA, 'ns': cv2.INPAINT_NS}[method]
  mask_u8 = (np.asarray(hole).reshape(image_u8.shape[:2]) > 0).astype(np.uint8) * 255
  return cv2.inpaint(np.ascontiguousarray(image_u8), mask_u8, radius, flag)


def _opencv(image, hole, method):
  image_u8 = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
  repaired = opencv_inpaint_uint8(image_u8, hole, method).astype(np.float32) / 255.0
  return image * (1.0 - hole) + repaired * hole


def pushpull(image, hole):
  """The push-pull fill: the coarse fill the released model starts from."""
  filled = fills.pushpull_jit(
      jnp.asarray(image, jnp.float32)[None],
      jnp.asarray(hole, jnp.float32).reshape(image.shape[:2] + (1,))[None],
  )
  return np.asarray(filled[0])


def telea(image, hole):
  return _opencv(image, hole, 'telea')


def navier_stokes(image, hole):
  return _opencv(image, hole, 'ns')


# The classical repair methods, in the order every list of them shows: the eval tables,
# `Inpainter.repair_array`, the page's method menu and the API's schema read this.
CLASSICAL_METHODS = {
    'pushpull': pushpull,
    'telea': telea,
    'ns': navier_stokes,
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
