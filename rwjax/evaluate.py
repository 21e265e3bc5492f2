"""Evaluates a pre-trained network against random-init networks of the same architecture.

  python -m rwjax.evaluate --config=configs/evaluate.py --config.workdir=DIR [--config.x.y=v]

The pre-trained network is the latest checkpoint of the pre-training workdir DIR, rebuilt
from the config saved there; seed s gives a random-init network of that architecture and
the probes' validation split and task draws, shared by both arms (so tests are paired).
On natural images the networks never saw, per layer (stem, layer1..4, pooled):
  - classification: a linear probe on frozen, average-pooled features;
  - translated test sets: that probe on test images shifted by k pixels;
  - exemplar tasks: P images, each its own class, under held-out translations, rotations
    or colour jitter.
Writes DIR/eval/report.json (every number and the configs behind it) and PNG plots, and
prints a table.
"""

import functools
import os
import time

from absl import app
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np

from rwjax import models
from rwjax.data import sources
from rwjax.data import tasks
from rwjax.data.preprocess import to_network_input
from rwjax.errors import InputError, cli_main
from rwjax.eval import features as features_lib
from rwjax.eval import probes
from rwjax.eval import report as report_lib
from rwjax.eval import stats
from rwjax.ssl import checkpoint

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Evaluation config file (configs/evaluate.py[:preset]).', lock_config=True)

ARMS = ('pretrained', 'random_init')


def validate(config: ml_collections.ConfigDict) -> None:
  """Every config value the evaluator reads, checked once; InputError on the first bad one."""
  def count(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
      raise InputError(f'config.{name}={value!r} must be an integer >= {minimum}')

  if not config.workdir:
    raise InputError('config.workdir is not set; pass --config.workdir=DIR (a pre-training '
                     'workdir written by `python -m rwjax.train`)')
  count('seeds', config.seeds)
  count('batch_size', config.batch_size)
  count('data.max_train', config.data.max_train, 0)
  count('data.max_test', config.data.max_test, 0)
  count('probe.steps', config.probe.steps)
  unknown = [l for l in config.layers if l not in features_lib.LAYERS]
  if unknown or not config.layers:
    raise InputError(f'config.layers={tuple(config.layers)!r}: choose from '
                     f'{features_lib.LAYERS}')
  if not config.probe.l2_grid or min(config.probe.l2_grid) < 0:
    raise InputError(f'config.probe.l2_grid={tuple(config.probe.l2_grid)!r} must be '
                     'non-empty and >= 0')
  if not 0 < config.probe.val_fraction < 1:
    raise InputError(f'config.probe.val_fraction={config.probe.val_fraction!r} must be in (0, 1)')
  if config.shift.enabled:
    for k in config.shift.pixels:
      count('shift.pixels[...]', k, 0)
  e = config.exemplar
  if e.enabled:
    count('exemplar.images', e.images, 2)
    count('exemplar.n_train', e.n_train, 2)
    count('exemplar.n_test', e.n_test)
    bad = [t for t in e.transforms if t not in tasks.TRANSFORMS]
    if bad or not e.transforms:
      raise InputError(f'config.exemplar.transforms={tuple(e.transforms)!r}: choose from '
                       f'{tasks.TRANSFORMS}')
    if not 0 <= e.max_shift <= 1:
      raise InputError(f'config.exemplar.max_shift={e.max_shift!r} must be in [0, 1]')


def _load(spec: str, split: str, config: ml_collections.ConfigDict, max_examples: int,
          size: int, channels: int) -> tuple[jax.Array, np.ndarray, list[str]]:
  """Network-input images f32[N, size, size, channels], labels i32[N], class names."""
  images, labels, names = sources.load_images(
      spec, split, data_dir=config.data.data_dir or None, download=config.data.download,
      max_examples=max_examples or None)
  prep = jax.jit(to_network_input, static_argnums=(1, 2))
  return prep(images, size, channels), labels, names


def evaluate(config: ml_collections.ConfigDict) -> dict:
  """Runs every enabled task for both arms over all seeds; returns the report dict."""
  validate(config)
  start = time.perf_counter()
  pre_config, pre_variables = checkpoint.load_for_eval(config.workdir)
  model = models.create_model(**pre_config.model)
  size, channels = pre_config.data.input_size, pre_config.model.channels
  layers = tuple(config.layers)
  d, e, p = config.data, config.exemplar, config.probe

  x_train, y_train, class_names = _load(d.source, d.train_split, config, d.max_train, size,
                                        channels)
  x_test, y_test, _ = _load(d.source, d.test_split, config, d.max_test, size, channels)
  if e.enabled:
    pool, _, _ = _load(e.source, e.split, config, 0, size, channels)
    if e.images > len(pool):
      raise InputError(f'config.exemplar.images={e.images} exceeds the {len(pool)} images of '
                       f'{e.source} ({e.split}); lower it')
  shifts = tuple(config.shift.pixels) if config.shift.enabled else ()

  init = jax.jit(lambda key: models.init_variables(model, key, size))
  shift_fn = jax.jit(tasks.translate)
  task_fn = jax.jit(tasks.exemplar_task, static_argnames=(
      'transform', 'n_train', 'n_test', 'max_shift', 'max_degrees', 'fill'))
  extract = functools.partial(features_lib.extract_features, model,
                              batch_size=config.batch_size, layers=layers)
  fit = functools.partial(probes.fit_probe, l2_grid=tuple(p.l2_grid),
                          val_fraction=p.val_fraction, steps=p.steps)
  timing = {'features_s': 0.0, 'probes_s': 0.0}

  def timed(kind, fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    timing[kind] += time.perf_counter() - t
    return out

  # The average-pooled layer4 map is the pooled representation: probe it once.
  probed = [l for l in layers if not (l == 'pooled' and 'layer4' in layers)]
  acc = {arm: {'classification': {l: [] for l in layers},
               'shift': {k: {l: [] for l in layers} for k in shifts},
               'exemplar': {t: {l: [] for l in layers} for t in e.transforms}}
         for arm in ARMS}
  for arm in ARMS:
    fixed = None  # The pre-trained network's features of fixed images, shared by seeds.
    for seed in range(config.seeds):
      k_init, k_probe, k_task = jax.random.split(jax.random.PRNGKey(seed), 3)
      variables = pre_variables if arm == 'pretrained' else init(k_init)
      if fixed is None or arm == 'random_init':
        fixed = {'train': timed('features_s', extract, variables, x_train),
                 'test': timed('features_s', extract, variables, x_test)}
        for k in shifts:
          fixed[k] = fixed['test'] if k == 0 else timed(
              'features_s', extract, variables, shift_fn(x_test, jnp.array([0, k])))
      for l in probed:
        probe = timed('probes_s', fit, k_probe, fixed['train'][l], y_train,
                      num_classes=len(class_names))
        acc[arm]['classification'][l].append(probes.probe_accuracy(probe, fixed['test'][l],
                                                                   y_test))
        for k in shifts:
          acc[arm]['shift'][k][l].append(probes.probe_accuracy(probe, fixed[k][l], y_test))
      if not e.enabled:
        continue
      chosen = pool[jax.random.choice(k_task, len(pool), (e.images,), replace=False)]
      for i, transform in enumerate(e.transforms):
        task = task_fn(jax.random.fold_in(k_task, i), chosen, transform=transform,
                       n_train=e.n_train, n_test=e.n_test, max_shift=e.max_shift,
                       max_degrees=e.max_degrees, fill=e.fill)
        f_train = timed('features_s', extract, variables, task.x_train)
        f_test = timed('features_s', extract, variables, task.x_test)
        for l in probed:
          result = timed('probes_s', probes.linear_probe, k_probe, f_train[l],
                         np.asarray(task.y_train), f_test[l], np.asarray(task.y_test),
                         num_classes=e.images, l2_grid=tuple(p.l2_grid),
                         val_fraction=p.val_fraction, steps=p.steps)
          acc[arm]['exemplar'][transform][l].append(result.test_accuracy)

  same = lambda l: 'layer4' if l == 'pooled' and 'layer4' in layers else l
  compare = lambda get: {
      l: stats.compare(get('pretrained')[same(l)], get('random_init')[same(l)]) for l in layers}
  timing['total_s'] = time.perf_counter() - start
  return {
      'workdir': os.path.abspath(config.workdir),
      'step': checkpoint.latest_step(config.workdir),
      'seeds': config.seeds,
      'test': 'paired t over seeds (seed s: random-init network s; probe split and task '
              'draw s shared by both arms)',
      'data': {'source': d.source, 'train': len(y_train), 'test': len(y_test),
               'classes': class_names, 'image_size': size, 'channels': channels},
      'classification': compare(lambda arm: acc[arm]['classification']),
      'shift': {str(k): compare(lambda arm: acc[arm]['shift'][k]) for k in shifts},
      'exemplar': {t: compare(lambda arm: acc[arm]['exemplar'][t]) for t in e.transforms},
      'timing': timing,
      'jax': {'version': jax.__version__, 'devices': [str(x) for x in jax.local_devices()]},
      'configs': {'evaluate': config.to_dict(), 'pretrain': pre_config.to_dict()},
  }


def run(config: ml_collections.ConfigDict) -> dict:
  """Evaluates, writes the report and plots, prints the table; returns the report."""
  report = evaluate(config)
  out = config.out or os.path.join(config.workdir, 'eval')
  paths = report_lib.write(report, out)
  print(report_lib.table(report))
  print(f"\n{report['timing']['total_s']:.1f} s; wrote " + ', '.join(paths), flush=True)
  return report


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments {argv[1:]}; settings go in --config.x=v')
  if _CONFIG.value is None:
    raise app.UsageError('pass --config=configs/evaluate.py --config.workdir=DIR')
  cli_main(lambda: run(_CONFIG.value))


if __name__ == '__main__':
  app.run(main)
