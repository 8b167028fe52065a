"""Summarises a `jax.profiler.trace(..., create_perfetto_trace=True)` trace: device time per op.

  python tools/profile_summary.py PROFILE_DIR_OR_perfetto_trace.json.gz [--steps 3] [--top 30]
      [--hlo OPTIMISED_HLO.txt[.gz]] [--layers]

Prints, per device line (stream / 'XLA Ops'), the busy time per step and the ops that take
it, grouped by name and by a coarse kind (conv, gemm, fusion, scatter, copy, ...). With
--hlo (the step's `*after_optimizations.txt` from XLA_FLAGS=--xla_dump_to), also the time
per model part (U-Net / VGG16, forward / backward, convolutions / other kernels), read from
each kernel's op_name metadata; with --layers too, the time per layer (VGG16 conv1_1 ..,
U-Net ConvNormRelu_0 .., Conv_0 ..) and pass. Standard library only, so it runs on a bare GPU
image.
"""

import argparse
import collections
import gzip
import json
import pathlib
import re

KINDS = (  # First match wins; matched against the lowercased op / kernel name.
    ('scatter', r'scatter|select_and'),
    ('conv', r'conv|cudnn|xmma|implicit|wgrad|dgrad|fprop|sm90_xmma|cutlass.*conv'),
    ('gemm', r'gemm|matmul|dot|cublas|sm90_'),
    ('reduce', r'reduce|reduction'),
    ('transpose/copy', r'transpose|copy|memcpy|memset|pad|concat|slice'),
    ('fusion', r'fusion|loop|kernel|triton'),
)


def kind_of(name):
  low = name.lower()
  for kind, pattern in KINDS:
    if re.search(pattern, low):
      return kind
  return 'other'


def load(path):
  path = pathlib.Path(path)
  if path.is_dir():
    found = sorted(path.rglob('perfetto_trace.json.gz'))
    if not found:
      raise SystemExit(
          f'{path}: no perfetto_trace.json.gz below it; trace with '
          'jax.profiler.trace(dir, create_perfetto_trace=True)'
      )
    path = found[-1]
  with gzip.open(path, 'rt') as f:
    data = json.load(f)
  return data['traceEvents'] if isinstance(data, dict) else data


def line_names(events):
  """({pid: process name}, {(pid, tid): thread name}) from the trace's metadata events."""
  processes, threads = {}, {}
  for e in events:
    if e.get('ph') == 'M' and e.get('name') == 'process_name':
      processes[e['pid']] = e['args']['name']
    elif e.get('ph') == 'M' and e.get('name') == 'thread_name':
      threads[(e['pid'], e.get('tid'))] = e['args']['name']
  return processes, threads


def summarise(events, steps, top, include_host=False):
  processes, threads = line_names(events)
  lines = collections.defaultdict(list)
  for e in events:
    if e.get('ph') != 'X' or 'dur' not in e:
      continue
    process = processes.get(e['pid'], str(e['pid']))
    if not include_host and 'host' in process.lower():
      continue
    lines[(process, threads.get((e['pid'], e.get('tid')), str(e.get('tid'))))].append(e)
  out = []
  for (process, thread), evs in sorted(lines.items(), key=lambda kv: -sum(e['dur'] for e in kv[1])):
    total_ms = sum(e['dur'] for e in evs) / 1e3 / steps
    out.append(
        f'\n## {process} / {thread}: {len(evs) / steps:.0f} events, '
        f'{total_ms:.2f} ms per step (sum of durations)'
    )
    if len(evs) < 5:
      continue
    by_kind = collections.Counter()
    by_name = collections.Counter()
    count = collections.Counter()
    for e in evs:
      args = e.get('args') or {}
      name = str(args.get('hlo_op') or e['name'])
      label = name if name == e['name'] else f'{name} [{e["name"][:60]}]'
      by_kind[kind_of(e['name'] + ' ' + name)] += e['dur']
      by_name[label] += e['dur']
      count[label] += 1
    out.append(
        'kind: ' + ', '.join(f'{k} {v / 1e3 / steps:.2f} ms' for k, v in by_kind.most_common())
    )
    for label, dur in by_name.most_common(top):
      out.append(f'{dur / 1e3 / steps:9.3f} ms  x{count[label] / steps:5.1f}  {label[:150]}')
  return '\n'.join(out)


def read_text(path):
  path = pathlib.Path(path)
  if path.suffix == '.gz':
    with gzip.open(path, 'rt') as f:
      return f.read()
  return path.read_text()


LAYER = re.compile(r'(conv\d_\d|ConvNormRelu_\d+|Conv_\d+)')


def by_model_part(events, hlo_text, steps, layers=False):
  """Markdown rows: (part, [layer,] direction, kind, ms per step, share) of the compute
  stream, from each kernel's HLO op_name metadata."""
  op_names = {}
  for m in re.finditer(r'^\s*%?([\w.\-#]+) = .*?metadata=\{op_name="([^"]+)"', hlo_text, re.M):
    op_names.setdefault(m.group(1), m.group(2))
  processes, threads = line_names(events)
  total = collections.Counter()
  for e in events:
    if (
        e.get('ph') != 'X'
        or 'dur' not in e
        or 'GPU' not in processes.get(e['pid'], '')
        or 'Compute' not in threads.get((e['pid'], e.get('tid')), '')
    ):
      continue
    op = (e.get('args') or {}).get('hlo_op') or e['name']
    meta = op_names.get(op, '')
    part = 'VGG16' if 'VGG16' in meta else 'U-Net' if 'UNet' in meta else 'rest'
    direction = '' if part == 'rest' else 'backward' if 'transpose(' in meta else 'forward'
    kind = 'convolutions' if 'cudnn' in op else 'other kernels'
    layer = LAYER.findall(meta) if part != 'rest' else []
    key = (part, layer[0] if layer else '') if layers else (part,)
    total[key + (direction, kind)] += e['dur']
  whole = sum(total.values()) or 1
  head = ['part'] + (['layer'] if layers else []) + ['pass', 'kernels', 'ms per step', 'share']
  rows = [
      f'| {" | ".join(key)} | {v / 1e3 / steps:.2f} | {100 * v / whole:.0f}% |'
      for key, v in total.most_common()
  ]
  blanks = ' |' * (len(head) - 3)
  return '\n'.join(
      [f'| {" | ".join(head)} |', '|---' * len(head) + '|']
      + rows
      + [f'| all |{blanks} {whole / 1e3 / steps:.2f} | 100% |']
  )


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('trace')
  parser.add_argument('--steps', type=int, default=3, help='Steps the trace holds.')
  parser.add_argument('--top', type=int, default=30)
  parser.add_argument('--include_host', action='store_true')
  parser.add_argument('--hlo', help="The traced step's optimised HLO text (see above).")
  parser.add_argument('--layers', action='store_true', help='With --hlo: per layer too.')
  args = parser.parse_args()
  events = load(args.trace)
  if args.hlo:
    print(by_model_part(events, read_text(args.hlo), args.steps, args.layers))
  print(summarise(events, args.steps, args.top, args.include_host))


if __name__ == '__main__':
  main()
