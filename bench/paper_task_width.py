"""Measurement: the paper's translation task on a random-init network, against its width.

  python bench/paper_task_width.py --width=8 --cifar10=PATH/cifar10 --mnist=PATH/mnist

The `cpu` experiment scale's random-init arm (seed --seed, ResNet-18 of --width) evaluated
with that scale's paper probes (rwjax.experiment's own plan and configs), restricted to the
untransformed and translated invariance tasks at the pooled output, with the paper's Adam
probe and the logistic probe beside it. Whether a linear probe rises above chance (0.1) on
the translated images says whether claim 1 can be read at that width (docs/experiment.md).
Prints one JSON object: accuracy per task and probe, seconds.
"""

import copy
import json
import os
import runpy
import tempfile
import time

from absl import app
from absl import flags

from rwjax import evaluate
from rwjax import experiment
from rwjax.ssl import trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_WIDTH = flags.DEFINE_integer('width', 8, 'ResNet-18 width (the paper: 64; cpu scale: 8).')
_SEED = flags.DEFINE_integer('seed', 0, 'Initialisation seed.')
_CIFAR10 = flags.DEFINE_string('cifar10', 'data/cifar10', 'CIFAR-10 image folder.')
_MNIST = flags.DEFINE_string('mnist', 'data/mnist', 'MNIST image folder (checked by the plan).')


def main(_):
  c = runpy.run_path(os.path.join(ROOT, 'configs', 'experiment.py'))['get_config']('cpu')
  c.cifar10, c.mnist = _CIFAR10.value, _MNIST.value
  c.pretrain.model.width = _WIDTH.value
  c.only, c.seeds, c.first_seed = 'random_init', 1, _SEED.value
  workdir = tempfile.mkdtemp(prefix='paper_task_width_')
  plan = experiment.make_plan(c, workdir)
  run = plan.runs[0]
  t0 = time.perf_counter()
  cfg = copy.deepcopy(run.pretrain)
  cfg.train.steps = 0  # the random-init network of the seed
  trainer.train(cfg, os.path.join(workdir, 'train'))
  e = copy.deepcopy(plan.evaluate)
  e.workdir, e.out = os.path.join(workdir, 'train'), os.path.join(workdir, 'eval')
  q = e.evals.paper_probes
  for name in [n for n in e.evals if n != 'paper_probes']:
    del e.evals[name]
  q.invariance.transforms, q.classification.sources = ('none', 'translate'), ()
  q.layers, q.probes = 'pooled', ('adam', 'logistic')
  acc = {}
  for r in evaluate.evaluate(e)['rows']:
    acc.setdefault(r['task'], {})[r['measure']] = r['pretrained']['mean']
  print(json.dumps({'width': _WIDTH.value, 'seed': _SEED.value, 'accuracy': acc,
                    'seconds': round(time.perf_counter() - t0, 1)}))


if __name__ == '__main__':
  app.run(main)
