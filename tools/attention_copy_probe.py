"""Issue 27's zero-training probe: the release with its contextual-attention copy opened by
hand (no training), on the eval masks of the first N dev val covers.

  python tools/attention_copy_probe.py --eval_dir=../shared/data/album-covers-dev/val \
      --num_images=60 --scale=1000

Prints hole PSNR / LPIPS per mask kind for the release, the copy pasted into the holes, and
the release plus the copy's detail (the copy minus its Gaussian blur, sigma 1 and 2 px).
"""

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from flax_inpaint.config import config_lib
from flax_inpaint.evaluation import evaluate
from flax_inpaint.nn import models
from flax_inpaint.train import validation
from flax_inpaint.weights import pretrained

FLAGS = flags.FLAGS
flags.DEFINE_string('eval_dir', None, 'The folder of eval images.', required=True)
flags.DEFINE_integer('num_images', 60, 'Eval images.')
flags.DEFINE_float('scale', 1000.0, "The attention's softmax scale.")
flags.DEFINE_list('kinds', ['squares', 'boxes', 'strokes'], 'Mask kinds scored.')


def main(argv):
  del argv
  release = pretrained.release_dir()
  config = config_lib.read_config_json(release)
  config.eval.dir, config.eval.num_images = FLAGS.eval_dir, FLAGS.num_images
  config.model.attention = 'contextual'
  config = validation.resolve(config, mode='eval')
  params, _ = pretrained.read_params(release)
  model = models.create_model(config.model, config.impl)
  images, _ = evaluate.load_eval_set(config)
  originals = images.astype(np.float32) / 255.0
  lpips = evaluate.LpipsScorer(config)

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

  for kind in FLAGS.kinds:
    holes = evaluate.eval_masks(config, kind, len(images))
    base, copy = (
        np.concatenate(p)
        for p in zip(
            *[
                [np.asarray(o) for o in predict(originals[i : i + 12], holes[i : i + 12])]
                for i in range(0, len(images), 12)
            ]
        )
    )
    results = {'release': base, 'copy': copy}
    for sigma in (1.0, 2.0):
      detail = copy - ndimage.gaussian_filter(copy, sigma=(0, sigma, sigma, 0), mode='nearest')
      results[f'release + detail (sigma {sigma:g})'] = np.clip(base + detail, 0, 1)
    line = []
    for name, prediction in results.items():
      repaired = (holes * prediction + (1 - holes) * originals).astype(np.float32)
      row = evaluate.mean_rows(
          evaluate.score(repaired, originals, holes, lpips(repaired, originals))
      )
      line.append(f"{name} {row['hole_psnr']:.2f} / {row['lpips']:.4f}")
    print(f'{kind}: ' + ' | '.join(line), flush=True)


if __name__ == '__main__':
  app.run(main)
