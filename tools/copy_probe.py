"""Issue 27's zero-training probes: the release plus detail copied from the known part of each
image, with no training, on the eval masks of the first N dev val covers.

  python tools/copy_probe.py --copy=attention --eval_dir=../shared/data/album-covers-dev/val \
      --num_images=60 --scale=1000
  python tools/copy_probe.py --copy=pixels --eval_dir=../shared/data/album-covers-dev/val \
      --num_images=60

--copy=attention opens the release's contextual-attention copy by hand (nn/attention.py on
its own decoder features) and prints the release, the copy pasted into the holes, and the
release plus the copy's detail (the copy minus its Gaussian blur, sigma 1 and 2 px).

--copy=pixels matches at full colour, not on features: every 2x2 block of the holes takes the
offset of the known 5x5 patch (at 1/2 resolution, 10x10 pixels) nearest to its own in the
low-pass composite (the release in the holes, the photo outside; Gaussian blur, sigma S), and
the release gets that source's detail (composite minus low-pass) times A, for S in 1, 2 px and
A in 0.5, 1.

--copy=patchmatch takes the detail from PatchMatch's fill (the eval's baseline, its seed and
radius): the release's low-pass plus PatchMatch's detail (Gaussian split at sigma 1 and 2 px)
times A, and PatchMatch itself. A ceiling for "the release plus copied texture": the detail of
the best classical copy there is.
"""

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from flax_inpaint.config import config_lib
from flax_inpaint.evaluation import baselines
from flax_inpaint.evaluation import evaluate
from flax_inpaint.nn import models
from flax_inpaint.train import validation
from flax_inpaint.weights import pretrained

FLAGS = flags.FLAGS
flags.DEFINE_enum(
    'copy', 'attention', ['attention', 'pixels', 'patchmatch'], 'What the detail is copied by.'
)
flags.DEFINE_string('eval_dir', None, 'The folder of eval images.', required=True)
flags.DEFINE_integer('num_images', 60, 'Eval images.')
flags.DEFINE_float('scale', 1000.0, "--copy=attention: the attention's softmax scale.")
flags.DEFINE_list('kinds', ['squares', 'boxes', 'strokes'], 'Mask kinds scored.')

BATCH = 6
PATCH = 5  # --copy=pixels: patch side at 1/2 resolution


def attention_variants(config, params):
  """(x, holes) -> {name: prediction} for --copy=attention (config.model.attention is on)."""
  model = models.create_model(config.model, config.impl)

  def with_gate(bias):
    # The gate's kernel is [1, 1, C, 1] over the last decoder level's C channels.
    channels = models.WIDTHS[config.model.size][0]
    return {
        **params,
        'attention_gate': {'kernel': jnp.zeros((1, 1, channels, 1)), 'bias': jnp.full((1,), bias)},
        'attention_scale': jnp.asarray(FLAGS.scale, jnp.float32),
    }

  closed, opened = with_gate(0.0), with_gate(1.0)

  @jax.jit
  def predict(x, h):
    masked = models.mask_image(x, h)
    return model.apply({'params': closed}, masked, h), model.apply({'params': opened}, masked, h)

  def variants(x, h):
    base, copy = (np.asarray(o) for o in predict(x, h))
    results = {'release': base, 'copy': copy}
    for sigma in (1.0, 2.0):
      detail = copy - ndimage.gaussian_filter(copy, sigma=(0, sigma, sigma, 0), mode='nearest')
      results[f'release + detail (sigma {sigma:g})'] = np.clip(base + detail, 0, 1)
    return results

  return variants


def gaussian_blur(x, sigma):
  """[B, H, W, C] blurred per channel, edges repeated."""
  radius = int(3 * sigma + 0.5)
  taps = jnp.exp(-0.5 * (jnp.arange(-radius, radius + 1, dtype=jnp.float32) / sigma) ** 2)
  taps = taps / taps.sum()
  channels = x.shape[-1]
  padded = jnp.pad(x, ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode='edge')
  numbers = ('NHWC', 'HWIO', 'NHWC')
  for kernel in (taps[:, None, None, None], taps[None, :, None, None]):
    padded = jax.lax.conv_general_dilated(
        padded,
        jnp.tile(kernel, (1, 1, 1, channels)),
        (1, 1),
        'VALID',
        dimension_numbers=numbers,
        feature_group_count=channels,
    )
  return padded


def copied_detail(composite, holes, sigma):
  """One image's detail ([1, H, W, 3]) moved by the nearest-patch offsets (module docstring)."""
  low = gaussian_blur(composite, sigma)
  detail = composite - low
  height, width = composite.shape[1:3]
  half = (height // 2, width // 2)
  window = lambda x, size, stride: jax.lax.reduce_window(
      x, 0.0, jax.lax.max, (1, size, size, 1), (1, stride, stride, 1), 'SAME'
  )
  holes_half = window(holes, 2, 2)
  # A source's patch and its 2x2 block of detail hold no hole pixel.
  sources = window(holes_half, PATCH + 2, 1).reshape(-1) < 0.5
  features = jax.lax.conv_general_dilated_patches(
      low[:, ::2, ::2], (PATCH, PATCH), (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')
  ).reshape(half[0] * half[1], -1)
  # argmin |q - k|^2 = argmax 2 q.k - |k|^2
  scores = 2 * features @ features.T - jnp.sum(features**2, -1)[None]
  nearest = jnp.argmax(jnp.where(sources[None], scores, -jnp.inf), -1).reshape(half)
  rows, cols = jnp.meshgrid(jnp.arange(half[0]), jnp.arange(half[1]), indexing='ij')
  offsets = [
      jnp.repeat(jnp.repeat(2 * (target - here), 2, 0), 2, 1)
      for target, here in ((nearest // half[1], rows), (nearest % half[1], cols))
  ]
  ys, xs = jnp.meshgrid(jnp.arange(height), jnp.arange(width), indexing='ij')
  return detail[
      :, jnp.clip(ys + offsets[0], 0, height - 1), jnp.clip(xs + offsets[1], 0, width - 1)
  ]


def pixel_variants(config, params):
  """(x, holes) -> {name: prediction} for --copy=pixels."""
  model = models.create_model(config.model, config.impl)

  @jax.jit
  def predict(x, h):
    base = model.apply({'params': params}, models.mask_image(x, h), h)
    composite = h * base + (1 - h) * x
    results = {'release': base}
    for sigma in (1.0, 2.0):
      detail = jax.vmap(lambda c, m: copied_detail(c[None], m[None], sigma)[0])(composite, h)
      for amount in (0.5, 1.0):
        results[f'release + {amount:g} x detail (sigma {sigma:g})'] = jnp.clip(
            base + amount * detail, 0, 1
        )
    return results

  return lambda x, h: {k: np.asarray(v) for k, v in predict(x, h).items()}


def patchmatch_variants(config, params):
  """(x, holes) -> {name: prediction} for --copy=patchmatch."""
  model = models.create_model(config.model, config.impl)
  predict = jax.jit(lambda x, h: model.apply({'params': params}, models.mask_image(x, h), h))
  blur = lambda x, sigma: ndimage.gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode='nearest')

  def variants(x, h):
    base = np.asarray(predict(x, h))
    copy = baselines.repairers()['patchmatch'](x, h)
    results = {'release': base, 'patchmatch': copy}
    for sigma in (1.0, 2.0):
      low, detail = blur(base, sigma), copy - blur(copy, sigma)
      for amount in (0.5, 1.0):
        results[f'release low-pass + {amount:g} x detail (sigma {sigma:g})'] = np.clip(
            low + amount * detail, 0, 1
        )
    return results

  return variants


VARIANTS = {
    'attention': attention_variants,
    'pixels': pixel_variants,
    'patchmatch': patchmatch_variants,
}


def main(argv):
  del argv
  release = pretrained.release_dir()
  config = config_lib.read_config_json(release)
  config.eval.dir, config.eval.num_images = FLAGS.eval_dir, FLAGS.num_images
  config.loss.require_vgg = False
  params, _ = pretrained.read_params(release)
  if FLAGS.copy == 'attention':
    config.model.attention = 'contextual'
  config = validation.resolve(config, mode='eval')
  variants = VARIANTS[FLAGS.copy](config, params)
  images, _ = evaluate.load_eval_set(config)
  originals = images.astype(np.float32) / 255.0
  lpips = evaluate.LpipsScorer(config)

  for kind in FLAGS.kinds:
    holes = evaluate.eval_masks(config, kind, len(images))
    batches = [
        variants(originals[i : i + BATCH], holes[i : i + BATCH])
        for i in range(0, len(images), BATCH)
    ]
    line = []
    for name in batches[0]:
      prediction = np.concatenate([b[name] for b in batches])
      repaired = (holes * prediction + (1 - holes) * originals).astype(np.float32)
      row = evaluate.mean_rows(
          evaluate.score(repaired, originals, holes, lpips(repaired, originals))
      )
      line.append(f"{name} {row['hole_psnr']:.2f} / {row['lpips']:.4f}")
    print(f'{kind}: ' + ' | '.join(line), flush=True)


if __name__ == '__main__':
  app.run(main)
