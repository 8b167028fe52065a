"""The album-cover model trained on a 2-core CPU (to ship in flax_inpaint/weights/releases/).

A slim U-Net (widths 16-32-64-128, plain bottleneck) that corrects the push-pull fill,
trained on random 128x128 crops of the covers with mixed holes at their full-image sizes,
squared error inside the holes, Adam with EMA weights. No VGG16 term in this first phase: on
2 CPU cores it costs 4x the U-Net's own step. Train (XNNPACK's fusions make the CPU step
about 10% faster: BENCHMARKS.md), then evaluate:
  XLA_FLAGS=--xla_cpu_experimental_xnn_fusion_type=dot,eltwise,reduce \
  python main.py --config=configs/release.py --workdir=/tmp/release \
      --config.data.dir=../shared/data/album-covers-dev/train \
      --config.eval.dir=../shared/data/album-covers-dev/val
  python main.py --mode=eval --workdir=/tmp/release
The released album-covers model is this phase plus two of 600 steps with the VGG16
perceptual term (weights 0.05, then 0.1), each from the last one's params; its MODEL_CARD.md
gives every command and number:
  ... --workdir=/tmp/release_ft --config.train.init_from=/tmp/release \
      --config.loss.perceptual_weight=0.05 --config.loss.require_vgg=True \
      --config.train.num_steps=600 --config.train.warmup_steps=50 --config.train.lr=3e-4
Continue from the release (CPU hours add up from one release to the next):
  ... --config.train.init_from=album-covers   # or a workdir
"""

from flax_inpaint.config import schema


def get_config():
  config = schema.get_config()
  config.model.size = 'slim'
  # At 8x8 (a 128 crop's bottleneck) dilations of 2..16 mostly read padding: plain is
  # cheaper and sees as far.
  config.model.bottleneck = 'plain'
  config.model.coarse_fill = 'pushpull'
  config.data.source = 'folder'
  config.data.image_size = 256
  # A quarter of a cover per example: 4x the examples per CPU second of whole covers.
  config.data.crop_size = 128
  # Decoded covers stay in memory (4,235 x 192 KiB): the 2 cores go to the U-Net.
  config.data.cache = True
  # Squares, boxes and strokes (people paint strokes on the page), at the defaults' counts
  # and sizes: the eval draws its masks from this section, so the release's numbers are on
  # the same masks as every other table (tests/test_pretrained.py checks it).
  config.masks.kind = 'mixed'
  config.train.batch_size = 12
  config.train.lr = 1e-3
  config.train.warmup_steps = 100
  # 74 minutes on the 2-core CPU (1.80 steps/s, 2026-12-02); cosine to 0 anneals the end.
  config.train.num_steps = 8000
  config.train.schedule = 'cosine'
  config.train.ema_decay = 0.998
  config.train.checkpoint_every = 1000
  # All kept: the card's curve evaluates each of them.
  config.train.keep_checkpoints = 12
  config.train.log_every = 50
  config.train.sample_every = 400
  config.train.num_sample_images = 6
  # Squared error in the holes, not L1: PSNR is a squared error, and L1's median moved the
  # first runs below the fill (4,800-step run at L1, holes x6: 17.87 dB against the fill's
  # 17.98 after 1,200 steps, every kind lower; 40 val covers). The model corrects the fill
  # inside the holes only, so outside them its output is the input and the loss is zero.
  config.loss.l1_weight = 0.0
  config.loss.l2_weight = 1.0
  config.loss.hole_weight = 6.0
  config.loss.valid_weight = 1.0
  config.loss.tv_weight = 0.0
  config.loss.perceptual_weight = 0.0
  config.loss.require_vgg = False
  config.eval.mask_kinds = ('squares', 'boxes', 'strokes')
  config.eval.batch_size = 8
  return config
