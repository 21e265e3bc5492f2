"""Benchmark: the evaluation of one checkpoint, an older commit's evaluator beside today's.

  python bench/evaluate.py --old=b2d170c --cifar10=PATH --mnist=PATH [--scale=cpu_wide]

One random-init network of the scale's architecture (configs/experiment.py; cpu_wide: the
paper's ResNet-18, width 64, projector 512-128, 32x32 input) is written as a pre-training
workdir by the older commit's trainer (bench/old_tree.py), then evaluated the way each
commit's experiment evaluates a checkpoint at that scale: the older one with each of its
protocols in turn (its `rwjax`, `rwjax_mnist` and `paper` evaluator runs), today's with one
evaluator run of config.evaluate limited to the same work (the paper's probes, rwjax's
classification probes, the paper's manifolds under the running statistics: no second
BatchNorm mode, no logistic reading of the paper's features). Both run in this process's
environment one after the other, compilation included (each in a fresh process, with no
compilation cache). Prints one JSON object: wall-clock seconds, images run through the
network (forward passes; BatchNorm adaptation counted apart), and the speed-up.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from old_tree import ROOT, old_tree, python_env  # noqa: E402

# Runs in the older tree: writes the workdir, then evaluates it with its protocols.
_OLD = r'''
import json, os, runpy, sys, tempfile, time
workdir, cifar10, mnist, scale, out = sys.argv[1:6]
from rwjax import evaluate, experiment, train
from rwjax.eval import features
c = runpy.run_path('configs/experiment.py')['get_config'](scale)
c.cifar10, c.mnist = cifar10, mnist
cfg, _ = experiment._arm_config('random_init', experiment.ARMS['random_init'], c, {}, 0)
train.train(cfg, workdir)
count = [0]
plain = features._in_batches
def counted(step, variables, images, *args, **kwargs):
  count[0] += len(images)
  return plain(step, variables, images, *args, **kwargs)
features._in_batches = counted
seconds = {}
for name in c.protocols:
  e, status, _ = experiment._protocol(name, c.protocols[name], c)
  e.workdir, e.out = workdir, tempfile.mkdtemp()
  t = time.perf_counter()
  evaluate.evaluate(e)
  seconds[name] = time.perf_counter() - t
json.dump({'seconds': sum(seconds.values()), 'per_protocol_s': seconds,
           'forward_images': count[0]}, open(out, 'w'))
'''

# Runs in today's tree.
_NEW = r'''
import json, sys, time
workdir, cifar10, mnist, scale, out = sys.argv[1:6]
from rwjax import defaults, evaluate, experiment
c = defaults.config_file('experiment', scale)
c.cifar10, c.mnist = cifar10, mnist
e = experiment.resolved_evaluate(c)
del e.evals['paper_logistic']  # work the older evaluator did not do
e.evals.paper_manifolds.batchnorm = ('running',)
e.workdir = workdir
t = time.perf_counter()
report = evaluate.evaluate(e)
json.dump({'seconds': time.perf_counter() - t, 'evals': list(e.evals),
           'forward_images': report['timing']['forward_images'],
           'adapt_images': report['timing']['adapt_images'],
           'split_s': {k: v for k, v in report['timing'].items() if k.endswith('_s')}},
          open(out, 'w'))
'''


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--old', default='b2d170c', help='the older commit')
  parser.add_argument('--cifar10', required=True, help='CIFAR-10 image folder')
  parser.add_argument('--mnist', required=True, help='MNIST image folder')
  parser.add_argument('--scale', default='cpu_wide', help='configs/experiment.py scale')
  args = parser.parse_args()
  commit = subprocess.run(['git', '-C', ROOT, 'rev-parse', args.old], check=True,
                          capture_output=True, text=True).stdout.strip()
  folders = [os.path.abspath(args.cifar10), os.path.abspath(args.mnist), args.scale]
  out = {'commit': commit, 'scale': args.scale}
  with tempfile.TemporaryDirectory() as tmp, old_tree(commit) as root:
    workdir = os.path.join(tmp, 'pretrain')
    for name, script, cwd, env in (('old', _OLD, root, python_env(root)),
                                   ('new', _NEW, ROOT, python_env(ROOT))):
      path = os.path.join(tmp, f'{name}.py')
      with open(path, 'w') as f:
        f.write(script)
      env.setdefault('JAX_PLATFORMS', 'cpu')
      t = time.perf_counter()
      subprocess.run([sys.executable, path, workdir, *folders, path + '.json'], cwd=cwd,
                     env=env, check=True, stdout=subprocess.DEVNULL)
      with open(path + '.json') as f:
        out[name] = {**json.load(f), 'process_s': time.perf_counter() - t}
  out['speedup'] = out['old']['seconds'] / out['new']['seconds']
  out['forward_ratio'] = out['old']['forward_images'] / out['new']['forward_images']
  import jax  # pylint: disable=g-import-not-at-top
  out['machine'] = {'cpu_count': os.cpu_count(), 'jax': jax.__version__,
                    'load_average': os.getloadavg()}
  print(json.dumps(out))


if __name__ == '__main__':
  main()
