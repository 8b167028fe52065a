"""Train state, optimizer, and the jitted train and repair steps.

Imports neither TensorFlow nor clu, so benchmarks run on a bare JAX image. One
`jax.jit` step serves 1 or N devices: the batch is sharded over the mesh's 'data'
axis, the state is replicated, and XLA inserts the gradient all-reduce.
"""

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from flax_inpaint.data import masks
from flax_inpaint.nn import models
from flax_inpaint.train import losses
from flax_inpaint.train import sharding


@flax.struct.dataclass
class TrainState:
  """Everything a checkpoint holds. No PRNG keys, no VGG params.

  `ema_params`: the params' exponential moving average (train.ema_decay), {} when off.
  `disc_params`, `disc_opt_state`: the discriminator's params and optimizer state
  (config.discriminator), {} when there is none.
  """

  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  ema_params: Any = flax.struct.field(default_factory=dict)
  disc_params: Any = flax.struct.field(default_factory=dict)
  disc_opt_state: Any = flax.struct.field(default_factory=dict)


def uses_ema(train_config) -> bool:
  """Whether the run keeps a moving average of its params (train.ema_decay > 0)."""
  return train_config.ema_decay > 0


def inference_params(state: TrainState):
  """The params a trained state repairs with: the moving average when the run keeps one."""
  return state.ema_params if state.ema_params else state.params


def inference_params_key(train_config) -> str:
  """The checkpoint entry that eval, inference and export read the params from."""
  return 'ema_params' if uses_ema(train_config) else 'params'


def make_schedule(train_config):
  """The learning rate per step: optional linear warmup, then constant or cosine to 0.

  The cosine runs from the end of the warmup to `num_steps` (at least one step, so a run
  shorter than its warmup is still a valid schedule).
  """
  lr, warmup = train_config.lr, train_config.warmup_steps
  if train_config.schedule == 'cosine':
    after = optax.cosine_decay_schedule(lr, max(train_config.num_steps - warmup, 1))
  else:
    after = optax.constant_schedule(lr)
  if not warmup:
    return after
  return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), after], [warmup])


def make_optimizer(train_config) -> optax.GradientTransformation:
  """Adam on `make_schedule`, after optional global-norm clipping."""
  chain = [optax.clip_by_global_norm(train_config.grad_clip)] if train_config.grad_clip else []
  return optax.chain(*chain, optax.adam(make_schedule(train_config)))


def init_state(
    model,
    tx,
    image_size: int,
    seed: int,
    ema: bool = False,
    params=None,
    discriminator=None,
    disc_tx=None,
) -> TrainState:
  """A fresh state (call under jit with out_shardings, or via jax.eval_shape). `params`:
  start from these (train.init_from) instead of random ones; the optimizer starts afresh.
  `discriminator`, `disc_tx`: a discriminator and its optimizer, initialised too."""
  variables = init_variables(model, image_size, seed)
  # Given params may lack the modules the model adds to them (config_lib.ADDABLE_FIELDS):
  # those keep their fresh init.
  params = variables['params'] if params is None else {**variables['params'], **params}
  disc_params = disc_opt_state = {}
  if discriminator is not None:
    images = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
    disc_params = discriminator.init(jax.random.key(seed + 1), images)['params']
    disc_opt_state = disc_tx.init(disc_params)
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      batch_stats=variables.get('batch_stats', {}),
      opt_state=tx.init(params),
      ema_params=params if ema else {},
      disc_params=disc_params,
      disc_opt_state=disc_opt_state,
  )


def _initialiser(model, tx, image_size, seed, ema, discriminator, disc_tx):
  """`init_state` with everything but the starting params bound."""
  return functools.partial(
      init_state, model, tx, image_size, seed, ema, discriminator=discriminator, disc_tx=disc_tx
  )


def create_train_state(
    model, tx, image_size, seed, mesh, ema=False, params=None, discriminator=None, disc_tx=None
):
  """Initialises the state directly as replicated arrays on the mesh."""
  init = _initialiser(model, tx, image_size, seed, ema, discriminator, disc_tx)
  return jax.jit(init, out_shardings=sharding.replicated(mesh))(params)


def abstract_train_state(
    model, tx, image_size, seed, mesh, ema=False, discriminator=None, disc_tx=None
):
  """Shapes, dtypes and shardings of the state, without allocating it."""
  shapes = jax.eval_shape(_initialiser(model, tx, image_size, seed, ema, discriminator, disc_tx))
  rep = sharding.replicated(mesh)
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=rep), shapes)


def init_variables(model, image_size: int, seed: int = 0):
  """The model's variables ({'params', maybe 'batch_stats'}) at a square input size."""
  images = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
  holes = jnp.zeros((1, image_size, image_size, 1), jnp.float32)
  return model.init(jax.random.key(seed), images, holes, train=False)


def abstract_variables(model, image_size, mesh):
  """Shapes, dtypes and shardings of {'params', 'batch_stats'}, without an optimizer."""
  shapes = jax.eval_shape(functools.partial(init_variables, model, image_size))
  shapes = {'params': shapes['params'], 'batch_stats': shapes.get('batch_stats', {})}
  rep = sharding.replicated(mesh)
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=rep), shapes)


def to_float_images(images):
  """uint8 [0, 255] from the host -> float32 [0, 1] on the device."""
  if images.dtype == jnp.uint8:
    return images.astype(jnp.float32) / 255.0
  return images.astype(jnp.float32)


# Metrics key of the first step whose loss was not finite (NO_NONFINITE_STEP when none):
# the loop reduces it with min, where every other metric is summed.
FIRST_NONFINITE_STEP = 'first_nonfinite_step'
NO_NONFINITE_STEP = 2**31 - 1


def to_float_holes(hole_mask):
  """Hole masks from the host (uint8/bool 0/1, or float) -> float32, 1 = hole."""
  if jnp.issubdtype(hole_mask.dtype, jnp.floating):
    return hole_mask.astype(jnp.float32)
  return (hole_mask > 0).astype(jnp.float32)


def make_train_step(model, tx, config, mesh, discriminator=None, disc_tx=None):
  """Builds the jitted step(state, images, vgg_params, base_key, hole_mask=None) ->
  (state, metrics).

  With a `discriminator` (and its optimizer `disc_tx`) the model's loss adds the
  adversarial and feature-matching terms of `config.discriminator`, and the step then
  updates the discriminator on the photos (real, with R1) and the repaired images (fake in
  the holes); a non-finite discriminator loss counts as a non-finite step.

  Without `hole_mask`, masks are drawn inside the step from fold_in(base_key, step) (or
  base_key in fixed mode), as `config.masks` says. With it (masks.kind='files': the input
  pipeline's masks, [B, H, W, 1], 1 = hole, sharded like the batch) those holes are used.
  `images` is a uint8 or float batch sharded over the mesh; `metrics` are device scalars
  (no host sync), FIRST_NONFINITE_STEP among them.

  Args:
    model: the U-Net.
    tx: the optimizer.
    config: the resolved config (`config_lib.resolve`): loss weights, masks, VGG16 options.
    mesh: the device mesh.
  """
  loss_config, mask_config = config.loss, config.masks
  fixed = bool(mask_config.fixed)
  use_batch_norm = model.norm == 'batch'
  ema_decay = float(config.train.ema_decay)
  vgg_options = losses.vgg_options(config)
  gan = config.discriminator
  scale = None if discriminator is None else 2 ** len(discriminator.widths)

  def adversarial_terms(params_of_disc, repaired, images, fake_holes):
    """The model's adversarial and feature-matching terms (weighted)."""
    fake_logits, fake_features = discriminator.apply({'params': params_of_disc}, repaired)
    _, real_features = discriminator.apply({'params': params_of_disc}, images)
    return {
        'adversarial': gan.weight
        * losses.generator_adversarial_loss(fake_logits=fake_logits, fake_holes=fake_holes),
        'feature_matching': gan.feature_matching_weight
        * losses.feature_matching_loss(fake_features=fake_features, real_features=real_features),
    }

  def discriminator_update(state, images, repaired, fake_holes):
    """(disc_params, disc_opt_state, its terms) after one step on photos and repairs."""

    def disc_loss_fn(disc_params):
      logits_of = lambda x: discriminator.apply({'params': disc_params}, x)[0]
      real_logits, pullback = jax.vjp(logits_of, images)
      (real_gradients,) = pullback(jnp.ones_like(real_logits))
      adversarial = losses.discriminator_loss(
          real_logits=real_logits, fake_logits=logits_of(repaired), fake_holes=fake_holes
      )
      r1 = gan.r1_weight * losses.r1_penalty(real_gradients)
      return adversarial + r1, {'discriminator': adversarial, 'r1': r1}

    grads, terms = jax.grad(disc_loss_fn, has_aux=True)(state.disc_params)
    updates, disc_opt_state = disc_tx.update(grads, state.disc_opt_state, state.disc_params)
    return optax.apply_updates(state.disc_params, updates), disc_opt_state, terms

  def step_hole_mask(hole_mask, state, base_key, batch, height, width):
    if hole_mask is not None:
      return to_float_holes(hole_mask)
    if mask_config.kind not in masks.DRAWN_KINDS:
      raise ValueError(
          f"masks.kind={mask_config.kind!r}: the train step needs the batch's "
          'hole masks (the input pipeline yields (images, holes) batches)'
      )
    key = masks.step_mask_key(base_key, state.step, fixed=fixed)
    # On crops (data.crop_size) the holes keep the whole image's pixel sizes.
    full_side = config.data.image_size if (height, width) != (config.data.image_size,) * 2 else 0
    return masks.sample_masks(key, batch, height, width, mask_config, full_side)

  # None for drawn kinds: jit takes None as an empty pytree, so one signature serves both.
  def step_fn(state, images, vgg_params, base_key, hole_mask=None):
    images = to_float_images(images)
    batch, height, width, _ = images.shape
    hole_mask = step_hole_mask(hole_mask, state, base_key, batch, height, width)
    hole_mask = jax.lax.with_sharding_constraint(hole_mask, sharding.batch_sharding(mesh))
    masked = models.mask_image(images, hole_mask)

    def loss_fn(params):
      variables = {'params': params, 'batch_stats': state.batch_stats}
      if use_batch_norm:
        prediction, updates = model.apply(
            variables, masked, hole_mask, train=True, mutable=['batch_stats']
        )
      else:
        prediction, updates = model.apply(variables, masked, hole_mask, train=True), {}
      loss, terms = losses.total_loss(
          prediction=prediction,
          target=images,
          hole_mask=hole_mask,
          loss_config=loss_config,
          vgg_params=vgg_params,
          vgg_options=vgg_options,
      )
      repaired = models.composite(prediction, images, hole_mask)
      if discriminator is not None:
        extra = adversarial_terms(state.disc_params, repaired, images, fake_holes)
        loss = loss + sum(extra.values())
        terms = {**terms, **extra, 'loss': loss}
      return loss, (terms, updates, repaired)

    fake_holes = None if discriminator is None else losses.hole_fraction_at(hole_mask, scale)
    grads, (terms, updates, repaired) = jax.grad(loss_fn, has_aux=True)(state.params)
    param_updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, param_updates)
    finite = jnp.isfinite(terms['loss'])
    if discriminator is not None:
      disc_params, disc_opt_state, disc_terms = discriminator_update(
          state, images, jax.lax.stop_gradient(repaired), fake_holes
      )
      state = state.replace(disc_params=disc_params, disc_opt_state=disc_opt_state)
      terms = {**terms, **disc_terms}
      finite = finite & jnp.isfinite(disc_terms['discriminator'] + disc_terms['r1'])
    new_state = state.replace(
        step=state.step + 1,
        params=params,
        opt_state=opt_state,
        batch_stats=updates.get('batch_stats', state.batch_stats),
        ema_params=optax.incremental_update(params, state.ema_params, 1.0 - ema_decay)
        if ema_decay
        else state.ema_params,
    )
    first_nonfinite = jnp.where(finite, NO_NONFINITE_STEP, state.step + 1)
    metrics = {**terms, 'grad_norm': optax.tree.norm(grads), FIRST_NONFINITE_STEP: first_nonfinite}
    return new_state, metrics

  rep = sharding.replicated(mesh)
  return jax.jit(step_fn, donate_argnums=(0,), out_shardings=(rep, rep))


def _infer(model, variables, images, hole_mask, fill=None):
  """(float images, float hole mask, prediction) of one inference pass (no batch-norm
  updates): the images with their holes blacked out, as in training. `fill`: the model's
  coarse fill, computed beforehand (None: by the model)."""
  images, hole_mask = to_float_images(images), to_float_holes(hole_mask)
  masked = models.mask_image(images, hole_mask)
  prediction = model.apply(variables, masked, hole_mask, train=False, fill=fill)
  return images, hole_mask, prediction


def make_eval_repair_fn(model):
  """Jitted (params, batch_stats, float images in [0, 1], hole_mask) -> (prediction,
  composite): what eval and the sample grids score."""

  @jax.jit
  def repair(params, batch_stats, images, hole_mask):
    images, hole_mask, prediction = _infer(
        model, {'params': params, 'batch_stats': batch_stats}, images, hole_mask
    )
    return prediction, models.composite(prediction, images, hole_mask)

  return repair


def make_uint8_predict_fn(model):
  """Jitted (variables, images uint8 [B, H, W, 3], holes bool [B, H, W], fill=None) ->
  float32 [B, H, W, 3] predictions: the inference program (one compile per input shape).
  `fill`: the coarse fill from `fills.pushpull_uint8` (None: computed inside)."""

  @jax.jit
  def predict(variables, images, holes, fill=None):
    return _infer(model, variables, images, holes[..., None], fill)[2]

  return predict


def model_repairer(components, variables, batch_size):
  """f(float images, masks) -> composites, in batches of `batch_size`: the model as a method
  of the eval tables."""
  repair = make_eval_repair_fn(components.model)

  def run(images, hole_masks):
    outputs = []
    for start in range(0, len(images), batch_size):
      _, comp = repair(
          variables['params'],
          variables['batch_stats'],
          images[start : start + batch_size],
          hole_masks[start : start + batch_size],
      )
      outputs.append(np.asarray(comp))
    return np.concatenate(outputs)

  return run
