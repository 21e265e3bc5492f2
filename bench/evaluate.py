"""Benchmark: frozen features of every layer plus their linear probes, CIFAR-10 sized.

  python bench/evaluate.py [--source=random|digits|tfds:cifar10|folder:PATH] [--flags]
  python bench/evaluate.py --preset=paper --source=folder:PATH [--train=N --test=N ...]

--preset=paper times the whole evaluator (rwjax.evaluate.evaluate) under
configs/evaluate.py:paper, with 3 pre-training workdirs (step-0 checkpoints of the given
architecture, written to a temporary directory: timings do not depend on the weights) against
3 random inits, on --train / --test images of --source (also the exemplar source; capacity
sizes from --capacity_P / --capacity_M), every layer. The paper block (config.paper_*) is capped
by --paper_max_train / --paper_max_test (classification probes), --paper_per_class (invariance
tasks), --paper_exemplar_p / --paper_exemplar_m and --paper_class_m (manifolds); its own time
is printed as paper_s. --preset=paper_digits runs it all on scikit-learn's digits. It runs
once (compilation included) and reports the evaluator's own timing split.

Target (issue 4): on one H100, feature extraction (stem, layer1..4, pooled) and all probes
on CIFAR-10 (50k train / 10k test) in at most 60 s after compilation. The default source
is random uint8 images of CIFAR-10's shapes (timings do not depend on pixel values; the
network is a random-init ResNet-18). The pipeline runs twice: the first run compiles, the
second is timed. Prints one JSON object.
"""

import json
import os
import time

from absl import app
from absl import flags
import jax
import numpy as np

from rwjax import models
from rwjax.data import load_images, to_network_input
from rwjax.eval import features as features_lib
from rwjax.eval import probes

_SOURCE = flags.DEFINE_string('source', 'random', "'random' or an image source spec")
_TRAIN = flags.DEFINE_integer('train', 50_000, 'train images (random source; cap otherwise)')
_TEST = flags.DEFINE_integer('test', 10_000, 'test images (random source; cap otherwise)')
_SIZE = flags.DEFINE_integer('image_size', 32, 'network input size')
_STEM = flags.DEFINE_string('stem', 'imagenet', 'ResNet-18 stem')
_WIDTH = flags.DEFINE_integer('width', 64, 'ResNet-18 width')
_DTYPE = flags.DEFINE_string('dtype', 'auto', "'auto' | 'float32' | 'bfloat16'")
_BATCH = flags.DEFINE_integer('batch_size', 1024, 'images per feature-extraction step')
_STEPS = flags.DEFINE_integer('steps', 300, 'gradient steps per probe fit')
_PRESET = flags.DEFINE_string('preset', '', "'' (features and probes only) or 'paper'")
_NETWORKS = flags.DEFINE_integer('networks', 3, '--preset: networks per arm')
_CAP_P = flags.DEFINE_integer('capacity_P', 0, '--preset: manifolds (0: the preset\'s)')
_CAP_M = flags.DEFINE_integer('capacity_M', 0, '--preset: points per manifold (0: the preset\'s)')
# The paper block's sizes (config.paper_*; 0 keeps the preset's), to time it on subsets.
_PAPER_MAX_TRAIN = flags.DEFINE_integer(
    'paper_max_train', 0, '--preset: paper_probe.max_train, train images per classification set')
_PAPER_MAX_TEST = flags.DEFINE_integer(
    'paper_max_test', 0, '--preset: paper_probe.max_test, test images per classification set')
_PAPER_PER_CLASS = flags.DEFINE_integer(
    'paper_per_class', 0, '--preset: paper_tasks.per_class, images per invariance-task class')
_PAPER_EXEMPLAR_P = flags.DEFINE_integer(
    'paper_exemplar_p', 0, '--preset: paper_manifolds.exemplar_p, exemplar manifolds')
_PAPER_EXEMPLAR_M = flags.DEFINE_integer(
    'paper_exemplar_m', 0, '--preset: paper_manifolds.exemplar_m, points per exemplar manifold')
_PAPER_CLASS_M = flags.DEFINE_integer(
    'paper_class_m', 0, '--preset: paper_manifolds.classes.<every>.m, images per class manifold')


def _images():
  if _SOURCE.value == 'random':
    rng = np.random.default_rng(0)
    make = lambda n: (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                      rng.integers(0, 10, n).astype(np.int32))
    return make(_TRAIN.value), make(_TEST.value), 10
  train = load_images(_SOURCE.value, 'train', max_examples=_TRAIN.value)
  test = load_images(_SOURCE.value, 'test', max_examples=_TEST.value)
  return train[:2], test[:2], len(train[2])


def _cap_paper(config) -> None:
  """The --paper_* caps on the preset's paper block (a flag at 0 keeps the preset's value)."""
  t, p, m = config.paper_tasks, config.paper_probe, config.paper_manifolds
  for flag, (section, field) in ((_PAPER_MAX_TRAIN, (p, 'max_train')),
                                 (_PAPER_MAX_TEST, (p, 'max_test')),
                                 (_PAPER_PER_CLASS, (t, 'per_class')),
                                 (_PAPER_EXEMPLAR_P, (m, 'exemplar_p')),
                                 (_PAPER_EXEMPLAR_M, (m, 'exemplar_m'))):
    if flag.value:
      section[field] = flag.value
  if _PAPER_CLASS_M.value:
    for c in m.classes.values():
      c.m = _PAPER_CLASS_M.value


def _paper_settings(config) -> dict:
  """The paper block's sizes as run (None when the preset leaves it off)."""
  t, p, m = config.paper_tasks, config.paper_probe, config.paper_manifolds
  if not (p.enabled or m.enabled):
    return None
  return {'probe_max_train': p.max_train, 'probe_max_test': p.max_test,
          'tasks_per_class': t.per_class if t.enabled else None,
          'exemplar_p': m.exemplar_p, 'exemplar_m': m.exemplar_m,
          'class_pm': {k: [c.p, c.m] for k, c in m.classes.items()}}


def _preset_main() -> None:
  """The whole evaluator under a preset, 3 + 3 networks; prints one JSON object."""
  import tempfile  # pylint: disable=g-import-not-at-top
  from rwjax import defaults, evaluate  # pylint: disable=g-import-not-at-top
  from rwjax import checkpoint  # pylint: disable=g-import-not-at-top
  pre = defaults.pretrain_config()
  pre.model.stem, pre.model.width, pre.model.dtype = _STEM.value, _WIDTH.value, _DTYPE.value
  pre.data.input_size = _SIZE.value
  model = models.create_model(**pre.model)
  init = jax.jit(lambda k: models.init_variables(model, k, _SIZE.value))
  with tempfile.TemporaryDirectory() as root:
    workdirs = []
    for seed in range(42, 42 + _NETWORKS.value):
      workdir = f'{root}/seed{seed}'
      os.makedirs(workdir)
      pre.seed = seed
      checkpoint.write_config(workdir, pre, n_devices=1)
      mngr = checkpoint.manager(workdir)
      checkpoint.save(mngr, 0, {'step': np.int32(0), **init(jax.random.PRNGKey(seed))})
      mngr.wait_until_finished()
      mngr.close()
      workdirs.append(workdir)
    config = defaults.evaluate_config(_PRESET.value)
    config.workdirs, config.out, config.seeds = ','.join(workdirs), f'{root}/eval', len(workdirs)
    config.batch_size = _BATCH.value
    config.data.source = config.exemplar.source = _SOURCE.value
    config.data.max_train, config.data.max_test = _TRAIN.value, _TEST.value
    config.probe.steps = _STEPS.value
    if _CAP_P.value:
      config.capacity.P = _CAP_P.value
    if _CAP_M.value:
      config.capacity.M = _CAP_M.value
    _cap_paper(config)
    t = time.perf_counter()
    report = evaluate.evaluate(config)
    wall = time.perf_counter() - t
  print(json.dumps({
      'bench': 'evaluate', 'preset': _PRESET.value, 'jax': jax.__version__,
      'device': jax.devices()[0].device_kind, 'n_devices': jax.device_count(),
      'settings': {'source': _SOURCE.value, 'train': report['data']['train'],
                   'test': report['data']['test'], 'networks_per_arm': len(workdirs),
                   'image_size': _SIZE.value, 'stem': _STEM.value, 'width': _WIDTH.value,
                   'dtype': np.dtype(model.dtype).name, 'batch_size': _BATCH.value,
                   'probe_steps': _STEPS.value, 'batchnorm': report['batchnorm'],
                   'layers': list(config.layers), 'shift_pixels': list(config.shift.pixels),
                   'exemplar': {k: config.exemplar[k] for k in ('images', 'n_train', 'n_test')},
                   'capacity': {k: report['capacity'].get(k) for k in ('kinds', 'layers', 'P',
                                                                       'M', 'n_t')},
                   'paper': _paper_settings(config)},
      'wall_s (with compilation)': round(wall, 1),
      'timing_s': {k: round(v, 1) for k, v in report['timing'].items()},
      'paper_s': (round(report['timing']['paper_s'], 1) if 'paper_s' in report['timing']
                  else None),
  }))


def main(argv):
  del argv
  if _PRESET.value:
    _preset_main()
    return
  t = time.perf_counter()
  (x_train, y_train), (x_test, y_test), classes = _images()
  load_s = time.perf_counter() - t
  model = models.create_model(stem=_STEM.value, width=_WIDTH.value, dtype=_DTYPE.value)
  size = _SIZE.value
  variables = jax.jit(lambda k: models.init_variables(model, k, size))(jax.random.PRNGKey(0))
  prep = jax.jit(to_network_input, static_argnums=(1, 2))

  def pipeline():
    times = {}
    t = time.perf_counter()
    train, test = prep(x_train, size, 3), prep(x_test, size, 3)
    jax.block_until_ready((train, test))
    times['preprocess_s'] = time.perf_counter() - t
    t = time.perf_counter()
    f_train = features_lib.extract_features(model, variables, train, batch_size=_BATCH.value)
    f_test = features_lib.extract_features(model, variables, test, batch_size=_BATCH.value)
    times['features_s'] = time.perf_counter() - t
    t = time.perf_counter()
    accuracy = {}
    for layer in features_lib.LAYERS:  # All six, pooled too (no reuse of layer4's probe).
      result = probes.linear_probe(jax.random.PRNGKey(1), f_train[layer], y_train,
                                   f_test[layer], y_test, num_classes=classes,
                                   steps=_STEPS.value)
      accuracy[layer] = round(result.test_accuracy, 4)
    times['probes_s'] = time.perf_counter() - t
    times['total_s'] = sum(times.values())
    return times, accuracy, {l: list(f.shape) for l, f in f_train.items()}

  first, _, _ = pipeline()
  timed, accuracy, shapes = pipeline()
  print(json.dumps({
      'bench': 'evaluate',
      'jax': jax.__version__,
      'device': jax.devices()[0].device_kind,
      'n_devices': jax.device_count(),
      'settings': {'source': _SOURCE.value, 'train': len(y_train), 'test': len(y_test),
                   'image_size': size, 'stem': _STEM.value, 'width': _WIDTH.value,
                   'dtype': np.dtype(model.dtype).name,
                   'batch_size': _BATCH.value, 'probe_steps': _STEPS.value,
                   'l2_grid': list(probes.L2_GRID)},
      'feature_shapes': shapes,
      'load_s': round(load_s, 3),
      'first_run_s (with compilation)': round(first['total_s'], 3),
      'timed_s': {k: round(v, 3) for k, v in timed.items()},
      'target_s': 60.0,
      'meets_target': timed['total_s'] <= 60.0,
      'test_accuracy': accuracy,
  }))


if __name__ == '__main__':
  app.run(main)
