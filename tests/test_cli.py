"""main.py end to end on configs/test.py: train, resume, eval, signals, bad configs."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from conftest import run_main

CONFIG = '--config=configs/test.py'


def checkpoint_steps(workdir):
  folder = pathlib.Path(workdir) / 'checkpoints'
  return (
      sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.exists() else []
  )


def test_train_resume_and_eval(tmp_path):
  result = run_main([CONFIG], tmp_path)
  assert result.returncode == 0, result.stdout[-3000:]
  assert checkpoint_steps(tmp_path) == [2, 4]
  assert list(tmp_path.glob('events.out.tfevents.*'))
  samples = sorted(p.name for p in (tmp_path / 'samples').glob('*.png'))
  assert samples == ['step_0000000.png', 'step_0000002.png', 'step_0000004.png']
  assert (tmp_path / 'loss_curves.png').stat().st_size > 1000
  assert 'starting from step 0' in result.stdout
  # A quiet console: no backend probing, no hyperparameter dump (config.json has them).
  for noise in (
      'Unable to initialize backend',
      '[Hyperparameters]',
      'oneDNN',
      'generated new fontManager',
  ):
    assert noise not in result.stdout, noise

  resumed = run_main([CONFIG, '--config.train.num_steps=6'], tmp_path)
  assert resumed.returncode == 0, resumed.stdout[-3000:]
  assert 'Resuming from the checkpoint of step 4' in resumed.stdout
  assert checkpoint_steps(tmp_path)[-1] == 6
  history = [json.loads(l) for l in (tmp_path / 'train_metrics.jsonl').read_text().splitlines()]
  assert [h['step'] for h in history] == [2, 4, 6]

  evaluated = run_main([CONFIG, '--mode=eval'], tmp_path)
  assert evaluated.returncode == 0, evaluated.stdout[-3000:]
  metrics = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())
  assert set(metrics) >= {'ours', 'telea', 'ns', 'mean_fill', 'masked'}
  assert metrics['_meta']['step'] == 6
  for method in ('ours', 'telea'):
    assert 0 < metrics[method]['hole_psnr'] < 100
  assert (tmp_path / 'eval' / 'report.md').read_text().count('|') > 20
  assert list((tmp_path / 'eval').glob('grid_*.png'))


def start_training(workdir, *extra):
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  log = open(pathlib.Path(workdir).parent / f'{pathlib.Path(workdir).name}.log', 'w')
  proc = subprocess.Popen(
      [
          sys.executable,
          str(ROOT / 'main.py'),
          CONFIG,
          f'--workdir={workdir}',
          '--config.train.num_steps=100000',
          *extra,
      ],
      cwd=ROOT,
      env=env,
      stdout=log,
      stderr=subprocess.STDOUT,
  )
  return proc, log


def wait_for(predicate, proc, timeout=240):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if predicate():
      return
    assert proc.poll() is None, 'training exited early'
    time.sleep(0.2)
  proc.kill()
  pytest.fail('timed out waiting for training')


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_a_checkpoint_before_exiting(tmp_path, signum):
  workdir = tmp_path / 'w'
  proc, log = start_training(
      workdir, '--config.train.checkpoint_every=100000', '--config.train.sample_every=100000'
  )
  wait_for(lambda: (workdir / 'train_metrics.jsonl').exists(), proc)
  assert checkpoint_steps(workdir) == []
  proc.send_signal(signum)
  assert proc.wait(timeout=120) == 0
  log.close()
  output = (tmp_path / 'w.log').read_text()
  assert f'{signal.Signals(signum).name} received' in output
  steps = checkpoint_steps(workdir)
  assert len(steps) == 1 and steps[0] >= 2, (steps, output[-4000:])


def test_kill_9_leaves_the_previous_checkpoint_restorable(tmp_path):
  workdir = tmp_path / 'w'
  proc, log = start_training(workdir, '--config.train.checkpoint_every=2')
  wait_for(lambda: len(checkpoint_steps(workdir)) >= 2, proc)
  proc.kill()  # SIGKILL: no handler runs.
  proc.wait()
  log.close()
  latest = checkpoint_steps(workdir)[-1]
  resumed = run_main(
      [CONFIG, f'--config.train.num_steps={latest + 2}', '--config.train.checkpoint_every=2'],
      workdir,
  )
  assert resumed.returncode == 0, resumed.stdout[-3000:]
  assert f'Resuming from the checkpoint of step {latest}' in resumed.stdout
  assert checkpoint_steps(workdir)[-1] == latest + 2
  logged = [
      json.loads(l)['step'] for l in (workdir / 'train_metrics.jsonl').read_text().splitlines()
  ]
  assert logged == sorted(set(logged)) and logged[-1] == latest + 2  # No replayed lines.


def error_lines(output):
  return [line for line in output.splitlines() if line.startswith('error:')]


@pytest.mark.parametrize(
    'override,line',
    [
        (
            '--config.train.foo=1',
            "error: --config.train.foo=1: config.train has no field 'foo'; "
            'flax-inpaint MODE --help lists the fields of each mode',
        ),
        (
            '--config.trian.lr=1',
            "error: --config.trian.lr=1: config has no field 'trian' (did you "
            'mean "train"?); flax-inpaint MODE --help lists the fields of each mode',
        ),
        (
            '--config.train.lr=abc',
            'error: flag --config.train.lr=abc: could not convert string to ' "float: 'abc'",
        ),
        (
            '--config.data.image_size=34',
            'error: config.data.image_size=34 is not divisible by '
            "2^levels=4 of model.size='tiny'",
        ),
        (
            '--config.model.size=huge',
            "error: config.model.size='huge' is unknown; use one of "
            "['slim', 'small', 'medium', 'large'] ('tiny' is for tests)",
        ),
        (
            '--config.train.batch_size=6',
            'error: config.train.batch_size=6 (global) is not divisible ' 'by the 4 devices',
        ),
    ],
)
def test_a_bad_config_is_one_line_and_exit_2_before_compiling(tmp_path, override, line):
  result = run_main([CONFIG, override], tmp_path)
  assert result.returncode == 2, result.stdout[-3000:]
  assert error_lines(result.stdout) == [line]
  assert 'Traceback' not in result.stdout
  assert not (tmp_path / 'checkpoints').exists()


def test_readme_full_config_without_data_reaches_the_prepare_line(tmp_path):
  for mode in ('train', 'eval'):
    result = run_main(['--config=configs/full.py', f'--mode={mode}'], tmp_path)
    assert result.returncode == 2, result.stdout[-3000:]
    assert error_lines(result.stdout) == [
        'error: album_covers is not prepared: config.data.data_dir is not set. Run `python '
        'main.py --mode=prepare --config=configs/full.py --config.data.manual_dir='
        'KAGGLE_DOWNLOAD --config.data.data_dir=DIR` first and pass --config.data.data_dir=DIR,'
        ' or train on a folder: --config.data.source=folder --config.data.dir=FOLDER'
    ]


def test_a_config_unlike_the_runs_is_one_line(tmp_path):
  assert run_main([CONFIG, '--config.train.num_steps=2'], tmp_path).returncode == 0
  saved = json.loads((tmp_path / 'config.json').read_text())
  assert saved['model']['size'] == 'tiny' and saved['train']['num_steps'] == 2
  for mode in ('eval', 'train'):
    result = run_main([CONFIG, f'--mode={mode}', '--config.model.bottleneck=plain'], tmp_path)
    assert result.returncode == 2, result.stdout[-3000:]
    assert error_lines(result.stdout) == [
        f"error: config.model.bottleneck='plain' differs from 'dilated' in {tmp_path}/"
        'config.json, the run that trained these checkpoints: omit --config to use it, or use '
        'another --workdir'
    ]
  # Without --config, eval uses the run's own config.json.
  assert run_main(['--mode=eval'], tmp_path).returncode == 0


def test_an_explicit_override_beats_the_preset(tmp_path):
  result = run_main(
      [
          '--config=configs/pconv.py',
          '--config.loss.style_weight=0',
          '--config.model.size=tiny',
          '--config.data.source=samples',
          '--config.data.image_size=32',
          '--config.masks.patch_size=8',
          '--config.train.batch_size=4',
          '--config.train.num_steps=1',
          '--config.loss.vgg_weights=random',
          '--config.compilation_cache_dir=',
      ],
      tmp_path,
  )
  assert result.returncode == 0, result.stdout[-3000:]
  loss = json.loads((tmp_path / 'config.json').read_text())['loss']
  assert loss['style_weight'] == 0.0  # Set on the command line: wins.
  assert (loss['hole_weight'], loss['perceptual_weight'], loss['tv_weight']) == (6.0, 0.05, 0.1)


def test_a_diverged_run_exits_3_in_one_line(tmp_path):
  result = run_main(
      [
          CONFIG,
          '--config.train.lr=1e6',
          '--config.train.num_steps=200',
          '--config.train.log_every=1',
          '--config.train.checkpoint_every=1',
      ],
      tmp_path,
  )
  assert result.returncode == 3, result.stdout[-3000:]
  [line] = error_lines(result.stdout)
  assert line.startswith('error: training diverged at step ')
  assert 'kept the checkpoint of step ' in line and 'Traceback' not in result.stdout


def test_lr_sweep_marks_diverged_rates_and_never_picks_them(tmp_path):
  # 1e6 diverges at once; listed first, it must not be "lowest" for its NaN loss.
  result = run_main(
      [
          CONFIG,
          '--mode=lr_sweep',
          '--config.sweep.lrs=(1e6, 0.001, 0.01)',
          '--config.train.num_steps=4',
          '--config.train.log_every=1',
      ],
      tmp_path,
  )
  assert result.returncode == 0, result.stdout[-3000:]
  table = (tmp_path / 'lr_sweep.md').read_text()
  assert (tmp_path / 'lr_0.001' / 'config.json').exists()
  assert '| 1e+06 | diverged |' in table
  assert '| 0.001 |' in table and '| 0.01 |' in table
  best = table.split('Lowest final loss: lr ')[1].split()[0]
  assert best in ('0.001', '0.01')
  assert (tmp_path / 'lr_sweep.png').stat().st_size > 1000
  final = json.loads((tmp_path / 'lr_sweep.json').read_text())
  assert final['1000000.0'] is None and set(final) == {'1000000.0', '0.001', '0.01'}
  assert checkpoint_steps(tmp_path / 'lr_0.001') == [2, 4]


def test_missing_vgg_weights_fail_in_one_clear_line(tmp_path):
  result = run_main(
      [
          '--config=configs/full.py',
          '--config.data.source=samples',
          f'--config.loss.vgg_weights={tmp_path}/none.npz',
      ],
      tmp_path / 'w',
      env_extra={'FLAX_INPAINT_CACHE': str(tmp_path)},
  )
  assert result.returncode == 2
  assert 'error: No VGG16 weights at' in result.stdout
  assert 'python -m flax_inpaint.vgg fetch' in result.stdout
  assert 'Traceback' not in result.stdout


def test_a_missing_workdir_is_one_line(tmp_path):
  result = run_main(['--mode=eval'], tmp_path / 'nowhere')
  assert result.returncode == 2
  assert error_lines(result.stdout) == [
      f'error: --workdir={tmp_path}/nowhere: no such folder: train first (python main.py '
      '--config=FILE --workdir=DIR)'
  ]
