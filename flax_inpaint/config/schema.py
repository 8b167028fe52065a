"""Base configuration: every field flax_inpaint reads, with its default.

The library owns this schema (it never imports the top-level `configs/` folder, which is
loaded by path). Config files start from `get_config()` and override a few fields:
  python main.py --config=configs/<name>.py --workdir=DIR [--config.train.lr=1e-3 ...]
"""

import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  config.model = ml_collections.ConfigDict()
  # U-Net widths: small 32-64-128-256, medium 64-128-256-512, large 5 levels 32..512.
  config.model.size = 'small'
  # 'dilated': 4 convs with dilation 2, 4, 8, 16 (the seed's final, larger receptive
  # field); 'plain': two 3x3 convs.
  config.model.bottleneck = 'dilated'
  # 'none' (the seed's final model) or 'batch'.
  config.model.norm = 'none'
  # 'resize' (nearest upsample + 3x3 conv: no checkerboard artifacts) or 'transpose'.
  config.model.upsample = 'resize'
  # Compute dtype: 'float32' or 'bfloat16'. Params and optimizer state stay float32.
  config.model.dtype = 'float32'
  # What the U-Net starts from: 'none' (the seed's: holes black, the net paints them) or
  # 'pushpull' (holes filled by a parameter-free push-pull pyramid, fills.py; the net adds a
  # correction whose last layer starts at zero, so an untrained model returns the fill).
  config.model.coarse_fill = 'none'
  # 'contextual': the holes copy pixel blocks from the known region (nn/attention.py), blended
  # in by a gate that starts at zero, so `train.init_from` a model without it starts as that
  # model. 'none': no copying.
  config.model.attention = 'none'
  # How the model is computed, not what it computes: every value gives the same function and
  # params (flax_inpaint/nn/ops.py; tests compare each form with the plain one). They exist for
  # GPU speed; BENCHMARKS.md and docs/performance_notes.md time them.
  config.impl = ml_collections.ConfigDict()
  # 2x2 max pooling (U-Net and VGG16): 'reshape' (scatter-free) or 'reduce_window'.
  config.impl.pool = 'reshape'
  # Nearest upsample + 3x3 conv: 'subpixel', 'repeat' or 'gather' (jax.image.resize).
  config.impl.upsample = 'subpixel'
  # ReLU's derivative from its 'output' (XLA can fuse conv + bias + ReLU) or 'input'.
  config.impl.relu = 'output'
  # Zero-pad the U-Net's input (RGB + hole mask: 4 channels) and first kernel to this many.
  config.impl.unet_input_channels = 4
  # Zero-pad VGG16's input (3 channels) and conv1_1's kernel to this many.
  config.impl.vgg_input_channels = 3

  config.train = ml_collections.ConfigDict()
  config.train.num_steps = 20_000
  # Global batch over all devices and hosts; must divide by the device count.
  config.train.batch_size = 32
  # 3e-4: the seed's learning-rate search picked it for full training.
  config.train.lr = 3e-4
  # Linear warmup steps before the peak lr (0 = none).
  config.train.warmup_steps = 0
  # 'constant' or 'cosine' (decay to 0 at num_steps after warmup).
  config.train.schedule = 'constant'
  # Global-norm gradient clipping (0 = off).
  config.train.grad_clip = 0.0
  config.train.checkpoint_every = 1000
  # Checkpoints kept on disk (the latest N).
  config.train.keep_checkpoints = 3
  config.train.log_every = 100
  # Sample grids (PNG + TensorBoard) every this many steps and at the end.
  config.train.sample_every = 1000
  config.train.num_sample_images = 4
  config.train.seed = 0
  # Exponential moving average of the params (0 = off). With it, eval, inference, export and
  # the release use the average.
  config.train.ema_decay = 0.0
  # Start a new run from these params instead of random ones: a released model's name
  # (e.g. 'album-covers') or a trained workdir (its latest checkpoint). Ignored on resume.
  config.train.init_from = config_dict.placeholder(str)

  config.loss = ml_collections.ConfigDict()
  config.loss.l1_weight = 1.0
  config.loss.l2_weight = 0.0
  # Per-pixel weights of the L1/L2 terms inside and outside the holes.
  config.loss.hole_weight = 1.0
  config.loss.valid_weight = 1.0
  # 0.05: the PConv/seed weight; features are in units of VGG activations.
  config.loss.perceptual_weight = 0.05
  config.loss.style_weight = 0.0
  config.loss.tv_weight = 0.1
  config.loss.perceptual_layers = ('relu1_2', 'relu2_2', 'relu3_3')
  # One weight per layer above.
  config.loss.perceptual_layer_weights = (1.0, 1.0, 1.0)
  # 'l1' or 'l2' distance between features.
  config.loss.perceptual_distance = 'l1'
  # Also compare the composite's features (as PConv does).
  config.loss.perceptual_on_composite = True
  # One VGG pass over [pred, comp, target] (True) or target separately (False: fewer
  # FLOPs, since the target needs no backward pass).
  config.loss.vgg_single_pass = False
  # Compute dtype of the VGG16 pass ('float32' or 'bfloat16'); None = model.dtype.
  config.loss.vgg_dtype = config_dict.placeholder(str)
  # Converted VGG16 weights (.npz); None = the cache (~/.cache/flax_inpaint or
  # $FLAX_INPAINT_CACHE). 'random' = random VGG (tests and benchmarks only).
  config.loss.vgg_weights = config_dict.placeholder(str)
  # Without weights: True fails before training; False trains without the term.
  config.loss.require_vgg = True

  config.masks = ml_collections.ConfigDict()
  # 'squares' (the seed's), 'boxes', 'strokes' (free-form brush strokes, as DeepFill v2 and
  # LaMa draw them), 'mixed' (a draw among the three per image, weights `mix`) or 'files'
  # (mask images from masks.dir, e.g. the NVIDIA irregular-mask set). All but 'files' are
  # drawn inside the jitted step from (seed, step).
  config.masks.kind = 'squares'
  config.masks.num_patches = 4
  config.masks.patch_size = 32
  # Inclusive ranges: rectangles per image, and each side as a fraction of the image side.
  config.masks.boxes_per_image = (1, 3)
  config.masks.box_side = (0.1, 0.6)
  # Inclusive ranges: strokes per image, vertices per random walk, brush width in px at
  # 256x256 (scaled with the image).
  config.masks.strokes_per_image = (1, 4)
  config.masks.stroke_vertices = (4, 12)
  config.masks.stroke_width = (5, 40)
  # kind='mixed': weights of squares, boxes, strokes.
  config.masks.mix = (1.0, 1.0, 1.0)
  # kind='files': a folder of mask images (any channel >= 128 = hole: white on black, as the
  # NVIDIA irregular-mask test set and --mode=inpaint), randomly flipped and turned by 90°.
  config.masks.dir = config_dict.placeholder(str)
  # True: the same holes every step (the seed's overfit test).
  config.masks.fixed = False

  config.data = ml_collections.ConfigDict()
  # 'samples' (scikit-image's photos), 'folder' (data.dir) or 'album_covers' (TFDS).
  config.data.source = 'album_covers'
  config.data.dir = config_dict.placeholder(str)
  # TFDS data_dir of the prepared album_covers set, and the Kaggle download for prepare.
  config.data.data_dir = config_dict.placeholder(str)
  config.data.manual_dir = config_dict.placeholder(str)
  config.data.train_split = 'train'
  config.data.eval_split = 'validation'
  config.data.image_size = 256
  # Size stored by `--mode=prepare` (the model's image_size resizes from it).
  config.data.prepare_size = 256
  # 'resize' the whole image or centre 'crop' to a square first (folder source).
  config.data.fit = 'crop'
  config.data.min_size = 32
  config.data.random_flip = True
  # Train on random crops of this side of each (flipped) image (None = whole images): holes
  # keep their full-image pixel sizes. Eval, sample grids and inference stay whole.
  config.data.crop_size = config_dict.placeholder(int)
  config.data.shuffle_buffer = 2048
  # Keep decoded images in memory after the first epoch.
  config.data.cache = False
  # Cap on the number of images read (None = all); the seed used 20k.
  config.data.max_images = config_dict.placeholder(int)

  config.discriminator = ml_collections.ConfigDict()
  # Adversarial training (LaMa, MI-GAN): a PatchGAN discriminator (nn/discriminator.py)
  # trained beside the model, for which the holes' pixels are fake and a photo is real.
  # Both weights 0 = no discriminator. `weight`: the model's non-saturating adversarial
  # term on its painted patches; `feature_matching_weight`: the squared distance of the
  # discriminator's activations on the repair and on the photo (LaMa: 10 and 100).
  config.discriminator.weight = 0.0
  config.discriminator.feature_matching_weight = 0.0
  # R1 gradient penalty on photos (half of it times the squared gradient norm of the sum
  # of the logits). LaMa's gp_coef for its PatchGAN: with one logit per 8x8 patch the
  # gradient is far larger than a one-logit GAN's, whose gamma is 10 (at 10, R1 was 40x the
  # discriminator's loss on the CPU probe and it learned nothing).
  config.discriminator.r1_weight = 0.001
  config.discriminator.lr = 1e-4
  # Stride-2 layers' widths: 3 give one logit per 8x8 pixels.
  config.discriminator.widths = (32, 64, 128)

  config.eval = ml_collections.ConfigDict()
  # A folder of eval images (sorted by path); None = the eval split of data.source.
  config.eval.dir = config_dict.placeholder(str)
  config.eval.num_images = 200
  config.eval.batch_size = 16
  config.eval.seed = 0
  # Classical baselines in the eval table (push-pull, OpenCV Telea/NS, PatchMatch, mean
  # fill, masked).
  config.eval.baselines = True
  # Which of them (None = all of evaluation/baselines.py's BASELINES): LPIPS costs a VGG16
  # pass per image and method, so a table that already has some (same eval set:
  # manifest.json) can skip them.
  config.eval.baseline_methods = config_dict.placeholder(tuple)
  # False: the baselines only, no checkpoint needed (a reference table for a data set).
  config.eval.model = True
  # Mask kinds evaluated (masks.KINDS but 'mixed'/'files'); the first gives metrics.json's
  # top-level entries. Each kind's masks are a pure function of (eval.seed, index, kind).
  config.eval.mask_kinds = ('squares',)
  # Converted VGG16 file with LPIPS' linear layers; None = loss.vgg_weights' file.
  config.eval.lpips_weights = config_dict.placeholder(str)

  config.inpaint = ml_collections.ConfigDict()
  # 'crop': a window around each group of holes (fast on large photos); 'resize': the same,
  # windows larger than the largest bucket scaled down to it and back; 'full': the whole image.
  config.inpaint.strategy = 'crop'
  # Context kept around each hole, in pixels (windows are at least data.image_size).
  config.inpaint.crop_margin = 64
  # Window sides run, as multiples of data.image_size (one compiled program each); the
  # smallest is also the smallest window: 0.75 x 256 = 192 px holds a 64 px hole with its
  # 64 px margin at 56% of the cost of 256 px (BENCHMARKS.md, CPU inference).
  config.inpaint.bucket_scales = (0.75, 1, 2, 4)

  config.serve = ml_collections.ConfigDict()
  # Largest upload accepted by --mode=serve: decoded pixels, and bytes.
  config.serve.max_pixels = 25_000_000
  config.serve.max_upload_mb = 50

  config.distributed = ml_collections.ConfigDict()
  # Call jax.distributed.initialize(); None = only when a cluster is detected.
  config.distributed.initialize = config_dict.placeholder(bool)
  config.distributed.coordinator_address = config_dict.placeholder(str)
  config.distributed.num_processes = config_dict.placeholder(int)
  config.distributed.process_id = config_dict.placeholder(int)

  config.sweep = ml_collections.ConfigDict()
  # --mode=lr_sweep: one short run per learning rate.
  config.sweep.lrs = (1e-4, 3e-4, 1e-3)

  # Persistent XLA compilation cache ('' = off): a second run skips compilation.
  config.compilation_cache_dir = '~/.cache/flax_inpaint/jax_cache'
  return config
