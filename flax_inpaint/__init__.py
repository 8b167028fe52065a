"""flax_inpaint: image inpainting U-Nets in JAX/Flax.

  from flax_inpaint import Inpainter

The core (models, vgg, losses, masks, train step) imports neither TensorFlow nor clu, and
importing the package imports nothing heavy: `Inpainter` is loaded on first use.
"""

import os

# TensorFlow only feeds data: keep its C++ notices off the console. Set before anything
# imports jax, which sets this variable's default to 1 (oneDNN notices shown).
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# TF prints "oneDNN custom operations are on" on CPUs with AVX-512 before its logging
# reads that variable (CI saw it); its oneDNN kernels only change TF's own matmuls and
# convs, which the input pipeline (decode, crop, flip) never runs.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')

__version__ = '0.1.0'
__all__ = ['Inpainter']


def __getattr__(name):
  if name == 'Inpainter':
    from flax_inpaint.inference.api import Inpainter

    return Inpainter
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
