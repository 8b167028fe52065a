"""The package's layout: folders in layers that import only downwards, no two folders
importing each other, which folder may import which library, no import cycles, imports at
the top, no module over 450 lines. Each rule is checked on the real tree and, to show it can fail,
on a small tree that breaks it."""

import ast
import collections
import pathlib

import pytest

from conftest import ROOT

PACKAGE = ROOT / 'flax_inpaint'
MAX_LINES = 450
# The documented `python -m flax_inpaint.X` entry points: they only call a mode.
ENTRY_POINTS = {
    '__main__.py',
    'vgg.py',
    'benchmark.py',
    'inference_benchmark.py',
    'input_benchmark.py',
}
# Third-party or standard libraries that only these modules may import.
ONLY_IN = {
    'tensorflow': {'data/pipeline.py', 'modes/input_benchmark.py'},
    'tensorflow_datasets': {'data/pipeline.py', 'data/album_covers.py'},
    'orbax': {'train/checkpointing.py'},
    'clu': {'modes/train.py'},
    'torch': {'weights/vgg_weights.py'},
    'h5py': {'weights/vgg_weights.py'},
    'pickle': {'weights/vgg_weights.py'},
    'cv2': {'evaluation/baselines.py'},
    'patchmatch': {'evaluation/baselines.py'},
    'uvicorn': {'modes/serve.py'},
    'starlette': {'serve/app.py'},
}
# The package's folders from the bottom up: a folder imports only folders of lower layers
# (the top-level errors.py is below them all; cli.py and the entry points above them all).
LAYERS = (
    ('config', 'nn', 'data'),
    ('weights',),
    ('evaluation',),
    ('train',),
    ('inference',),
    ('serve',),
    ('modes',),
)
LAYER_OF = {folder: i for i, layer in enumerate(LAYERS) for folder in layer}
# Folder -> libraries its modules never import.
NEVER = {
    'config': {'flax', 'optax', 'orbax', 'tensorflow', 'clu'},
    'nn': {'tensorflow', 'orbax', 'clu', 'optax'},
    'data': {'flax', 'orbax', 'clu', 'optax'},
    'weights': {'tensorflow', 'orbax', 'clu', 'optax'},
    'evaluation': {'tensorflow', 'orbax', 'clu', 'optax'},
    'train': {'tensorflow', 'tensorflow_datasets', 'clu'},
    'inference': {'tensorflow', 'tensorflow_datasets', 'orbax', 'clu'},
    'serve': {'tensorflow', 'orbax', 'clu', 'optax', 'flax'},
    'modes': set(),
}
# Imports of the package's own modules inside functions, each for a reason.
LAZY_OWN_IMPORTS = {
    # `import flax_inpaint` stays light: `Inpainter` (jax, PIL) loads on first use.
    ('flax_inpaint', 'flax_inpaint.inference.api'),
    # eval on a prepared TFDS split needs TensorFlow; eval on a folder does not.
    ('flax_inpaint.evaluation.evaluate', 'flax_inpaint.data.pipeline'),
    # An export runs with jax and numpy only; a run or a release needs flax and orbax.
    ('flax_inpaint.inference.api', 'flax_inpaint.train.setup'),
}
MAX_LAZY_OWN_IMPORTS = 4


def module_name(path: pathlib.Path, root: pathlib.Path) -> str:
  parts = list(path.relative_to(root.parent).with_suffix('').parts)
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def scan(root: pathlib.Path):
  """{relative path: [(imported module, inside a function?)]} for every module under root
  (`from flax_inpaint.x import y` counts as flax_inpaint.x.y when that is a module)."""
  names = {module_name(p, root) for p in root.rglob('*.py')}
  found = {}
  for path in sorted(root.rglob('*.py')):
    tree = ast.parse(path.read_text())
    in_function = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for inner in ast.walk(node)
    }
    imports = []
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
        targets = [
            f'{node.module}.{a.name}' if f'{node.module}.{a.name}' in names else node.module
            for a in node.names
        ]
      else:
        continue
      imports += [(target, id(node) in in_function) for target in targets]
    found[str(path.relative_to(root))] = imports
  return found


def _folder_of(target: str):
  """'train' for flax_inpaint.train.setup; None for a top-level module or another library."""
  parts = target.split('.')
  return parts[1] if parts[0] == 'flax_inpaint' and len(parts) > 2 else None


def _layer_problem(path, folder, target):
  """The line for `path` (in `folder`/) importing `target` against the layers, or None."""
  other = _folder_of(target)
  if folder is None or other is None or other == folder:
    return None
  if folder not in LAYER_OF:
    return f'{path}: {folder}/ has no place in LAYERS'
  if other in LAYER_OF and LAYER_OF[other] >= LAYER_OF[folder]:
    below = sorted(f for f, i in LAYER_OF.items() if i < LAYER_OF[folder])
    allowed = 'only ' + ', '.join(f'{f}/' for f in below) if below else 'no folder of the package'
    return f'{path} imports {target} ({folder}/ imports {allowed})'
  return None


def folder_pairs(found):
  """The pairs of folders that import each other, as 'a/ <-> b/' lines."""
  edges = {
      (path.split('/')[0], _folder_of(target))
      for path, imports in found.items()
      if '/' in path
      for target, _ in imports
      if _folder_of(target) not in (None, path.split('/')[0])
  }
  return sorted(f'{a}/ <-> {b}/' for a, b in edges if a < b and (b, a) in edges)


def broken_rules(root: pathlib.Path):
  """Every broken rule, one line each."""
  found, problems = scan(root), []
  for path, imports in found.items():
    folder = path.split('/')[0] if '/' in path else None
    if folder is not None and folder not in NEVER:
      problems.append(f'{folder}/ has no rule in NEVER')
    for target, _ in imports:
      top = target.split('.')[0]
      if top in ONLY_IN and path not in ONLY_IN[top]:
        problems.append(f'{path} imports {top} (only {sorted(ONLY_IN[top])} may)')
      for never in NEVER.get(folder, ()):
        if target == never or target.startswith(never + '.'):
          problems.append(f'{path} imports {target} ({folder}/ never imports {never})')
      layer_problem = _layer_problem(path, folder, target)
      if layer_problem:
        problems.append(layer_problem)
      if target.startswith('flax_inpaint.modes') and folder != 'modes':
        if path != 'cli.py' and path not in ENTRY_POINTS:
          problems.append(f'{path} imports {target} (only the cli and entry points import modes/)')
      if folder == 'modes' and target.startswith('flax_inpaint.modes.'):
        problems.append(f'{path} imports {target} (modes are leaves: never each other)')
    if path == 'errors.py' and any(t.startswith('flax_inpaint') for t, _ in imports):
      problems.append('errors.py imports the package (it must stay dependency-free)')
    if len((root / path).read_text().splitlines()) > MAX_LINES:
      problems.append(f'{path} is over {MAX_LINES} lines')
  lazy = {
      (module_name(root / path, root), target)
      for path, imports in found.items()
      for target, inside in imports
      if inside and target.startswith('flax_inpaint')
  }
  problems += [f'{m} imports {t} inside a function' for m, t in sorted(lazy - LAZY_OWN_IMPORTS)]
  if len(lazy) > MAX_LAZY_OWN_IMPORTS:
    problems.append(
        f'{len(lazy)} in-function imports of the package (at most {MAX_LAZY_OWN_IMPORTS})'
    )
  problems += [f'folders import each other: {pair}' for pair in folder_pairs(found)]
  problems += [f'import cycle: {" -> ".join(c)}' for c in cycles(root, found)]
  return problems


def cycles(root, found):
  """Import cycles among the package's modules (in-function imports included)."""
  graph = collections.defaultdict(set)
  for path, imports in found.items():
    graph[module_name(root / path, root)] |= {t for t, _ in imports if t.startswith('flax_inpaint')}
  state, found_cycles = {}, []

  def visit(node, stack):
    state[node] = 'open'
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == 'open':
        found_cycles.append(stack[stack.index(nxt) :] + [nxt])
      elif nxt not in state:
        visit(nxt, stack + [nxt])
    state[node] = 'done'

  for node in sorted(graph):
    if node not in state:
      visit(node, [node])
  return found_cycles


def test_the_package_keeps_its_layout_rules():
  assert broken_rules(PACKAGE) == []


def test_no_two_folders_import_each_other():
  assert folder_pairs(scan(PACKAGE)) == []


def test_every_subpackage_says_what_it_holds():
  folders = sorted(p.parent.name for p in PACKAGE.glob('*/__init__.py'))
  assert folders == [
      'config',
      'data',
      'evaluation',
      'inference',
      'modes',
      'nn',
      'serve',
      'train',
      'weights',
  ]
  assert sorted(LAYER_OF) == sorted(NEVER) == folders
  for folder in folders:
    assert ast.get_docstring(ast.parse((PACKAGE / folder / '__init__.py').read_text())), folder


@pytest.mark.parametrize(
    'files,expected',
    [
        (
            {'nn/models.py': 'from flax_inpaint.train import steps\n', 'train/steps.py': ''},
            'nn/models.py imports flax_inpaint.train.steps (nn/ imports no folder of the package)',
        ),
        (
            {
                'weights/pretrained.py': 'from flax_inpaint.train import setup\n',
                'train/setup.py': '',
            },
            'weights/pretrained.py imports flax_inpaint.train.setup (weights/ imports only '
            'config/, data/, nn/)',
        ),
        (
            {'config/schema.py': 'import flax\n'},
            'config/schema.py imports flax (config/ never imports flax)',
        ),
        (
            {
                'left/a.py': 'from flax_inpaint.right import b\n',
                'right/b.py': 'from flax_inpaint.left import c\n',
                'left/c.py': '',
            },
            'folders import each other: left/ <-> right/',
        ),
        ({'extra/a.py': ''}, 'extra/ has no rule in NEVER'),
        (
            {'extra/a.py': 'from flax_inpaint.nn import b\n', 'nn/b.py': ''},
            'extra/a.py: extra/ has no place in LAYERS',
        ),
        (
            {'nn/models.py': 'import optax\n'},
            'nn/models.py imports optax (nn/ never imports optax)',
        ),
        (
            {'inference/api.py': 'import orbax.checkpoint\n'},
            "inference/api.py imports orbax (only ['train/checkpointing.py'] may)",
        ),
        (
            {'serve/app.py': 'from flax_inpaint.modes import train\n', 'modes/train.py': ''},
            'serve/app.py imports flax_inpaint.modes.train (only the cli and entry points import '
            'modes/)',
        ),
        (
            {'modes/eval.py': 'from flax_inpaint.modes import train\n', 'modes/train.py': ''},
            'modes/eval.py imports flax_inpaint.modes.train (modes are leaves: never each other)',
        ),
        (
            {
                'a.py': 'from flax_inpaint import b\n',
                'b.py': 'def f():\n  from flax_inpaint import a\n',
            },
            # Both the lazy import and the cycle it closes are reported.
            'flax_inpaint.b imports flax_inpaint.a inside a function',
        ),
        ({'big.py': 'x = 1\n' * 451}, 'big.py is over 450 lines'),
    ],
)
def test_a_broken_rule_is_reported(tmp_path, files, expected):
  root = tmp_path / 'flax_inpaint'
  for name, text in {'__init__.py': '', **files}.items():
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text)
  problems = broken_rules(root)
  assert any(expected in line for line in problems), problems
  if 'inside a function' in expected:
    assert any(line.startswith('import cycle: ') for line in problems), problems
