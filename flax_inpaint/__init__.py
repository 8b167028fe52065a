"""flax_inpaint: image inpainting U-Nets in JAX/Flax.

  from flax_inpaint import Inpainter

The core (models, vgg, losses, masks, train step) imports neither TensorFlow nor clu, and
importing the package imports nothing heavy: `Inpainter` is loaded on first use.
"""

__version__ = '0.1.0'
__all__ = ['Inpainter']


def __getattr__(name):
  if name == 'Inpainter':
    from flax_inpaint.inference.api import Inpainter

    return Inpainter
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
