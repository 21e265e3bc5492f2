"""Evaluates a pre-trained network against random-init networks of the same architecture.

  python -m rwjax.evaluate --config=configs/evaluate.py --config.workdir=DIR [--config.x.y=v]

The pre-trained network is the latest checkpoint of the pre-training workdir DIR, rebuilt
from the config saved there; seed s gives a random-init network of that architecture and
the probes' validation split and task draws, shared by both arms (so tests are paired).
On natural images the networks never saw, per layer (stem, layer1..4, pooled):
  - classification: a linear probe on frozen, average-pooled features;
  - translated test sets: that probe on test images shifted by k pixels;
  - exemplar tasks: P images, each its own class, under held-out translations, rotations
    or colour jitter;
  - manifold capacity: mean-field capacity, radius, dimension and center correlation of
    P manifolds (M translations / rotations / colour jitters of one image, or M images of
    one class) in each layer's full, flattened representation (randomly projected when
    wider than capacity.project_dims); seed s draws the same manifolds, projections and
    Gaussian draws for both arms. capacity.layers='relus' (the paper's analysis) measures
    every ReLU output of the ResNet-18 (17) and the projector's hidden ReLUs and output,
    in network order, instead of the layers above ('stages').
Writes DIR/eval/report.json (every number and the configs behind it) and PNG plots, and
prints a table.
"""

import functools
import os
import sys
import time
from typing import Callable

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np

from rwjax import models
from rwjax import paths as paths_lib
from rwjax.data import sources
from rwjax.data import tasks
from rwjax.data.preprocess import to_network_input
from rwjax.errors import InputError, cli_main, parse_flags
from rwjax.eval import capacity as capacity_lib
from rwjax.eval import features as features_lib
from rwjax.eval import manifolds as manifolds_lib
from rwjax.eval import probes
from rwjax.eval import report as report_lib
from rwjax.eval import stats
from rwjax.ssl import checkpoint

ARMS = ('pretrained', 'random_init')
CAPACITY_LAYERS = ('stages', 'relus')  # config.capacity.layers
CAPACITY_METRICS = ('alpha', 'radius', 'dimension', 'center_corr')


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
  e, c = config.exemplar, config.capacity
  if e.enabled:
    count('exemplar.images', e.images, 2)
    count('exemplar.n_train', e.n_train, 2)
    count('exemplar.n_test', e.n_test)
    bad = [t for t in e.transforms if t not in tasks.TRANSFORMS]
    if bad or not e.transforms:
      raise InputError(f'config.exemplar.transforms={tuple(e.transforms)!r}: choose from '
                       f'{tasks.TRANSFORMS}')
  if c.enabled:
    kinds = tuple(c.kinds)
    if not kinds or len(set(kinds)) < len(kinds) or set(kinds) - set(manifolds_lib.KINDS):
      raise InputError(f'config.capacity.kinds={kinds!r}: choose distinct kinds from '
                       f'{manifolds_lib.KINDS}')
    count('capacity.P', c.P, 2)
    count('capacity.M', c.M)
    count('capacity.n_t', c.n_t)
    count('capacity.project_dims', c.project_dims)
    if c.layers not in CAPACITY_LAYERS:
      raise InputError(f'config.capacity.layers={c.layers!r}: use one of {CAPACITY_LAYERS} '
                       "('stages': config.layers; 'relus': every ReLU output and the projector)")
    if (isinstance(c.kappa, bool) or not isinstance(c.kappa, (int, float))
        or not 0 <= c.kappa < float('inf')):
      raise InputError(f'config.capacity.kappa={c.kappa!r} must be a finite number >= 0')
  if e.enabled or _exemplar_kinds(config):
    if not 0 <= e.max_shift <= 1:
      raise InputError(f'config.exemplar.max_shift={e.max_shift!r} must be in [0, 1]')


def _exemplar_kinds(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The exemplar manifold kinds the capacity analysis builds (from config.exemplar.source)."""
  if not config.capacity.enabled:
    return ()
  return tuple(k for k in config.capacity.kinds if k in manifolds_lib.EXEMPLAR_KINDS)


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
  d, e, p, cap = config.data, config.exemplar, config.probe, config.capacity
  cap_kinds = tuple(cap.kinds) if cap.enabled else ()

  x_train, y_train, class_names = _load(d.source, d.train_split, config, d.max_train, size,
                                        channels)
  x_test, y_test, _ = _load(d.source, d.test_split, config, d.max_test, size, channels)
  pool = None
  if e.enabled or _exemplar_kinds(config):
    pool, _, _ = _load(e.source, e.split, config, 0, size, channels)
    if e.enabled and e.images > len(pool):
      raise InputError(f'config.exemplar.images={e.images} exceeds the {len(pool)} images of '
                       f'{e.source} ({e.split}); lower it')
  # Capacity keys of seed s, beside split(PRNGKey(s), 3): fold_in 3 draws the manifolds,
  # fold_in 4 the projections and the Gaussian draws of the analysis, all shared by both arms.
  cap_key = lambda seed, i: jax.random.fold_in(jax.random.PRNGKey(seed), i)
  manifold_images = []  # [kinds, P, M, H, W, C] per seed; built first so bad sizes fail early.
  for seed in range(config.seeds if cap_kinds else 0):
    manifold_images.append(manifolds_lib.build(
        cap_key(seed, 3), cap_kinds, exemplar_pool=pool, class_images=x_test,
        class_labels=y_test, p=cap.P, m=cap.M, max_shift=e.max_shift,
        max_degrees=e.max_degrees, fill=e.fill))
  shifts = tuple(config.shift.pixels) if config.shift.enabled else ()

  init = jax.jit(lambda key: models.init_variables(model, key, size))
  shift_fn = jax.jit(tasks.translate)
  task_fn = jax.jit(tasks.exemplar_task, static_argnames=(
      'transform', 'n_train', 'n_test', 'max_shift', 'max_degrees', 'fill'))
  extract = functools.partial(features_lib.extract_features, model,
                              batch_size=config.batch_size, layers=layers)
  if cap.layers == 'relus':
    cap_all = features_lib.relu_layers(model)
    cap_layers, cap_extract = cap_all, functools.partial(
        features_lib.extract_relus, model, batch_size=config.batch_size)
  else:
    cap_all, cap_layers = features_lib.LAYERS, layers
    cap_extract = functools.partial(extract, pool=False)
  fit = functools.partial(probes.fit_probe, l2_grid=tuple(p.l2_grid),
                          val_fraction=p.val_fraction, steps=p.steps)
  timing = {'features_s': 0.0, 'probes_s': 0.0, 'capacity_s': 0.0}

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
  geometry = {arm: {g: {kind: {l: [] for l in cap_layers} for kind in cap_kinds}
                    for g in CAPACITY_METRICS} for arm in ARMS}
  solver_residual, capacity_dims = 0.0, {}
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
      if cap_kinds:
        results = timed('capacity_s', _manifold_geometry, cap_extract, variables,
                        manifold_images[seed], cap_kinds, cap_layers, cap_all, cap,
                        cap_key(seed, 4))
        for (kind, l), result in results.items():
          capacity_dims[l] = result['dims']
          solver_residual = max(solver_residual, result['solver_residual'])
          for g in CAPACITY_METRICS:
            geometry[arm][g][kind][l].append(result[g])
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
      'workdir': paths_lib.abspath(config.workdir),
      'step': checkpoint.latest_step(config.workdir),
      'seeds': config.seeds,
      'test': 'paired t over seeds (seed s: random-init network s; probe split and task '
              'draw s shared by both arms)',
      'data': {'source': d.source, 'train': len(y_train), 'test': len(y_test),
               'classes': class_names, 'image_size': size, 'channels': channels},
      'classification': compare(lambda arm: acc[arm]['classification']),
      'shift': {str(k): compare(lambda arm: acc[arm]['shift'][k]) for k in shifts},
      'exemplar': {t: compare(lambda arm: acc[arm]['exemplar'][t])
                   for t in (e.transforms if e.enabled else ())},
      'capacity': _capacity_report(config, model, pre_variables, size, channels, cap_layers,
                                   geometry, capacity_dims, solver_residual)
                  if cap_kinds else {},
      'timing': timing,
      'jax': {'version': jax.__version__, 'devices': [str(x) for x in jax.local_devices()]},
      'configs': {'evaluate': config.to_dict(), 'pretrain': pre_config.to_dict()},
  }


def _manifold_geometry(extract: Callable[..., dict], variables: dict, images: jax.Array,
                       kinds: tuple[str, ...], layers: tuple[str, ...],
                       all_layers: tuple[str, ...], cap: ml_collections.ConfigDict,
                       key: jax.Array) -> dict:
  """Manifold analysis of every kind of manifold in every layer of one network.

  Args:
    extract: flattened features of the network, (variables, images, project_dims=,
      project_key=) -> {layer: f32[N, width]} for `layers` (extract_features with pool=False
      or extract_relus, model and batch size bound).
    variables: the network's variables.
    images: f32[kinds, P, M, H, W, C] manifold images.
    kinds, layers: names of the kinds (images' first axis) and layers to analyse.
    all_layers: the layer list whose indices key each layer's Gaussian draws
      (features_lib.LAYERS or relu_layers).
    cap: config.capacity.
    key: raw PRNG key of the random projections and the analyses' Gaussian draws.

  Returns:
    {(kind, layer): manifold_analysis output plus 'dims' (the analysed width)}.
  """
  k_project, k_analysis = jax.random.split(key)
  flat = extract(variables, images.reshape(-1, *images.shape[3:]),
                 project_dims=cap.project_dims, project_key=k_project)
  width = max(f.shape[1] for f in flat.values())
  # A 1 x 1 layer4 map is the pooled representation: analyse it once.
  alias = {l: 'layer4' if l == 'pooled' and 'layer4' in flat and np.array_equal(
      flat['layer4'], flat['pooled']) else l for l in layers}
  results = {}
  for i, kind in enumerate(kinds):
    for l in sorted(layers, key=lambda l: alias[l] != l):  # Aliased layers last.
      points = flat[l].reshape(len(kinds), cap.P, cap.M, -1)[i]
      if alias[l] != l:
        results[kind, l] = results[kind, alias[l]]
        continue
      result = capacity_lib.manifold_analysis(
          manifolds_lib.pad_features(points, width), kappa=float(cap.kappa), n_t=cap.n_t,
          key=jax.random.fold_in(jax.random.fold_in(k_analysis, manifolds_lib.KINDS.index(kind)),
                                 all_layers.index(l)))
      bad = [g for g in CAPACITY_METRICS if not np.isfinite(result[g])]
      if bad:  # e.g. a layer whose activations are all zero on some manifold: reported as null.
        print(f'warning: the manifold analysis of {kind} manifolds in {l} gave non-finite '
              f'{bad} (degenerate features); they are null in report.json', file=sys.stderr)
      results[kind, l] = {**result, 'dims': points.shape[-1]}
  return results


def _capacity_report(config: ml_collections.ConfigDict, model: models.SimCLRModel,
                     variables: dict, size: int, channels: int, layers: tuple[str, ...],
                     geometry: dict, dims: dict, solver_residual: float) -> dict:
  """report['capacity']: settings, layer widths and metric -> kind -> layer -> comparison,
  layers in network order."""
  cap = config.capacity
  x = jax.ShapeDtypeStruct((1, size, size, channels), jnp.float32)
  if cap.layers == 'relus':
    shapes = jax.eval_shape(functools.partial(features_lib.relu_activations, model), variables,
                            x)
  else:
    backbone, variables = features_lib.backbone_of(model, variables)
    shapes = jax.eval_shape(
        lambda v, x: backbone.apply(v, x, train=False, return_stages=True), variables, x)
  out = {'kinds': list(cap.kinds), 'layers': cap.layers, 'P': cap.P, 'M': cap.M,
         'n_t': cap.n_t, 'kappa': float(cap.kappa), 'project_dims': cap.project_dims,
         'width': {l: int(np.prod(shapes[l].shape[1:])) for l in layers},
         'dims': {l: int(dims[l]) for l in layers},
         'solver_residual': float(solver_residual)}
  for g in CAPACITY_METRICS:
    out[g] = {kind: {l: stats.compare(geometry['pretrained'][g][kind][l],
                                      geometry['random_init'][g][kind][l]) for l in layers}
              for kind in cap.kinds}
  return out


def run(config: ml_collections.ConfigDict) -> dict:
  """Evaluates, writes the report and plots, prints the table; returns the report."""
  report = evaluate(config)
  out = config.out or paths_lib.join(config.workdir, 'eval')
  paths = report_lib.write(report, out)
  print(report_lib.table(report))
  print(f"\n{report['timing']['total_s']:.1f} s; wrote " + ', '.join(paths), flush=True)
  return report


def define_flags() -> None:
  """The binary's flag; defined only when run as a program (see rwjax.train)."""
  config_flags.DEFINE_config_file(
      'config', None, 'Evaluation config file (configs/evaluate.py[:preset]).', lock_config=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments {argv[1:]}; settings go in --config.x=v')
  if flags.FLAGS.config is None:
    raise app.UsageError('pass --config=configs/evaluate.py --config.workdir=DIR')
  cli_main(lambda: run(flags.FLAGS.config))


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=parse_flags)
