"""flax_inpaint: image inpainting U-Nets in JAX/Flax.

The core (models, vgg, losses, masks, train step) imports neither TensorFlow nor clu.
"""

__version__ = '0.1.0'
