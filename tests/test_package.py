"""The package graph: training never imports evaluation, evaluation never imports training.

Training is rwjax/ssl (the trainer library and its parts); evaluation is rwjax/eval and
rwjax/evaluate.py. Both share rwjax.checkpoint, rwjax.models, rwjax.data, ... The binaries
that put them together (rwjax.train, the experiment, the demo) are neither.
"""

import ast
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, 'rwjax')
TRAINING = ('rwjax.ssl',)
EVALUATION = ('rwjax.eval', 'rwjax.evaluate')
BINARIES = ('rwjax.train', 'rwjax.experiment', 'rwjax.demo')


def _modules(*where: str) -> list[str]:
  """Paths of the .py files of rwjax/<where> (a package or a module)."""
  out = []
  for w in where:
    path = os.path.join(PACKAGE, *w.split('.')[1:])
    if os.path.isdir(path):
      out += [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f.endswith('.py')]
    else:
      out.append(path + '.py')
  return sorted(out)


def _imports(path: str) -> set[str]:
  """Every rwjax module a file imports, at the top or inside a function."""
  names = set()
  for node in ast.walk(ast.parse(open(path).read(), path)):
    if isinstance(node, ast.Import):
      names.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      names.add(node.module)
      names.update(f'{node.module}.{a.name}' for a in node.names)
  return {n for n in names if n.startswith('rwjax')}


def _under(name: str, prefixes) -> bool:
  return any(name == p or name.startswith(p + '.') for p in prefixes)


def test_no_file_of_one_side_imports_the_other():
  bad = []
  for side, others in ((TRAINING + ('rwjax.checkpoint',), EVALUATION + BINARIES),
                       (EVALUATION + ('rwjax.checkpoint',), TRAINING + BINARIES)):
    for path in _modules(*side):
      bad += [f'{os.path.relpath(path, ROOT)} imports {n}' for n in sorted(_imports(path))
              if _under(n, others)]
  assert not bad, bad
  assert _modules('rwjax.ssl') and _modules('rwjax.eval')  # the walk found the files


def _loaded_after_importing(files) -> set[str]:
  """rwjax modules loaded, in a fresh interpreter, by importing the modules of `files` (and
  what they import in turn, e.g. rwjax.defaults, which imports rwjax.eval)."""
  modules = [os.path.relpath(f, ROOT)[:-len('.py')].replace(os.sep, '.').removesuffix('.__init__')
             for f in files]
  code = ('import importlib, sys\n'
          f'for m in {modules!r}: importlib.import_module(m)\n'
          "print(' '.join(sorted(k for k in sys.modules if k.startswith('rwjax'))))")
  out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT), check=True, timeout=300)
  return set(out.stdout.split())


def test_importing_one_side_loads_nothing_of_the_other():
  for side, others, probe in ((TRAINING, EVALUATION + BINARIES, 'rwjax.ssl.trainer'),
                              (EVALUATION, TRAINING + BINARIES, 'rwjax.eval.monitor')):
    loaded = _loaded_after_importing(_modules(*side))
    assert probe in loaded
    assert not {m for m in loaded if _under(m, others)}, loaded
