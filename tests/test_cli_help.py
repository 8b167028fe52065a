"""The command line a new user meets: help, config files that cannot load, overrides of a
run's config.json, a quiet console (issue 21)."""

import sys

import numpy as np
from PIL import Image
import pytest

from conftest import ROOT
from conftest import run_argv
from conftest import run_main
from flax_inpaint import cli


def run_installed(args, timeout=300):
  """The `flax-inpaint` console command (the entry point pip installs: cli.run)."""
  code = 'import sys; from flax_inpaint import cli; cli.run(["flax-inpaint"] + sys.argv[1:])'
  return run_argv([sys.executable, '-c', code] + list(args), timeout)


def error_lines(output):
  return [line for line in output.splitlines() if line.startswith('error:')]


MODE_LINES = [
    '  train     train a model on a config (resumes automatically in the same workdir)',
    '  eval      evaluate a model against the classical fills (PSNR, SSIM, LPIPS)',
    '  prepare   build the album-covers TFDS dataset from the Kaggle download',
    '  inpaint   repair your own image files (the released model, or a trained workdir)',
    '  serve     the local web page (and its API) to paint holes and repair them',
    '  export    write a model as one file that needs only jax and numpy',
    '  lr_sweep  the learning-rate search: one short run per rate',
]


@pytest.mark.parametrize(
    'runner,command',
    [(run_main, 'python main.py --mode=MODE'), (run_installed, 'flax-inpaint MODE')],
)
def test_help_lists_the_modes_and_exits_0(runner, command):
  result = runner(['--help'])
  assert result.returncode == 0, result.stdout
  assert result.stdout.splitlines() == (
      [f'usage: {command} [flags]', '', 'modes:']
      + MODE_LINES
      + ['', f"{command} --help: the flags of a mode and an example; --helpfull: every mode's."]
  )


def test_the_bare_command_lists_the_modes_and_exits_2():
  result = run_installed([])
  assert result.returncode == 2, result.stdout
  assert result.stdout == run_installed(['--help']).stdout
  assert result.stdout.splitlines()[2:3] + result.stdout.splitlines()[3:10] == (
      ['modes:'] + MODE_LINES
  )


@pytest.mark.parametrize(
    'runner,args,command',
    [
        (run_main, ['--mode=inpaint', '--help'], 'python main.py --mode=inpaint'),
        (run_installed, ['inpaint', '--help'], 'flax-inpaint inpaint'),
        (run_installed, ['inpaint', '-h'], 'flax-inpaint inpaint'),
    ],
)
def test_a_modes_help_gives_its_flags_and_an_example(runner, args, command):
  result = runner(args)
  assert result.returncode == 0, result.stdout
  lines = result.stdout.splitlines()
  assert lines[:6] == [
      f'{command}: repair your own image files (the released model, or a trained workdir)',
      '',
      'example:',
      f'  {command} --input=photos/ --mask=masks/ --output=repaired/',
      '',
      'flags:',
  ]
  flag_lines = lines[6 : 6 + lines[6:].index('')]
  assert [line.split()[0] for line in flag_lines] == [
      '--input',
      '--mask',
      '--output',
      '--example',
      '--model',
      '--workdir',
      '--mask_threshold',
      '--max_pixels',
      '--overwrite',
      '--config',
  ]
  assert lines[12] == '  --mask_threshold  mask pixels >= this are holes (default: 128)'
  # Only inpaint's meaning of a flag that other modes share, and the config fields it
  # reads, with their defaults, not a source path.
  assert '  --output          the folder for the repaired PNGs' in flag_lines
  assert lines[6 + len(flag_lines) :] == [
      '',
      'config fields (--config.FIELD=VALUE), with their defaults:',
      '  inpaint.bucket_scales = (0.75, 1, 2, 4)',
      '  inpaint.crop_margin = 64',
      "  inpaint.strategy = 'crop'",
  ]


@pytest.mark.parametrize(
    'mode,output_line',
    [
        ('export', '  --output          the file to write, e.g. model.fipx'),
        (
            'eval',
            "  --output          the folder for a released model's tables (a run's go to "
            'WORKDIR/eval)',
        ),
    ],
)
def test_each_modes_help_gives_its_own_meaning_of_a_flag(mode, output_line):
  cli.define_flags()
  text = cli.help_text(['flax-inpaint'], mode)
  assert output_line in text.splitlines()
  flag_lines = [line for line in text.splitlines() if line.startswith('  --')]
  others = [m for m in cli.MODES if m != mode]
  assert not [line for line in flag_lines if any(f'{m}:' in line for m in others)]
  assert 'schema.py' not in text


def test_helpfull_is_every_modes_help():
  result = run_main(['--helpfull'])
  assert result.returncode == 0, result.stdout
  # Each `--help` as main.py prints it (the same entry, exit 0), in one process: one start-up
  # instead of eight.
  code = (
      'import contextlib, io, sys\n'
      'from flax_inpaint import cli\n'
      'outputs = []\n'
      'for args in [["--help"]] + [[f"--mode={m}", "--help"] for m in cli.MODES]:\n'
      '  buffer = io.StringIO()\n'
      '  with contextlib.redirect_stdout(buffer):\n'
      '    try:\n'
      f'      cli.run([{str(ROOT / "main.py")!r}] + args)\n'
      '    except SystemExit as e:\n'
      '      assert e.code == 0, e.code\n'
      '  outputs.append(buffer.getvalue())\n'
      'sys.stdout.write("\\n".join(outputs))\n'
  )
  helps = run_argv([sys.executable, '-c', code])
  assert helps.returncode == 0, helps.stdout[-3000:]
  assert result.stdout == helps.stdout


def test_every_mode_has_help():
  assert set(cli.MODE_FLAGS) == set(cli.MODES) == set(cli.EXAMPLES)
  result = run_installed(['nope', '--help'])
  assert result.returncode == 2
  assert result.stdout.splitlines() == [
      "error: no mode 'nope'; modes are train, eval, prepare, inpaint, serve, export, lr_sweep"
  ]


@pytest.fixture
def broken_configs(tmp_path):
  (tmp_path / 'raises.py').write_text('def get_config():\n  raise RuntimeError("boom")\n')
  (tmp_path / 'empty.py').write_text('x = 1\n')
  (tmp_path / 'typo.py').write_text('def get_config(:\n')
  return tmp_path


def test_config_files_that_cannot_give_a_config_are_one_line(broken_configs, tmp_path):
  cases = {
      'configs/nope.py': 'error: --config=configs/nope.py: no such file (config files are in '
      'configs/, e.g. --config=configs/full.py)',
      f'{broken_configs}/raises.py': f'error: --config={broken_configs}/raises.py: loading it '
      'raised RuntimeError: boom (line 2)',
      f'{broken_configs}/empty.py': f'error: --config={broken_configs}/empty.py: defines no '
      'get_config(); a config file returns its ConfigDict from '
      'get_config() (see configs/test.py)',
      f'{broken_configs}/typo.py': f'error: --config={broken_configs}/typo.py: loading it '
      'raised SyntaxError: invalid syntax (line 1)',
  }
  for config, line in cases.items():
    result = run_main([f'--config={config}'], tmp_path / 'w')
    assert result.returncode == 2, result.stdout[-3000:]
    assert result.stdout.splitlines() == [line]


@pytest.fixture
def one_image(tmp_path):
  Image.fromarray(np.full((40, 40, 3), 120, np.uint8)).save(tmp_path / 'a.png')
  hole = np.zeros((40, 40), np.uint8)
  hole[10:20, 10:20] = 255
  Image.fromarray(hole).save(tmp_path / 'mask.png')
  return [
      '--mode=inpaint',
      f'--input={tmp_path}/a.png',
      f'--mask={tmp_path}/mask.png',
      f'--output={tmp_path}/out',
  ]


def test_overrides_without_config_apply_to_the_runs_config_json(tiny_run, one_image):
  # The value reaches the config: an unknown strategy is the config's own one-line error.
  result = run_main(one_image + ['--config.inpaint.strategy=tile'], tiny_run)
  assert result.returncode == 2
  assert error_lines(result.stdout) == [
      "error: config.inpaint.strategy='tile' is unknown; use one of ['crop', 'resize', " "'full']"
  ]
  result = run_main(one_image + ['--config.inpaint.stratgy=full'], tiny_run)
  assert result.returncode == 2
  assert error_lines(result.stdout) == [
      "error: --config.inpaint.stratgy=full: config.inpaint has no field 'stratgy' (did you "
      'mean "strategy"?); flax-inpaint MODE --help lists the fields of each mode'
  ]
  result = run_main(one_image + ['--config.inpaint.strategy=full'], tiny_run)
  assert result.returncode == 0, result.stdout[-3000:]


def test_overrides_without_config_in_train_say_config_is_needed(tmp_path):
  result = run_main(['--config.train.lr=1e-3'], tmp_path)
  assert result.returncode == 2
  assert result.stdout.splitlines() == [
      'error: --config.train.lr=1e-3: --mode=train needs --config=FILE (e.g. '
      'configs/full.py) for overrides to apply to'
  ]


def test_the_console_shows_what_a_user_needs(tiny_run, one_image):
  result = run_main(one_image, tiny_run)
  assert result.returncode == 0, result.stdout[-3000:]
  lines = result.stdout.splitlines()
  assert len(lines) == 2, lines  # What runs, then the path written.
  assert lines[0].endswith(f'Inpainting 1 image(s) with the checkpoint of step 2 in {tiny_run}')
  assert lines[1].endswith('/out/a.png')
