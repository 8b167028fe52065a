"""Times variants of the reference workload on one GPU, one after another, in one call.

  python3 tools/gpu_sweep.py --out=$OUT --runs=new_loop,new_warm,old,new_fp32

Each run is one `python -m flax_inpaint.benchmark` process. All share one persistent
compilation cache, so XLA's autotuning results (kept there too) are reused by later runs:
their compile times are not comparable, their step times are. `new_loop` also times the
training loop and writes a profile and the optimised HLO; `new_warm` then starts from the
warm cache (seconds to the first step). As each run ends, its JSON line (with 'run': name)
is appended to OUT/results.jsonl and a table row to OUT/sweep.log (failures:
OUT/errors.txt); the profile summary goes to OUT/profile_new.txt and OUT/layers_new.txt
(tools/profile_summary.py).

Compiling several variants in parallel processes on one GPU does not pay: tried on an H200
(2026-11-27), nine concurrent compiles contended in XLA's autotuner (GPU timers and memory)
and none finished within 240 s, where one alone takes about a minute.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tarfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
BENCH = [sys.executable, '-m', 'flax_inpaint.benchmark']
BASE = [
    '--config=configs/reference.py',
    '--steps=30',
    '--warmup=5',
    '--config.model.dtype=bfloat16',
]
OLD = [
    '--config.impl.pool=reduce_window',
    '--config.impl.upsample=gather',
    '--config.impl.relu=input',
]
LOOP = [
    '--mode=loop',
    '--steps=90',
    '--config.train.log_every=20',
    '--config.train.checkpoint_every=25',
]
PROFILE_DIR = '/tmp/profile_new'
RUNS = {  # name: extra benchmark flags (defaults: reshape pooling, sub-pixel upsampling,
    # ReLU derivative from the output).
    'new_loop': LOOP + [f'--profile_dir={PROFILE_DIR}'],
    'new_warm': [],
    'new': [],
    'old': OLD,  # The code measured on the H100 on 2026-11-27.
    'pool_reshape': ['--config.impl.upsample=gather', '--config.impl.relu=input'],
    'up_repeat': [
        '--config.impl.pool=reduce_window',
        '--config.impl.upsample=repeat',
        '--config.impl.relu=input',
    ],
    'repeat': ['--config.impl.upsample=repeat', '--config.impl.relu=input'],
    'relu_input': ['--config.impl.relu=input'],  # 1,437.1 images/s on an H200.
    'vgg_pad8': ['--config.impl.vgg_input_channels=8'],
    'unet_pad8': ['--config.impl.unet_input_channels=8'],
    'pad8': ['--config.impl.vgg_input_channels=8', '--config.impl.unet_input_channels=8'],
    # The loop without a checkpoint in its timed steps: new_loop's overhead less this one's
    # is the checkpoints' share.
    'loop_no_ckpt': LOOP + ['--config.train.checkpoint_every=1000000'],
    'new_unet_only': ['--config.loss.perceptual_weight=0'],
    'new_fp32': ['--config.model.dtype=float32'],
    'old_fp32': OLD + ['--config.model.dtype=float32'],
}
PROFILED_RUN = 'new_loop'  # Also dumps its optimised HLO.


def command(*flag_lists, extra=()):
  """The benchmark command line; a later flag replaces an earlier one of the same name."""
  merged = {}
  for flag in [f for flags in (BASE, extra) + flag_lists for f in flags]:
    name = flag.split('=', 1)[0]
    merged.pop(name, None)
    merged[name] = flag
  config = [f for n, f in merged.items() if n == '--config']
  return BENCH + config + [f for n, f in merged.items() if n != '--config']


def row(name, r):
  if not r:
    return f'{name:15s} FAILED (see errors.txt)'
  text = (
      f'{name:15s} {r["images_per_s"]:8.1f} img/s {r["median_ms_per_step"]:8.2f} ms/step'
      f'  compile {r["compile_s"]:5.1f} s  first step {r["seconds_to_first_step"]:5.1f} s'
      f'  peak {(r["peak_memory_bytes"] or 0) / 1e9:5.2f} GB  {r["gflop_per_image"]:6.1f}'
      f' GF/img  {r["model_tflop_per_s"]:6.1f} model TF/s'
  )
  if 'loop_images_per_s' in r:
    text += f'  loop {r["loop_images_per_s"]} img/s ({r["loop_overhead_pct"]}% overhead)'
  return text


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--out', required=True)
  parser.add_argument('--runs', required=True, help=f'Comma-separated, of {sorted(RUNS)}.')
  parser.add_argument('--timeout', type=float, default=240, help='Seconds per run.')
  parser.add_argument(
      '--extra',
      default='',
      help='More benchmark flags for every run, '
      'e.g. "--config=configs/test.py --steps=3" to try this on a CPU.',
  )
  args = parser.parse_args()
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  names = [n for n in args.runs.split(',') if n]
  unknown = sorted(set(names) - set(RUNS))
  if unknown:
    raise SystemExit(f'unknown runs {unknown}; known: {sorted(RUNS)}')
  cache, hlo = '/tmp/jax_cache_sweep', '/tmp/hlo_sweep'
  for name in names:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if name == PROFILED_RUN:
      env['XLA_FLAGS'] = (
          env.get('XLA_FLAGS', '') + f' --xla_dump_to={hlo}'
          ' --xla_dump_hlo_as_text --xla_dump_hlo_module_re=jit_step_fn'
      )
    cmd = command(RUNS[name], [f'--config.compilation_cache_dir={cache}'], extra=args.extra.split())
    start = time.time()
    stdout, stderr = pathlib.Path(f'/tmp/{name}.out'), pathlib.Path(f'/tmp/{name}.err')
    try:
      subprocess.run(
          cmd,
          cwd=REPO,
          env=env,
          timeout=args.timeout,
          stdout=open(stdout, 'w'),
          stderr=open(stderr, 'w'),
      )
    except subprocess.TimeoutExpired:
      pass
    lines = [l for l in stdout.read_text().splitlines() if l.startswith('{')]
    result = json.loads(lines[-1]) if lines else None
    text = row(name, result) + f'  [{time.time() - start:.0f} s wall]'
    print(text, flush=True)
    with open(out / 'sweep.log', 'a') as f:
      f.write(text + '\n')
    if result:
      with open(out / 'results.jsonl', 'a') as f:
        f.write(json.dumps({'run': name, **result}) + '\n')
    else:
      with open(out / 'errors.txt', 'a') as f:
        f.write(f'== {name}: {" ".join(cmd)}\n{stderr.read_text()[-3000:]}\n')
    if name == PROFILED_RUN and pathlib.Path(PROFILE_DIR).exists():
      dumps = sorted(pathlib.Path(hlo).glob('*jit_step_fn*gpu_after_optimizations.txt'))
      for flags, path in (([], 'profile_new.txt'), (['--layers', '--top=0'], 'layers_new.txt')):
        summary = subprocess.run(
            [sys.executable, str(REPO / 'tools/profile_summary.py'), PROFILE_DIR, '--top=60']
            + flags
            + ([f'--hlo={dumps[0]}'] if dumps else []),
            capture_output=True,
            text=True,
        )
        (out / path).write_text(summary.stdout + summary.stderr)
      with tarfile.open(out / 'hlo_and_trace.tgz', 'w:gz') as tar:
        for path in sorted(pathlib.Path(hlo).rglob('*after_optimizations.txt')):
          tar.add(path, arcname=path.name)
        for path in pathlib.Path(PROFILE_DIR).rglob('perfetto_trace.json.gz'):
          tar.add(path, arcname='perfetto_trace.json.gz')


if __name__ == '__main__':
  main()
