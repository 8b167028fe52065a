"""Adversarial training: the PatchGAN's losses against closed forms, a discriminator that
trains beside the model, resumes from its checkpoint, stops a diverged run, and starts
beside a release's params."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import build
from conftest import load_config
from conftest import train_tiny
from flax_inpaint import errors
from flax_inpaint.nn import discriminator as discriminator_lib
from flax_inpaint.train import losses
from flax_inpaint.train import setup
from flax_inpaint.weights import pretrained

LN2 = np.log(2.0)


def softplus(x):
  return np.log1p(np.exp(x))


def test_hole_fraction_per_patch():
  hole = np.zeros((1, 4, 8, 1), np.float32)
  hole[0, :2, :2] = 1.0  # A whole 2x2 patch, and one pixel of another.
  hole[0, 3, 7] = 1.0
  fractions = np.asarray(losses.hole_fraction_at(jnp.asarray(hole), 2))[0, ..., 0]
  np.testing.assert_array_equal(fractions, [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.25]])


def test_discriminator_loss_on_known_logits():
  real = jnp.zeros((1, 1, 2, 1))  # softplus(-0) = ln 2 each.
  fake = jnp.asarray([[[[2.0], [-3.0]]]])
  holes = jnp.asarray([[[[1.0], [0.25]]]])
  expected = LN2 + np.mean(
      [softplus(2.0), 0.25 * softplus(-3.0) + 0.75 * softplus(3.0)]
  )  # Fake in its hole share, real in the rest.
  got = losses.discriminator_loss(real_logits=real, fake_logits=fake, fake_holes=holes)
  np.testing.assert_allclose(float(got), expected, rtol=1e-6)


def test_generator_loss_counts_only_painted_patches():
  fake = jnp.asarray([[[[1.0], [-5.0], [40.0]]]])
  holes = jnp.asarray([[[[1.0], [0.5], [0.0]]]])  # The last patch is all photo.
  expected = (softplus(-1.0) + 0.5 * softplus(5.0)) / 1.5
  got = losses.generator_adversarial_loss(fake_logits=fake, fake_holes=holes)
  np.testing.assert_allclose(float(got), expected, rtol=1e-6)
  no_holes = losses.generator_adversarial_loss(fake_logits=fake, fake_holes=jnp.zeros_like(holes))
  assert float(no_holes) == 0.0


def test_feature_matching_and_r1_closed_forms():
  fake = [jnp.ones((1, 2, 2, 1)), jnp.zeros((1, 1, 1, 3))]
  real = [jnp.zeros((1, 2, 2, 1)), jnp.full((1, 1, 1, 3), 2.0)]
  got = losses.feature_matching_loss(fake_features=fake, real_features=real)
  np.testing.assert_allclose(float(got), (1.0 + 4.0) / 2)
  gradients = jnp.stack([jnp.full((2, 2, 3), 1.0), jnp.full((2, 2, 3), 2.0)])
  # Half the squared norm per image (12 and 48), averaged over the 2 images.
  np.testing.assert_allclose(float(losses.r1_penalty(gradients)), 0.5 * (12 + 48) / 2)


def test_the_discriminator_judges_8x8_patches():
  model = discriminator_lib.PatchDiscriminator()
  images = jnp.zeros((2, 32, 48, 3))
  params = model.init(jax.random.key(0), images)
  logits, features = model.apply(params, images)
  assert logits.shape == (2, 4, 6, 1) and discriminator_lib.logits_scale() == 8
  assert [f.shape[-1] for f in features] == [32, 64, 128, 256]


def gan_config(config):
  config.discriminator.weight = 1.0
  config.discriminator.feature_matching_weight = 10.0
  config.train.num_steps = 2
  config.train.log_every = 1
  config.train.checkpoint_every = 2
  return config


def test_the_discriminator_trains_beside_the_model_and_resumes(tmp_path, test_config):
  config = gan_config(test_config)
  parts = build(config)
  fresh = setup.initial_state(parts, tmp_path / 'fresh')
  state = train_tiny(config, tmp_path / 'run')
  assert int(state.step) == 2
  moved = [
      float(np.abs(np.asarray(a) - np.asarray(b)).max())
      for a, b in zip(jax.tree.leaves(fresh.disc_params), jax.tree.leaves(state.disc_params))
  ]
  assert moved and min(moved) > 0  # Every discriminator layer learned.
  from flax_inpaint.train import loop

  logged = loop.read_history(tmp_path / 'run')[-1]
  assert {'train/adversarial', 'train/feature_matching', 'train/discriminator', 'train/r1'} <= set(
      logged
  )
  # The checkpoint holds the discriminator and its optimizer: a resumed run starts from them.
  resumed = setup.initial_state(parts, tmp_path / 'run')
  assert jax.tree.structure(resumed) == jax.tree.structure(state)
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert jax.tree.leaves(resumed.disc_opt_state)


def test_a_diverged_discriminator_stops_the_run(tmp_path, test_config):
  config = gan_config(test_config)
  config.discriminator.r1_weight = float('inf')  # The model's loss stays finite.
  with pytest.raises(errors.DivergedError, match=r'^training diverged at step 1 '):
    train_tiny(config, tmp_path)
  assert not (tmp_path / 'checkpoints' / '2').exists()


def test_bad_discriminator_fields_are_one_line(test_config):
  from flax_inpaint.train import validation

  test_config.discriminator.widths = (32, 64, 128, 256, 512, 1024)
  with pytest.raises(errors.ConfigError) as raised:
    validation.validate(test_config)
  assert str(raised.value) == (
      'config.discriminator.widths=(32, 64, 128, 256, 512, 1024): 6 halvings do not divide '
      'the training side 32; use fewer widths'
  )
  test_config.discriminator.widths = (32,)
  test_config.discriminator.weight = -1.0
  with pytest.raises(errors.ConfigError, match=r'^config.discriminator.weight=-1.0 must be >= 0$'):
    validation.validate(test_config)


def test_init_from_the_release_with_a_fresh_discriminator(tmp_path):
  config = load_config('release')
  config.data.source, config.data.crop_size = 'samples', None
  config.data.image_size, config.masks.patch_size = 64, 8
  config.train.batch_size = 4
  config.train.init_from = pretrained.DEFAULT_RELEASE
  config.discriminator.weight = 1.0
  config.compilation_cache_dir = ''
  parts = build(config)
  state = setup.initial_state(parts, tmp_path)
  released, _ = pretrained.read_params(pretrained.release_dir(pretrained.DEFAULT_RELEASE))
  for a, b in zip(jax.tree.leaves(released), jax.tree.leaves(state.params)):
    np.testing.assert_array_equal(np.asarray(b), a)
  assert jax.tree.leaves(state.disc_params) and int(state.step) == 0
