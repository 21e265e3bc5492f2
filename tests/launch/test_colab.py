"""launch/colab.ipynb executed top to bottom on CPU at the tiny scale.

jupyter is not installed here, so a subprocess runs the notebook's code cells as written,
translated the way IPython does: `!cmd` lines become shell commands with {name} filled from
the notebook's variables, `%cd DIR` changes directory, and IPython.display is a stand-in that
prints what it would show. The parameter cell's values are then replaced by the test's (tiny
scale, a temporary RUNS folder, this checkout as CODE, no pip install, one arm and seed).
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTEBOOK = os.path.join(ROOT, 'launch', 'colab.ipynb')

HARNESS = r'''
import collections, json, os, re, subprocess, sys, types

notebook, params = sys.argv[1], json.loads(sys.argv[2])
display = types.ModuleType('IPython.display')
display.HTML = collections.namedtuple('HTML', 'data')
display.Markdown = collections.namedtuple('Markdown', 'data')
display.display = lambda x: print(f'DISPLAY {type(x).__name__} {len(x.data)} characters')
sys.modules['IPython'] = types.ModuleType('IPython')
sys.modules['IPython.display'] = display
ns = {}

def fill(text):  # IPython expands {expression} in shell and magic lines
  return re.sub(r'\{([^{}]+)\}', lambda m: str(eval(m.group(1), ns)), text)

def shell(cmd):
  p = subprocess.run(fill(cmd), shell=True)
  if p.returncode:
    raise SystemExit(f'shell line failed ({p.returncode}): {fill(cmd)}')

def magic(line):
  name, _, arg = line.partition(' ')
  if name != 'cd':
    raise SystemExit(f'no stand-in for %{name}')
  os.chdir(fill(arg))

ns.update(_shell=shell, _magic=magic)
cells = [''.join(c['source']) for c in json.load(open(notebook))['cells']
         if c['cell_type'] == 'code']
for i, source in enumerate(cells):
  lines = []
  for line in source.replace('\\\n', ' ').splitlines():
    body = line.lstrip()
    indent = line[:len(line) - len(body)]
    call = {'!': '_shell', '%': '_magic'}.get(body[:1])
    lines.append(f'{indent}{call}({body[1:]!r})' if call else line)
  exec(compile('\n'.join(lines), f'cell {i}', 'exec'), ns)
  if i == 0:
    ns.update(params)
print('NOTEBOOK DONE')
'''


def test_notebook_runs_the_tiny_experiment_and_shows_the_report(tmp_path):
  runs = tmp_path / 'runs'
  params = {'RUNS': str(runs), 'CODE': ROOT, 'SCALE': 'tiny', 'INSTALL': False,
            'EXTRA': '--config.only=random_init --config.seeds=1'}
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS='cpu',
             PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'])
  p = subprocess.run([sys.executable, '-c', HARNESS, NOTEBOOK, json.dumps(params)], cwd=tmp_path,
                     env=env, capture_output=True, text=True, timeout=1800)
  assert p.returncode == 0 and 'NOTEBOOK DONE' in p.stdout, p.stdout[-3000:] + p.stderr[-3000:]
  # The report cell printed every claim's verdict and showed report.md and report.html.
  claims = json.load(open(runs / 'experiment' / 'results.json'))['claims']
  assert sum(l.startswith('claim ') for l in p.stdout.splitlines()) == len(claims) >= 5
  assert 'DISPLAY Markdown' in p.stdout and 'DISPLAY HTML' in p.stdout
  assert (runs / 'experiment' / 'report.html').exists()
  assert sorted(os.listdir(runs / 'experiment' / 'runs')) == ['random_init']
