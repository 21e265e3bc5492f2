"""Evaluates pre-trained networks against random-init networks of the same architecture.

  python -m rwjax.evaluate --config=configs/evaluate.py --config.workdir=DIR [--config.x.y=v]
  python -m rwjax.evaluate --config=configs/evaluate.py:paper \
      --config.workdirs='runs/seed*' --config.out=runs/eval    (or DIR1,DIR2,DIR3)

A pre-trained network is the latest checkpoint of a pre-training workdir, rebuilt from the
config saved there. Seed s gives random-init network s of that architecture and evaluation
draw s (the probes' validation split and task draws), shared by both arms. With one workdir
(config.workdir) its network stands in for every seed and the test is paired over seeds
(rwjax's original protocol: it leaves out the variation between pre-training runs). With
several (config.workdirs, one per seed), pre-trained network s is workdir s, every number is
one value per network, and the test is across networks (Welch's t by default, and Hedges' g;
rwjax.eval.stats says why). config.batchnorm picks the BatchNorm statistics the frozen
networks normalise natural images with, the same for both arms (rwjax.eval.batchnorm).
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
import glob
import sys
import time
from typing import Callable, NamedTuple

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np

from rwjax import checkpoint
from rwjax import models
from rwjax import paths as paths_lib
from rwjax.data import sources
from rwjax.data import tasks
from rwjax.data.preprocess import to_network_input
from rwjax.errors import InputError, cli_main, parse_flags
from rwjax.eval import batchnorm as bn_lib
from rwjax.eval import capacity as capacity_lib
from rwjax.eval import features as features_lib
from rwjax.eval import manifolds as manifolds_lib
from rwjax.eval import paper_protocol
from rwjax.eval import probes
from rwjax.eval import report as report_lib
from rwjax.eval import stats

ARMS = stats.ARMS
CAPACITY_LAYERS = ('stages', 'relus')  # config.capacity.layers
CAPACITY_METRICS = ('alpha', 'radius', 'dimension', 'center_corr')
TESTS = ('auto', 'welch', 'paired')  # config.test
# Report rows name the protocol they follow; rwjax's tasks and probes are these.
PROTOCOL = 'rwjax'
PROTOCOLS = {PROTOCOL: 'L2-regularised logistic-regression probes on frozen features, the '
                       'strength chosen on a validation split of the training images; '
                       'exemplar tasks and manifold capacity as configured (rwjax)'}


def workdirs_of(config: ml_collections.ConfigDict) -> list[str]:
  """The pre-training workdirs of the pre-trained arm: config.workdir, or config.workdirs
  ('DIR1,DIR2' and / or globs, each glob's matches sorted); InputError when none or both
  are set, a glob matches nothing, or a workdir is listed twice."""
  if config.workdir and config.workdirs:
    raise InputError(f'config.workdir={config.workdir!r} and config.workdirs='
                     f'{config.workdirs!r} are both set; set one (workdirs for several)')
  if not config.workdir and not config.workdirs:
    raise InputError('config.workdir is not set; pass --config.workdir=DIR (a pre-training '
                     'workdir written by `python -m rwjax.train`), or several as '
                     "--config.workdirs=DIR1,DIR2,DIR3 or a glob ('runs/seed*')")
  if config.workdir:
    return [config.workdir]
  found = []
  for item in (i.strip() for i in config.workdirs.split(',')):
    if not item:
      continue
    if glob.has_magic(item):
      matches = sorted(m for m in paths_lib.glob(item) if paths_lib.isdir(m))
      if not matches:
        raise InputError(f'config.workdirs: {item!r} matches no directory; check the pattern '
                         '(quote it so the shell does not expand it)')
      found += matches
    else:
      found.append(item)
  paths = [paths_lib.abspath(d) for d in found]
  twice = sorted({d for d in paths if paths.count(d) > 1})
  if twice or not paths:
    raise InputError(f'config.workdirs={config.workdirs!r} lists {twice or "no workdir"}'
                     f'{" more than once" if twice else ""}: each pre-training run counts once')
  return found


def validate(config: ml_collections.ConfigDict) -> None:
  """Every config value the evaluator reads, checked once; InputError on the first bad one."""
  def count(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
      raise InputError(f'config.{name}={value!r} must be an integer >= {minimum}')

  workdirs = workdirs_of(config)
  count('seeds', config.seeds)
  if len(workdirs) > 1 and config.seeds != len(workdirs):
    raise InputError(f'config.seeds={config.seeds} must equal the number of pre-training '
                     f'workdirs ({len(workdirs)}): seed s pairs workdir s with random-init '
                     f'network s; set --config.seeds={len(workdirs)}')
  if len(workdirs) > 1 and not config.out:
    raise InputError('config.out is not set: with several workdirs pass --config.out=DIR for '
                     'the report')
  if config.test not in TESTS:
    raise InputError(f'config.test={config.test!r}: use one of {TESTS} (auto: paired over '
                     'seeds with one workdir, Welch across networks with several)')
  bn_lib.check_mode(config.batchnorm)
  if config.capacity.batchnorm:
    bn_lib.check_mode(config.capacity.batchnorm, 'config.capacity.batchnorm')
  count('batchnorm_batch', config.batchnorm_batch, 0)
  count('batchnorm_adapt_images', config.batchnorm_adapt_images, 0)
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
  paper_protocol.validate(config)  # config.paper_tasks / paper_probe / paper_manifolds


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


class Network(NamedTuple):
  """One network of an arm: the unit of the statistics when there are several workdirs."""
  arm: str  # 'pretrained' | 'random_init'
  seed: int  # evaluation draw s (probe split, task draws), shared by pair s of both arms
  source: str  # the workdir, or 'init seed s'
  variables: dict  # stored (pre-trained) or initial {'params', 'batch_stats'}


def load_pretrained(workdirs: list[str]) -> tuple[list[ml_collections.ConfigDict], list[dict]]:
  """(config, variables) of each workdir's latest checkpoint; InputError when the workdirs'
  networks differ in architecture (config.model but its compute dtype, or data.input_size):
  one arm, one network shape (the first workdir's config builds the model)."""
  configs = [checkpoint.read_config(d) for d in workdirs]
  shape = lambda c: {**{k: v for k, v in c.model.to_dict().items() if k != 'dtype'},
                     'input_size': c.data.input_size}
  first = shape(configs[0])
  for d, c in zip(workdirs[1:], configs[1:]):
    diff = sorted(k for k in set(shape(c)) | set(first) if shape(c).get(k) != first.get(k))
    if diff:
      what = ', '.join(f'{k}: {first.get(k)!r} vs {shape(c).get(k)!r}' for k in diff)
      raise InputError(f'the pre-training workdirs {workdirs[0]!r} and {d!r} hold different '
                       f'architectures ({what}); one arm needs networks of one architecture: '
                       'evaluate them separately')
  return configs, [checkpoint.load_for_eval(d)[1] for d in workdirs]


def networks_of(config: ml_collections.ConfigDict, model: models.SimCLRModel, size: int,
                workdirs: list[str], pretrained: list[dict]) -> dict[str, list[Network]]:
  """{arm: [Network for seed s in range(config.seeds)]}: pre-trained network s is workdir s
  (the one workdir for every s when there is one), random-init network s is initialised
  from split(PRNGKey(s), 3)[0]."""
  out = {'pretrained': [], 'random_init': []}
  for seed in range(config.seeds):
    i = seed % len(workdirs)
    out['pretrained'].append(Network('pretrained', seed, paths_lib.abspath(workdirs[i]),
                                     pretrained[i]))
    k_init = jax.random.split(jax.random.PRNGKey(seed), 3)[0]
    out['random_init'].append(Network('random_init', seed, f'init seed {seed}',
                                      models.init_variables(model, k_init, size)))
  return out


def _adapt_images(config: ml_collections.ConfigDict, x_train: jax.Array) -> jax.Array:
  """The probe's training images that 'adapt' recomputes the statistics on (an evenly spaced
  subset of config.batchnorm_adapt_images when set)."""
  n = config.batchnorm_adapt_images
  if not n or n >= len(x_train):
    return x_train
  return x_train[np.linspace(0, len(x_train) - 1, n).round().astype(int)]


def evaluate(config: ml_collections.ConfigDict) -> dict:
  """Runs every enabled task for both arms over all seeds; returns the report dict."""
  validate(config)
  start = time.perf_counter()
  workdirs = workdirs_of(config)
  pre_configs, pretrained = load_pretrained(workdirs)
  pre_config = pre_configs[0]
  model = models.create_model(**pre_config.model)
  size, channels = pre_config.data.input_size, pre_config.model.channels
  layers = tuple(config.layers)
  d, e, p, cap = config.data, config.exemplar, config.probe, config.capacity
  cap_kinds = tuple(cap.kinds) if cap.enabled else ()
  several = len(workdirs) > 1
  paired = config.test == 'paired' or (config.test == 'auto' and not several)
  bn_mode, cap_bn_mode = config.batchnorm, cap.batchnorm or config.batchnorm

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
  networks = networks_of(config, model, size, workdirs, pretrained)
  timing = {'features_s': 0.0, 'probes_s': 0.0, 'capacity_s': 0.0, 'batchnorm_s': 0.0}

  def timed(kind, fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    timing[kind] += time.perf_counter() - t
    return out

  adapt_images = _adapt_images(config, x_train)
  extractors = {}  # (source, mode) -> features_lib.Extractor; 'adapt' runs once per network.

  def features(net: Network, mode: str) -> features_lib.Extractor:
    """Network `net`'s feature extractor honouring BatchNorm mode `mode`."""
    if (net.source, mode) not in extractors:
      extractors[net.source, mode] = timed(
          'batchnorm_s', features_lib.extractor, model, net.variables, mode,
          batch_size=config.batch_size, bn_batch=config.batchnorm_batch,
          adapt_images=adapt_images)
    return extractors[net.source, mode]

  shift_fn = jax.jit(tasks.translate)
  task_fn = jax.jit(tasks.exemplar_task, static_argnames=(
      'transform', 'n_train', 'n_test', 'max_shift', 'max_degrees', 'fill'))
  if cap.layers == 'relus':
    cap_all = features_lib.relu_layers(model)
    cap_layers = cap_all
    cap_extract = lambda fx: lambda _, images, **k: fx.relus(images, **k)
  else:
    cap_all, cap_layers = features_lib.LAYERS, layers
    cap_extract = lambda fx: lambda _, images, **k: fx.stages(images, layers=layers,
                                                               pool=False, **k)
  fit = functools.partial(probes.fit_probe, l2_grid=tuple(p.l2_grid),
                          val_fraction=p.val_fraction, steps=p.steps)
  # The paper's protocol: its images loaded (and checked) now, run after today's tasks on the
  # same networks, its probes under config.batchnorm, its manifolds under capacity's mode.
  paper_prepared = paper_protocol.prepare(
      config, model, pre_config, lambda arm, seed: networks[arm][seed].variables, size,
      channels, features_of=lambda arm, seed, purpose: features(
          networks[arm][seed], bn_mode if purpose == 'probes' else cap_bn_mode)
  ) if paper_protocol.enabled(config) else None

  # The average-pooled layer4 map is the pooled representation: probe it once.
  probed = [l for l in layers if not (l == 'pooled' and 'layer4' in layers)]
  acc = {arm: {'classification': {l: [] for l in layers},
               'shift': {k: {l: [] for l in layers} for k in shifts},
               'exemplar': {t: {l: [] for l in layers} for t in e.transforms}}
         for arm in ARMS}
  geometry = {arm: {g: {kind: {l: [] for l in cap_layers} for kind in cap_kinds}
                    for g in CAPACITY_METRICS} for arm in ARMS}
  solver_residual, capacity_dims = 0.0, {}
  for arm in stats.evaluated_arms(config.random_init_arm):
    fixed, fixed_source = None, None  # One network's features of fixed images, kept while
    for net in networks[arm]:         # the next seed has the same network (one workdir).
      seed = net.seed
      _, k_probe, k_task = jax.random.split(jax.random.PRNGKey(seed), 3)
      fx = features(net, bn_mode)
      extract = lambda images: timed('features_s', fx.stages, images, layers=layers)
      if fixed_source != net.source:
        fixed = {'train': extract(x_train), 'test': extract(x_test)}
        for k in shifts:
          fixed[k] = fixed['test'] if k == 0 else extract(shift_fn(x_test, jnp.array([0, k])))
        fixed_source = net.source
      for l in probed:
        probe = timed('probes_s', fit, k_probe, fixed['train'][l], y_train,
                      num_classes=len(class_names))
        acc[arm]['classification'][l].append(probes.probe_accuracy(probe, fixed['test'][l],
                                                                   y_test))
        for k in shifts:
          acc[arm]['shift'][k][l].append(probes.probe_accuracy(probe, fixed[k][l], y_test))
      if cap_kinds:
        results = timed('capacity_s', _manifold_geometry,
                        cap_extract(features(net, cap_bn_mode)), None,
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
        f_train = extract(task.x_train)
        f_test = extract(task.x_test)
        for l in probed:
          result = timed('probes_s', probes.linear_probe, k_probe, f_train[l],
                         np.asarray(task.y_train), f_test[l], np.asarray(task.y_test),
                         num_classes=e.images, l2_grid=tuple(p.l2_grid),
                         val_fraction=p.val_fraction, steps=p.steps)
          acc[arm]['exemplar'][transform][l].append(result.test_accuracy)

  # --- The paper's protocol (rwjax.eval.paper_protocol), its images loaded above.
  paper_report = {}
  if paper_prepared is not None:
    t = time.perf_counter()
    paper_report = paper_protocol.run(paper_prepared)
    timing['paper_s'] = time.perf_counter() - t

  same = lambda l: 'layer4' if l == 'pooled' and 'layer4' in layers else l
  row = functools.partial(_row, paired=paired, batchnorm=bn_mode)
  compare = lambda get: {
      l: row(get('pretrained')[same(l)], get('random_init')[same(l)]) for l in layers}
  timing['total_s'] = time.perf_counter() - start
  return {
      'workdir': paths_lib.abspath(workdirs[0]),
      'step': checkpoint.latest_step(workdirs[0]),
      'workdirs': [paths_lib.abspath(w) for w in workdirs],
      'steps': [checkpoint.latest_step(w) for w in workdirs],
      'seeds': config.seeds,
      'test': _test_text(paired, several),
      'statistics': _statistics(config, networks, paired, several),
      'batchnorm': _batchnorm_report(config, bn_mode, cap_bn_mode, len(adapt_images)),
      'protocols': dict(PROTOCOLS),
      'data': {'source': d.source, 'train': len(y_train), 'test': len(y_test),
               'classes': class_names, 'image_size': size, 'channels': channels},
      'classification': compare(lambda arm: acc[arm]['classification']),
      'shift': {str(k): compare(lambda arm: acc[arm]['shift'][k]) for k in shifts},
      'exemplar': {t: compare(lambda arm: acc[arm]['exemplar'][t])
                   for t in (e.transforms if e.enabled else ())},
      'capacity': _capacity_report(config, model, pretrained[0], size, channels, cap_layers,
                                   geometry, capacity_dims, solver_residual,
                                   functools.partial(_row, paired=paired,
                                                     batchnorm=cap_bn_mode))
                  if cap_kinds else {},
      'paper': paper_report,
      'timing': timing,
      'jax': {'version': jax.__version__, 'devices': [str(x) for x in jax.local_devices()]},
      'configs': {'evaluate': config.to_dict(), 'pretrain': pre_config.to_dict(),
                  'pretrain_runs': [c.to_dict() for c in pre_configs]},
  }


def _row(pretrained: list, random_init: list, *, paired: bool, batchnorm: str,
         protocol: str = PROTOCOL) -> dict:
  """One report row: stats.compare of the arms' values, tagged with its protocol and
  BatchNorm mode."""
  return {**stats.compare(pretrained, random_init, paired=paired), 'protocol': protocol,
          'batchnorm': batchnorm}


def _test_text(paired: bool, several: bool) -> str:
  unit = ('networks (pre-trained network s: workdir s; random-init network s: init seed s)'
          if several else 'seeds (one pre-trained network for every seed; random-init '
          'network s: init seed s)')
  how = ('paired t (pair s shares probe split and task draw s)' if paired
         else "Welch's t (unequal variances)")
  return f'{how} over {unit}'


def _statistics(config: ml_collections.ConfigDict, networks: dict, paired: bool,
                several: bool) -> dict:
  """report['statistics']: what one value is, the test and the effect size, and why."""
  return {
      'unit': 'network' if several else 'seed',
      'test': 'paired t' if paired else 'welch t',
      'effect_size': 'cohen d_z' if paired else 'hedges g',
      'config_test': config.test,
      'networks': {arm: [n.source for n in nets] for arm, nets in networks.items()},
      'note': ('one value per pre-training run: the test is across networks' if several else
               'one pre-trained network: its values vary only with the evaluation draws, so '
               'p leaves out the variation between pre-training runs (pass several '
               'workdirs for a test across networks)'),
  }


def _batchnorm_report(config: ml_collections.ConfigDict, mode: str, cap_mode: str,
                      n_adapt: int) -> dict:
  """report['batchnorm']: the modes and how their statistics were formed."""
  group = config.batchnorm_batch or config.batch_size
  how = {
      'running': 'eval mode, the stored running statistics (pre-training / initial 0 and 1)',
      'batch': (f'train-mode statistics of each group of {group} images (at most the set): a '
                'fixed permutation (PRNGKey(0)) of each image set cut into groups, the last '
                'topped up with the first images'),
      'adapt': f'running statistics recomputed once on {n_adapt} probe training images, then '
               'eval mode',
  }
  return {'mode': mode, 'capacity_mode': cap_mode,
          'batch': group if 'batch' in (mode, cap_mode) else None,
          'adapt_images': n_adapt if 'adapt' in (mode, cap_mode) else None,
          'how': {m: how[m] for m in dict.fromkeys((mode, cap_mode))}}


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
                     geometry: dict, dims: dict, solver_residual: float,
                     row: Callable[[list, list], dict] = stats.compare) -> dict:
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
    out[g] = {kind: {l: row(geometry['pretrained'][g][kind][l],
                            geometry['random_init'][g][kind][l]) for l in layers}
              for kind in cap.kinds}
  return out


def run(config: ml_collections.ConfigDict) -> dict:
  """Evaluates, writes the report and plots, prints the table; returns the report."""
  report = evaluate(config)
  out = config.out or paths_lib.join(report['workdir'], 'eval')
  paths = report_lib.write(report, out)
  print(report_lib.table(report))
  if report.get('paper'):
    print('\n' + paper_protocol.table(report['paper']))
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
