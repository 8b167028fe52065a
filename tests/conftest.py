"""Test setup: 4 virtual CPU devices (sharding), repo root importable, tiny helpers."""

import os
import pathlib
import sys
import tempfile

# Before JAX is imported anywhere: 4 CPU devices so every test exercises sharding.
os.environ['XLA_FLAGS'] = (
    os.environ.get('XLA_FLAGS', '') + ' --xla_force_host_platform_device_count=4'
).strip()
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ['JAX_PLATFORMS'] = 'cpu'
# No test reads the developer's weights cache (~/.cache/flax_inpaint): users' machines differ.
os.environ['FLAX_INPAINT_CACHE'] = tempfile.mkdtemp(prefix='flax_inpaint_cache_')
# One XLA compilation cache for the session, shared by the xdist workers (they inherit the
# controller's environment) and every subprocess: tests compile the same tiny programs many
# times (a tiny run of configs/test.py: 25.6 s cold, 12.3 s warm, 2-core CPU). Made by the
# controller, in a temporary folder; never the developer's ~/.cache.
if 'FLAX_INPAINT_TEST_JAX_CACHE' not in os.environ:
  os.environ['FLAX_INPAINT_TEST_JAX_CACHE'] = tempfile.mkdtemp(prefix='flax_inpaint_jax_cache_')
os.environ['JAX_COMPILATION_CACHE_DIR'] = os.environ['FLAX_INPAINT_TEST_JAX_CACHE']
os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
os.environ['JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES'] = '0'

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np
import pytest


def load_config(name):
  """configs/<name>.py's get_config(), loaded by path as main.py does."""
  from flax_inpaint.config import config_lib

  return config_lib.load_sibling(ROOT / 'configs' / 'x.py', name)


@pytest.fixture
def test_config():
  return load_config('test')


def build(config, **kwargs):
  """setup.build of the resolved config, as every mode does."""
  from flax_inpaint.train import setup
  from flax_inpaint.train import validation

  return setup.build(validation.resolve(config), **kwargs)


def random_batches(config, count=1000, seed=0):
  rng = np.random.default_rng(seed)
  size = config.data.image_size
  return (
      rng.integers(0, 256, (config.train.batch_size, size, size, 3), np.uint8) for _ in range(count)
  )


def train_tiny(config, workdir, hooks=()):
  """The real training loop on random images, no TensorFlow: the final state."""
  from flax_inpaint.train import loop
  from flax_inpaint.train import setup

  parts = build(config)
  return loop.run_loop(
      parts,
      setup.initial_state(parts, workdir),
      workdir,
      train_batches=random_batches(config),
      writer=loop.LogOnlyWriter(),
      hooks=hooks,
  )


def write_images(folder, count, size=40, seed=0):
  """`count` random-ish RGB PNGs of size x size (smooth, so JPEG round trips are close)."""
  from PIL import Image

  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  paths = []
  for i in range(count):
    base = rng.integers(0, 256, (4, 4, 3)).astype(np.uint8)
    image = Image.fromarray(base).resize((size, size), Image.Resampling.BILINEAR)
    path = folder / f'image_{i:03d}.png'
    image.save(path)
    paths.append(path)
  return paths


def run_argv(argv, timeout=300, env_extra=None):
  """Runs argv in a subprocess from the repository root, the package importable; returns
  the CompletedProcess (stdout and stderr merged in stdout)."""
  import subprocess

  env = dict(os.environ, PYTHONPATH=str(ROOT), **(env_extra or {}))
  return subprocess.run(
      argv,
      cwd=ROOT,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
      timeout=timeout,
  )


def run_main(args, workdir=None, timeout=300, env_extra=None):
  """Runs main.py in a subprocess; returns CompletedProcess (stdout+stderr merged)."""
  cmd = [sys.executable, str(ROOT / 'main.py')] + list(args)
  if workdir:
    cmd.append(f'--workdir={workdir}')
  return run_argv(cmd, timeout, env_extra)


@pytest.fixture(scope='session')
def tiny_run(tmp_path_factory):
  """A real run of configs/test.py through main.py (2 steps; writes config.json), trained
  once per test worker for the tests that repair, serve or export with it."""
  path = tmp_path_factory.mktemp('tiny_run')
  result = run_main(['--config=configs/test.py', '--config.train.num_steps=2'], path)
  assert result.returncode == 0, result.stdout[-3000:]
  return path


@pytest.fixture(scope='session')
def tiny_inpainter(tiny_run):
  from flax_inpaint import Inpainter

  return Inpainter.from_workdir(tiny_run)


# ----------------------------------------------------------------------------------
# The suite never changes the checkout's committed docs (README screenshots and the like).

_DOCS_STATUS = pytest.StashKey[str]()


def _docs_status() -> str:
  import subprocess

  return subprocess.run(
      ['git', 'status', '--porcelain', '--', 'docs'],
      cwd=ROOT,
      capture_output=True,
      text=True,
      check=False,
  ).stdout


def pytest_sessionstart(session):
  session.config.stash[_DOCS_STATUS] = _docs_status()


def pytest_sessionfinish(session, exitstatus):
  del exitstatus
  if hasattr(session.config, 'workerinput'):  # xdist: the controller checks once.
    return
  if _docs_status() != session.config.stash.get(_DOCS_STATUS, ''):
    print('\nerror: the test suite modified docs/:\n' + _docs_status())
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
