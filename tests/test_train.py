"""Train step: learns, no NaN, sharded == single device; checkpoints; config checks."""

import jax
import numpy as np
import pytest

from conftest import ROOT
from conftest import build
from conftest import load_config
from conftest import train_tiny
from flax_inpaint import errors
from flax_inpaint.config import config_lib
from flax_inpaint.nn import models
from flax_inpaint.train import checkpointing
from flax_inpaint.train import samples
from flax_inpaint.train import sharding
from flax_inpaint.train import steps
from flax_inpaint.train import validation


def batch(size=32, count=4, seed=0):
  rng = np.random.default_rng(seed)
  base = rng.integers(0, 256, (count, 4, 4, 3)).astype(np.float32)
  smooth = np.repeat(np.repeat(base, size // 4, 1), size // 4, 2)  # Learnable structure.
  return smooth.astype(np.uint8)


def run_steps(config, mesh, num_steps, images):
  parts = build(config, mesh=mesh)
  model, tx = parts.model, parts.tx
  state = steps.create_train_state(model, tx, config.data.image_size, 0, mesh)
  step = steps.make_train_step(model, tx, parts.config, mesh)
  global_images = sharding.global_batch(images, mesh)
  history = []
  for _ in range(num_steps):
    state, metrics = step(state, global_images, parts.vgg_params, jax.random.key(0))
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
  assert {h[steps.FIRST_NONFINITE_STEP] for h in history} == {steps.NO_NONFINITE_STEP}


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
  model = models.create_model(test_config.model, test_config.impl)
  tx = steps.make_optimizer(test_config.train)
  abstract = steps.abstract_train_state(model, tx, test_config.data.image_size, 0, mesh)
  restored = checkpointing.restore(checkpointing.make_manager(tmp_path, read_only=True), abstract)
  assert int(restored.step) == 2
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert jax.tree.structure(state) == jax.tree.structure(restored)


def test_restore_without_checkpoint_is_a_clear_error(tmp_path, test_config):
  mesh = sharding.make_mesh()
  model = models.create_model(test_config.model, test_config.impl)
  tx = steps.make_optimizer(test_config.train)
  abstract = steps.abstract_train_state(model, tx, 32, 0, mesh)
  with pytest.raises(errors.CheckpointError, match='No checkpoint'):
    checkpointing.restore(checkpointing.make_manager(tmp_path), abstract)


@pytest.mark.parametrize(
    'field,value,message',
    [
        ('model.size', 'huge', 'config.model.size'),
        ('data.image_size', 34, 'config.data.image_size=34 is not divisible'),
        ('train.batch_size', 6, 'config.train.batch_size=6 .* not divisible by the 4 devices'),
        ('model.dtype', 'float16', 'config.model.dtype'),
        ('impl.upsample', 'bilinear', "config.impl.upsample='bilinear' is unknown"),
        ('impl.pool', 'avg', "config.impl.pool='avg' is unknown"),
        ('impl.relu', 'gelu', "config.impl.relu='gelu' is unknown"),
        ('impl.unet_input_channels', 3, 'config.impl.unet_input_channels=3 must be >= 4'),
        ('impl.vgg_input_channels', 2, 'config.impl.vgg_input_channels=2 must be >= 3'),
        ('loss.perceptual_layers', ('relu1_2', 'relu9_1'), 'config.loss.perceptual_layer'),
        ('loss.vgg_dtype', 'float16', "config.loss.vgg_dtype='float16' is unknown"),
        ('inpaint.strategy', 'tile', "config.inpaint.strategy='tile' is unknown"),
        ('inpaint.bucket_scales', (2, 1), r'config.inpaint.bucket_scales=\(2, 1\) must be'),
        ('eval.mask_kinds', ('squares', 'blobs'), "config.eval.mask_kinds='blobs' is unknown"),
        ('serve.max_pixels', 0, 'config.serve.max_pixels=0 must be positive'),
    ],
)
def test_bad_config_names_the_field(test_config, field, value, message):
  section, name = field.split('.')
  test_config[section][name] = value
  with pytest.raises(errors.ConfigError, match=message):
    validation.validate(test_config)


def test_unknown_field_is_rejected(test_config):
  test_config.train.unlock()
  test_config.train.lrr = 1.0
  with pytest.raises(errors.ConfigError, match='config.train.lrr'):
    validation.validate(test_config)


def test_resolve_fills_vgg_dtype_and_freezes(test_config):
  test_config.model.dtype = 'bfloat16'
  resolved = validation.resolve(test_config)
  assert resolved.loss.vgg_dtype == 'bfloat16'
  test_config.loss.vgg_dtype = 'float32'
  assert validation.resolve(test_config).loss.vgg_dtype == 'float32'
  with pytest.raises(AttributeError):
    resolved.train.lr = 1.0  # Frozen: no function below the top changes it.


def test_missing_vgg_weights_turn_the_term_off_only_when_allowed(tmp_path, test_config):
  test_config.loss.vgg_weights = str(tmp_path / 'none.npz')
  with pytest.raises(Exception, match='No VGG16 weights at'):
    validation.resolve(test_config)
  test_config.loss.require_vgg = False
  resolved = validation.resolve(test_config)
  assert resolved.loss.perceptual_weight == 0.0 and resolved.loss.style_weight == 0.0
  assert build(test_config).vgg_params is None


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
  # Runs shorter than their warmup, or of one step, still get a schedule.
  train_config.num_steps, train_config.warmup_steps = 1, 0
  assert float(steps.make_schedule(train_config)(0)) == pytest.approx(1e-3)
  train_config.num_steps, train_config.warmup_steps = 5, 10
  assert float(steps.make_schedule(train_config)(4)) == pytest.approx(4e-4)


def test_gradient_clipping_is_in_the_chain_only_when_asked(test_config):
  params = {'w': np.ones(4, np.float32)}
  assert len(steps.make_optimizer(test_config.train).init(params)) == 1
  test_config.train.grad_clip = 1.0
  assert len(steps.make_optimizer(test_config.train).init(params)) == 2


def test_a_signal_at_any_point_of_an_iteration_still_saves(tmp_path, test_config):
  """The signal lands in a hook (after this step's save decision): the loop must run one
  more step and save it, never exit without a checkpoint."""
  import os
  import signal

  test_config.train.num_steps = 1000
  test_config.train.checkpoint_every = 1000
  send = lambda step: os.kill(os.getpid(), signal.SIGTERM) if step == 3 else None
  state = train_tiny(test_config, tmp_path, hooks=[send])
  assert int(state.step) == 4
  assert sorted(p.name for p in (tmp_path / 'checkpoints').iterdir() if p.name.isdigit()) == ['4']


SHIPPED = sorted(p.stem for p in (ROOT / 'configs').glob('*.py'))


def test_the_shipped_configs_are_these():
  assert SHIPPED == [
      'default',
      'freeform',
      'full',
      'lr_sweep',
      'overfit',
      'pconv',
      'reference',
      'release',
      'test',
  ]


@pytest.mark.parametrize('name', SHIPPED)
def test_every_shipped_config_is_valid(name):
  config = load_config(name)
  if config.data.source == 'album_covers':
    config.data.data_dir = '/tmp/tfds'  # Set on the command line by users.
  if config.data.source == 'folder':
    config.data.dir = '/tmp/covers'  # Set on the command line by users.
  validation.validate(config, num_devices=1)
  assert config.data.image_size % models.size_multiple(config.model) == 0


def test_the_library_never_imports_the_configs_folder():
  import subprocess
  import sys

  sources = '\n'.join(p.read_text() for p in (ROOT / 'flax_inpaint').rglob('*.py'))
  assert 'from configs' not in sources and 'import configs' not in sources
  # Loaded by path from another folder, a config file finds everything it imports.
  code = (
      'from flax_inpaint.config import config_lib; import sys; '
      f'c = config_lib.load_sibling("{ROOT}/configs/x.py", "reference"); '
      'print(c.train.batch_size, "configs" in sys.modules)'
  )
  out = subprocess.run([sys.executable, '-c', code], cwd='/', capture_output=True, text=True)
  assert out.stdout.split() == ['64', 'False'], out.stderr[-2000:]


def test_a_diverged_run_keeps_its_last_finite_checkpoint(tmp_path, test_config):
  test_config.train.lr = 1e6
  test_config.train.num_steps = 50
  test_config.train.log_every = 5
  test_config.train.checkpoint_every = 1
  with pytest.raises(errors.DivergedError) as raised:
    train_tiny(test_config, tmp_path)
  message = str(raised.value)
  bad_step = int(message.split('training diverged at step ')[1].split(' ')[0])
  saved = sorted(int(p.name) for p in (tmp_path / 'checkpoints').iterdir() if p.name.isdigit())
  assert saved and saved[-1] == bad_step - 1, (saved, message)
  assert f'kept the checkpoint of step {saved[-1]}' in message
  parts = build(test_config, training=False)
  from flax_inpaint.train import setup

  variables, step = setup.restore_run_variables(parts, tmp_path)
  assert step == saved[-1]
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(variables))


def test_every_run_writes_the_config_it_used(tmp_path, test_config):
  test_config.train.num_steps = 2
  test_config.loss.vgg_weights = str(tmp_path / 'none.npz')
  test_config.loss.require_vgg = False  # No weights: the run records perceptual weight 0.
  train_tiny(test_config, tmp_path)
  saved = config_lib.read_config_json(tmp_path)
  assert saved.loss.perceptual_weight == 0.0
  assert saved.loss.vgg_dtype == 'float32'
  assert saved.train.num_steps == 2 and saved.model.size == 'tiny'
  assert saved.masks.mix == (1.0, 1.0, 1.0)  # Tuples come back as tuples.
  other = test_config.copy_and_resolve_references()
  other.model.bottleneck = 'plain'
  with pytest.raises(errors.ConfigError) as raised:
    config_lib.check_matches_run(other, tmp_path)
  assert str(raised.value) == (
      f"config.model.bottleneck='plain' differs from 'dilated' in {tmp_path}/config.json, "
      'the run that trained these checkpoints: omit --config to use it, or use another '
      '--workdir'
  )


@pytest.mark.parametrize(
    'kind,mix,expected',
    [
        ('strokes', (1.0, 1.0, 1.0), ['strokes'] * 4),
        ('mixed', (1.0, 0.0, 2.0), ['squares', 'strokes', 'squares', 'strokes']),
        ('files', (1.0, 1.0, 1.0), ['squares'] * 4),
    ],
)
def test_sample_grids_show_the_training_kind(test_config, kind, mix, expected):
  test_config.masks.kind, test_config.masks.mix = kind, mix
  assert samples.sample_kinds(test_config, 4) == expected
  images = np.zeros((4, 32, 32, 3), np.uint8)
  holes = samples.sample_masks(images, test_config, jax.random.key(0))
  from flax_inpaint.data import masks

  for i, kind_i in enumerate(expected):
    np.testing.assert_array_equal(
        holes[i], masks.eval_mask(0, i, 32, 32, test_config.masks, kind_i)
    )
