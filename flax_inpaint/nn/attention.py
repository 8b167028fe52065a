"""Contextual attention: the holes copy pixel patches from the known part of the image.

DeepFill's idea (Yu et al. 2018), in its simplest form. At 1/`SCALE` of the image's
resolution every position's 3x3 patch of decoder features is compared (cosine similarity)
with the patches of the positions whose `SCALE`x`SCALE` block of pixels is entirely known;
a softmax over those (sharpened by a learned scale) weighs the known blocks' pixels, which
come back at full resolution: a copy of the image's own texture for every hole pixel.
The U-Net blends it in per pixel with a gate that starts at zero (models.py), so a model
given attention starts as the same function as the one it was initialised from.

Pure JAX, no params here: the same in training, eval, inference and the export. Memory and
time grow with the square of the window's area at 1/`SCALE`: (64x64)^2 scores for a 256
window, computed in chunks of `QUERY_CHUNK` query rows.
"""

import jax
import jax.numpy as jnp

ATTENTIONS = ('none', 'contextual')
# Scores are computed at 1/SCALE of the image's resolution; each copies a SCALExSCALE block.
SCALE = 4
# Query positions per chunk of the score matrix (bounds memory on large windows).
QUERY_CHUNK = 4096
# What a masked-out score becomes before the softmax (exp underflows to 0, no NaN).
_MASKED = -1e9


def patches_3x3(x):
  """[B, h, w, C] -> [B, h, w, 9C]: each position's 3x3 neighbourhood (zero-padded)."""
  height, width = x.shape[1:3]
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  shifted = [padded[:, i : i + height, j : j + width] for i in range(3) for j in range(3)]
  return jnp.concatenate(shifted, axis=-1)


def space_to_depth(x, block: int):
  """[B, H, W, C] -> [B, H/block, W/block, block*block*C]."""
  batch, height, width, channels = x.shape
  x = x.reshape(batch, height // block, block, width // block, block, channels)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(batch, height // block, width // block, block * block * channels)


def depth_to_space(x, block: int):
  """The inverse of `space_to_depth`."""
  batch, height, width, depth = x.shape
  channels = depth // (block * block)
  x = x.reshape(batch, height, width, block, block, channels)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(batch, height * block, width * block, channels)


def known_blocks(hole_mask, block: int):
  """[B, H, W, 1] hole mask -> [B, H/block, W/block]: 1 where the block has no hole pixel."""
  return 1.0 - space_to_depth(hole_mask, block).max(axis=-1)


def attend(features, known, values, scale):
  """Every position's softmax-weighted mean of the known positions' values.

  Args:
    features: [B, h, w, C] the features patches are matched on (3x3 patches, cosine).
    known: [B, h, w], 1 where a position may be copied from.
    values: [B, h, w, D] what is copied.
    scale: the softmax's sharpness (cosine similarities are in [-1, 1]).

  Returns:
    [B, h, w, D] float32. Where no position is known the weights are uniform over all.
  """
  batch, height, width, _ = features.shape
  patches = patches_3x3(features.astype(jnp.float32))
  patches = patches * jax.lax.rsqrt(jnp.sum(patches**2, axis=-1, keepdims=True) + 1e-8)
  keys = patches.reshape(batch, height * width, -1)
  values = values.astype(jnp.float32).reshape(batch, height * width, -1)
  bias = jnp.where(known.reshape(batch, 1, height * width) > 0, 0.0, _MASKED)

  def one_chunk(queries):
    scores = scale * jnp.einsum('bqc,bkc->bqk', queries, keys) + bias
    return jnp.einsum('bqk,bkd->bqd', jax.nn.softmax(scores, axis=-1), values)

  positions = height * width
  # An export's symbolic window sizes cannot be compared: one matrix then.
  if jax.export.is_symbolic_dim(positions) or positions <= QUERY_CHUNK:
    out = one_chunk(keys)
  else:
    chunks = -(-positions // QUERY_CHUNK)
    queries = jnp.pad(keys, ((0, 0), (0, chunks * QUERY_CHUNK - positions), (0, 0)))
    queries = queries.reshape(batch, chunks, QUERY_CHUNK, -1).transpose(1, 0, 2, 3)
    out = jax.lax.map(one_chunk, queries).transpose(1, 0, 2, 3)
    out = out.reshape(batch, chunks * QUERY_CHUNK, -1)[:, :positions]
  return out.reshape(batch, height, width, -1)


def copy_from_known(features, image, hole_mask, scale):
  """The image's own pixels, copied into every position by contextual attention.

  Args:
    features: [B, H/SCALE, W/SCALE, C] decoder features.
    image: [B, H, W, 3]: known outside the holes (what is copied from).
    hole_mask: [B, H, W, 1], 1 = hole.
    scale: the softmax's sharpness.

  Returns:
    [B, H, W, 3] float32: each SCALExSCALE block the weighted mean of known blocks.
  """
  known = known_blocks(hole_mask.astype(jnp.float32), SCALE)
  blocks = space_to_depth(image.astype(jnp.float32), SCALE)
  return depth_to_space(attend(features, known, blocks, scale), SCALE)
