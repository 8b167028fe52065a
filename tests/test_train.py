"""Train step: learns, no NaN, sharded == single device; checkpoints; config checks."""

import jax
import numpy as np
import pytest

from flax_inpaint import checkpointing
from flax_inpaint import config_validation
from flax_inpaint import models
from flax_inpaint import sharding
from flax_inpaint import steps
from flax_inpaint import train


def batch(size=32, count=4, seed=0):
  rng = np.random.default_rng(seed)
  base = rng.integers(0, 256, (count, 4, 4, 3)).astype(np.float32)
  smooth = np.repeat(np.repeat(base, size // 4, 1), size // 4, 2)  # Learnable structure.
  return smooth.astype(np.uint8)


def run_steps(config, mesh, num_steps, images):
  model = models.create_model(config.model)
  tx = steps.make_optimizer(config.train)
  vgg_params, loss_config = train.load_vgg_params(config.loss)
  state = steps.create_train_state(model, tx, config.data.image_size, 0, mesh)
  step = steps.make_train_step(model, tx, loss_config, config.masks, mesh)
  global_images = sharding.global_batch(images, mesh)
  history = []
  for _ in range(num_steps):
    state, metrics = step(state, global_images, vgg_params, jax.random.key(0))
    history.append({k: float(v) for k, v in metrics.items()})
  return state, history


def test_step_lowers_the_loss_without_nan(test_config):
  test_config.masks.fixed = True
  test_config.train.lr = 1e-2
  state, history = run_steps(test_config, sharding.make_mesh(), 40, batch())
  losses = [h['loss'] for h in history]
  assert all(np.isfinite(v) for h in history for v in h.values())
  # The tiny 4-8 U-Net learns slowly; 40 steps on one batch take >10% off the loss.
  assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5]), losses
  assert int(state.step) == 40
  assert set(history[0]) >= {'l1', 'tv', 'perceptual', 'loss', 'grad_norm'}


def test_sharded_step_matches_single_device(test_config):
  assert jax.device_count() == 4
  images = batch()
  sharded, h4 = run_steps(test_config, sharding.make_mesh(), 3, images)
  single, h1 = run_steps(test_config, sharding.make_mesh(jax.devices()[:1]), 3, images)
  assert len(sharded.params['Conv_0']['kernel'].sharding.device_set) == 4
  for a, b in zip(jax.tree.leaves(sharded.params), jax.tree.leaves(single.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=1e-6)
  np.testing.assert_allclose([h['loss'] for h in h4], [h['loss'] for h in h1], rtol=1e-5)


def test_batch_norm_variant_updates_stats(test_config):
  test_config.model.norm = 'batch'
  state, history = run_steps(test_config, sharding.make_mesh(), 2, batch())
  stats = jax.tree.leaves(state.batch_stats)
  assert stats and all(np.isfinite(np.asarray(s)).all() for s in stats)
  assert any(np.abs(np.asarray(s)).sum() > 0 for s in stats)
  assert np.isfinite(history[-1]['loss'])


def test_checkpoint_round_trip(tmp_path, test_config):
  mesh = sharding.make_mesh()
  state, _ = run_steps(test_config, mesh, 2, batch())
  manager = checkpointing.make_manager(tmp_path)
  checkpointing.save(manager, 2, state)
  manager.wait_until_finished()
  assert (tmp_path / 'checkpoints' / '2').is_dir()
  model = models.create_model(test_config.model)
  tx = steps.make_optimizer(test_config.train)
  abstract = steps.abstract_train_state(model, tx, test_config.data.image_size, 0, mesh)
  restored = checkpointing.restore(checkpointing.make_manager(tmp_path, read_only=True),
                                   abstract)
  assert int(restored.step) == 2
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert jax.tree.structure(state) == jax.tree.structure(restored)


def test_restore_without_checkpoint_is_a_clear_error(tmp_path, test_config):
  mesh = sharding.make_mesh()
  model = models.create_model(test_config.model)
  tx = steps.make_optimizer(test_config.train)
  abstract = steps.abstract_train_state(model, tx, 32, 0, mesh)
  with pytest.raises(FileNotFoundError, match='No checkpoint'):
    checkpointing.restore(checkpointing.make_manager(tmp_path), abstract)


@pytest.mark.parametrize('field,value,message', [
    ('model.size', 'huge', 'config.model.size'),
    ('data.image_size', 34, 'config.data.image_size=34 is not divisible'),
    ('train.batch_size', 6, 'config.train.batch_size=6 .* not divisible by the 4 devices'),
    ('model.dtype', 'float16', 'config.model.dtype'),
    ('model.upsample_impl', 'bilinear', "config.model.upsample_impl='bilinear' is unknown"),
    ('model.pool_impl', 'avg', "config.model.pool_impl='avg' is unknown"),
    ('model.relu_impl', 'gelu', "config.model.relu_impl='gelu' is unknown"),
    ('model.input_channels', 3, 'config.model.input_channels=3 must be >= 4'),
    ('loss.vgg_input_channels', 2, 'config.loss.vgg_input_channels=2 must be >= 3'),
    ('loss.perceptual_layers', ('relu1_2', 'relu9_1'), 'config.loss.perceptual_layer'),
])
def test_bad_config_names_the_field(test_config, field, value, message):
  section, name = field.split('.')
  test_config[section][name] = value
  with pytest.raises(config_validation.ConfigError, match=message):
    config_validation.validate(test_config)


def test_unknown_field_is_rejected(test_config):
  test_config.train.unlock()
  test_config.train.lrr = 1.0
  with pytest.raises(config_validation.ConfigError, match='config.train.lrr'):
    config_validation.validate(test_config)


def test_learning_rate_schedules(test_config):
  train_config = test_config.train
  train_config.lr, train_config.num_steps = 1e-3, 100
  assert float(steps.make_schedule(train_config)(50)) == pytest.approx(1e-3)
  train_config.warmup_steps = 10
  warm = steps.make_schedule(train_config)
  assert [float(warm(s)) for s in (0, 5, 10, 60)] == pytest.approx([0, 5e-4, 1e-3, 1e-3])
  train_config.schedule = 'cosine'
  cosine = steps.make_schedule(train_config)
  assert float(cosine(0)) == 0.0
  assert float(cosine(10)) == pytest.approx(1e-3)
  assert float(cosine(55)) == pytest.approx(5e-4, rel=1e-3)  # Half way down the cosine.
  assert float(cosine(100)) == pytest.approx(0.0, abs=1e-9)


def test_gradient_clipping_is_in_the_chain_only_when_asked(test_config):
  params = {'w': np.ones(4, np.float32)}
  assert len(steps.make_optimizer(test_config.train).init(params)) == 1
  test_config.train.grad_clip = 1.0
  assert len(steps.make_optimizer(test_config.train).init(params)) == 2


def test_a_signal_at_any_point_of_an_iteration_still_saves(tmp_path, test_config):
  """The signal lands in a hook (after this step's save decision): the loop must run one
  more step and save it, never exit without a checkpoint."""
  import os  # pylint: disable=g-import-not-at-top
  import signal  # pylint: disable=g-import-not-at-top
  test_config.train.num_steps = 1000
  test_config.train.checkpoint_every = 1000
  rng = np.random.default_rng(0)
  batches = (rng.integers(0, 256, (4, 32, 32, 3), np.uint8) for _ in range(1000))
  vgg_params, loss_config = train.load_vgg_params(test_config.loss)
  send = lambda step: os.kill(os.getpid(), signal.SIGTERM) if step == 3 else None
  state = train.run_loop(test_config, tmp_path, mesh=sharding.make_mesh(),
                         train_batches=batches, writer=train.LogOnlyWriter(),
                         vgg_params=vgg_params, loss_config=loss_config, hooks=[send])
  assert int(state.step) == 4
  assert sorted(p.name for p in (tmp_path / 'checkpoints').iterdir() if p.name.isdigit()) == ['4']


@pytest.mark.parametrize('name', ['default', 'overfit', 'full', 'reference', 'lr_sweep', 'test'])
def test_every_shipped_config_is_valid(name):
  import importlib  # pylint: disable=g-import-not-at-top
  config = importlib.import_module(f'configs.{name}').get_config()
  config_validation.validate(config, num_devices=1)
  assert config.data.image_size % models.size_multiple(config.model) == 0
