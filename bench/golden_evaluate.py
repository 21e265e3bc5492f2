"""Records the evaluator's numbers of an older commit on fixed inputs (the golden file).

  python bench/golden_evaluate.py --commit=b2d170c

Runs, in that commit's tree (bench/old_tree.py), its trainer for 6 steps of the tiny config to
get a trained network, then its evaluator (`rwjax.evaluate.evaluate`) on every case of
tests/eval/golden/inputs.py CASES (both presets, both arms, every BatchNorm mode, every
measure family). Writes tests/eval/golden/trained.npz (that network's variables, the input
of tests/eval/test_golden.py) and tests/eval/golden/numbers.json (every per-seed value of
every report row, per arm; the paper probe's per-epoch test accuracies).
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from old_tree import ROOT, old_tree, python_env  # noqa: E402

GOLDEN = os.path.join(ROOT, 'tests', 'eval', 'golden')

# Runs inside the old tree: its own rwjax, its own API.
_INNER = r'''
import json, os, sys, tempfile
import numpy as np
sys.path.insert(0, sys.argv[1])
import inputs
import jax
from rwjax import defaults, evaluate
from rwjax import train as train_lib
from rwjax.eval import paper
from rwjax.ssl import checkpoint

out_dir = sys.argv[2]
tmp = tempfile.mkdtemp()

# The trained network: 6 steps of the tiny stream config at the golden architecture.
cfg = defaults.pretrain_config()
for k, v in inputs.MODEL.items():
  cfg.model[k] = v
cfg.data.sim_size, cfg.data.input_size = 32, inputs.INPUT_SIZE
cfg.data.retinas_per_device, cfg.data.buffer_frames = 2, 4
cfg.data.warmup_s, cfg.data.calibration_s = 0.0, 0.1
cfg.data.sim_params.lansdell.spont_prob = 0.01
cfg.train.batch_pairs, cfg.train.steps = 16, 6
cfg.train.log_every, cfg.train.checkpoint_every, cfg.train.monitor_every = 2, 6, 0
workdir = os.path.join(tmp, 'pretrain')
train_lib.train(cfg, workdir)
_, variables = checkpoint.load_for_eval(workdir)
flat = {jax.tree_util.keystr(p): np.asarray(v)
        for p, v in jax.tree_util.tree_leaves_with_path(variables)}
np.savez_compressed(os.path.join(out_dir, 'trained.npz'), **flat)

movie, labels = inputs.wave_movie()
np.save(os.path.join(tmp, 'movie.npy'), movie)
np.save(os.path.join(tmp, 'labels.npy'), labels)

epochs = []  # the paper probe's per-epoch accuracies, in call order (arm, seed)
plain_run_probes = paper.run_probes
def run_probes(*args, **kwargs):
  out = plain_run_probes(*args, **kwargs)
  epochs.append({t: {l: r['paper_epochs'] for l, r in layers.items()}
                 for t, layers in out.items()})
  return out
paper.run_probes = run_probes

def update(node, changes):
  for k, v in changes.items():
    if isinstance(v, dict) and k in node:
      update(node[k], v)
    else:
      node[k] = tuple(v) if isinstance(v, list) else v

def rows(node, path, found):
  if isinstance(node, dict):
    if isinstance(node.get('pretrained'), dict) and 'values' in node['pretrained']:
      found['/'.join(path)] = {a: node[a]['values'] for a in ('pretrained', 'random_init')}
      return
    for k, v in node.items():
      if not (not path and k in ('configs', 'timing', 'jax', 'data', 'statistics')):
        rows(v, path + [str(k)], found)
  return found

result = {'cases': {}}
for name, (preset, overrides) in inputs.CASES.items():
  e = defaults.evaluate_config(preset)
  update(e, json.loads(json.dumps(overrides)))
  e.workdir = workdir
  if e.paper_manifolds.enabled:
    e.paper_manifolds.wave_movie = os.path.join(tmp, 'movie.npy')
    e.paper_manifolds.wave_labels = os.path.join(tmp, 'labels.npy')
  epochs.clear()
  report = evaluate.evaluate(e)
  case = {'rows': rows(report, [], {}), 'timing': report['timing']}
  if report.get('paper'):
    case['paper_probe_layers'] = report['paper']['probe_layers']
    case['paper_manifold_layers'] = report['paper']['manifold_layers']
    case['paper_epochs'] = {'pretrained': epochs[:inputs.SEEDS],
                            'random_init': epochs[inputs.SEEDS:]}
  if report.get('capacity'):
    case['capacity_dims'] = report['capacity']['dims']
  result['cases'][name] = case
  print(f'{name}: {len(case["rows"])} rows, {report["timing"]["total_s"]:.1f} s', flush=True)
result['jax'] = jax.__version__
with open(os.path.join(out_dir, 'numbers.json'), 'w') as f:
  json.dump(result, f, indent=0, sort_keys=True)
'''


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--commit', default='b2d170c', help='the commit whose evaluator to run')
  args = parser.parse_args()
  commit = subprocess.run(['git', '-C', ROOT, 'rev-parse', args.commit], check=True,
                          capture_output=True, text=True).stdout.strip()
  with old_tree(commit) as root:
    env = python_env(root)
    # As the tests run: 8 virtual CPU devices (the tiny config's 2 retinas per device).
    env.update(JAX_PLATFORMS='cpu', XLA_FLAGS='--xla_force_host_platform_device_count=8')
    script = os.path.join(root, 'golden_inner.py')
    with open(script, 'w') as f:
      f.write(_INNER)
    subprocess.run([sys.executable, script, GOLDEN, GOLDEN], env=env, check=True, cwd=root)
  path = os.path.join(GOLDEN, 'numbers.json')
  with open(path) as f:
    result = json.load(f)
  result['commit'] = commit
  with open(path, 'w') as f:
    json.dump(result, f, indent=0, sort_keys=True)
  print(json.dumps({'commit': commit, 'cases': {k: len(v['rows'])
                                                for k, v in result['cases'].items()}}))


if __name__ == '__main__':
  main()
