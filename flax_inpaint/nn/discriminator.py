"""The PatchGAN discriminator of adversarial training (linen, NHWC, no normalisation).

Each output logit judges one patch of the input image (its receptive field): real where the
image is a photo's own pixels, fake where a model painted them. As in LaMa and MI-GAN it has
no normalisation layer, so its R1 penalty is a plain gradient norm. It is a training-time
network only: inference, the export and the releases never run it.
"""

from typing import Sequence, Tuple

import flax.linen as nn
import jax.numpy as jnp

# Each stride-2 layer halves the logits' resolution: 3 layers give one logit per 8x8 pixels
# (a 34-pixel receptive field with the two stride-1 layers).
DEFAULT_WIDTHS = (32, 64, 128)


class PatchDiscriminator(nn.Module):
  """4x4 stride-2 convs with leaky ReLUs at `widths`, a 4x4 conv at twice the last width,
  and a 4x4 conv to one logit per patch.

  Returns:
    (logits [B, H / 2^len(widths), W / 2^len(widths), 1], the hidden layers' activations:
    what feature matching compares).
  """

  widths: Sequence[int] = DEFAULT_WIDTHS

  @nn.compact
  def __call__(self, images) -> Tuple[jnp.ndarray, list]:
    features = []
    x = images.astype(jnp.float32) * 2.0 - 1.0
    for width in self.widths:
      x = nn.leaky_relu(nn.Conv(width, (4, 4), strides=(2, 2), padding='SAME')(x), 0.2)
      features.append(x)
    x = nn.leaky_relu(nn.Conv(2 * self.widths[-1], (4, 4), padding='SAME')(x), 0.2)
    features.append(x)
    return nn.Conv(1, (4, 4), padding='SAME')(x), features


def logits_scale(widths: Sequence[int] = DEFAULT_WIDTHS) -> int:
  """The side in pixels of the image patch behind each logit's position."""
  return 2 ** len(widths)
