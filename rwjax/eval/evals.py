"""Evaluations by name: `config.evals.NAME = {type, ...}`, each built from its type's schema.

  'probe'      linear probes (rwjax.eval.probes: 'logistic', 'adam') on frozen features of
               tasks (rwjax.eval.tasks): classification of datasets (with translated test
               sets), exemplar tasks, the paper's invariance tasks;
  'manifolds'  the geometry (rwjax.eval.geometry) of manifolds (rwjax.eval.manifolds:
               exemplar, class, waves) in every layer.

An eval names the layers it reads (a set of rwjax.models.layers) and the BatchNorm modes it is
measured under; for seed s it asks for views of layers (rwjax.eval.activations.View) on sets of
images (`Job`s), and from those features it measures values keyed (task, layer, measure).
The evaluator (rwjax.evaluate) runs each network once over each set of images per BatchNorm
mode, for all evals together. Seed s's random draws come from PRNGKey(s), the same for both
arms, in the scheme `draws` names ('rwjax' or 'paper'; docs/evaluation.md, 'Random draws').
"""

import functools
from typing import Any, Callable, NamedTuple

import jax
import ml_collections
import numpy as np

from rwjax import schema as S
from rwjax.data import preprocess
from rwjax.data import sources
from rwjax.errors import InputError
from rwjax.eval import activations as act
from rwjax.eval import batchnorm as bn_lib
from rwjax.eval import geometry
from rwjax.eval import manifolds as manifolds_lib
from rwjax.eval import probes as probes_lib
from rwjax.eval import tasks as tasks_lib
from rwjax.eval import transforms
from rwjax.models import layers as layers_lib

TYPES = ('probe', 'manifolds')
DRAWS = ('rwjax', 'paper')
FEATURES = ('pool', 'paper')
NORMALIZE = ('none', 'dataset')
REDRAW = ('once', 'epoch')
_MODES = S.Seq(S.Choice(bn_lib.MODES), min_len=1, distinct=True)
_FILL = S.Either(S.Float(), S.Choice(('mean',)))
_JITTER = S.Seq(S.Float(0.0), size=4)
_RW_EXEMPLAR = ('translate', 'rotate', 'color')
# A probe's report measures: (measure, rwjax.eval.probes.ProbeResult field).
_PROBE_MEASURES = {'logistic': (('logistic', 'accuracy'),),
                   'adam': (('adam_best', 'accuracy'), ('adam_last', 'last'))}


def _transform_keys(c, rules, prefix, style, translate):
  """The settings of a random transform (rwjax.eval.transforms.Transform)."""
  S.key(c, rules, f'{prefix}.style', style, S.Choice(transforms.STYLES))
  S.key(c, rules, f'{prefix}.translate', translate, S.Float(0.0, 1.0))  # side fraction
  S.key(c, rules, f'{prefix}.degrees', 180.0, S.Float(0.0))
  S.key(c, rules, f'{prefix}.jitter', (0.4, 0.4, 0.4, 0.1), _JITTER)  # b, c, s, hue
  S.key(c, rules, f'{prefix}.fill', 0.0, _FILL)  # uncovered pixels: a number or 'mean'


def probe_config() -> tuple[ml_collections.ConfigDict, dict]:
  """A 'probe' eval's keys with their rules (rwjax's protocol's values; the paper's beside)."""
  c, r = ml_collections.ConfigDict(), {}
  S.key(c, r, 'type', 'probe', S.Choice(TYPES))
  S.key(c, r, 'batchnorm', ('running',), _MODES)  # paper: ('batch',)
  S.key(c, r, 'layers', 'stages', S.Names(layers_lib.SETS))  # paper: 'paper_probe'
  # 'pool': spatial maps averaged over space; 'paper': the encoder output as is, every other
  # layer flattened and L2-normalised (the paper's TestModel).
  S.key(c, r, 'features', 'pool', S.Choice(FEATURES))
  S.key(c, r, 'probes', ('logistic',), S.Seq(S.Choice(probes_lib.PROBES), min_len=1,
                                                distinct=True))  # paper: ('adam',)
  S.key(c, r, 'draws', 'rwjax', S.Choice(DRAWS))
  # 'dataset': images normalised with their dataset's channel mean and std after the
  # transforms (the paper's; rwjax.data.preprocess.CHANNEL_STATS); 'none': [0, 1] (rwjax's).
  S.key(c, r, 'normalize', 'none', S.Choice(NORMALIZE))  # paper: 'dataset'
  S.key(c, r, 'logistic.l2_grid', probes_lib.L2_GRID, S.Seq(S.Float(0.0), min_len=1))
  S.key(c, r, 'logistic.val_fraction', 0.2, S.Float(0.0, 1.0, open_lo=True))
  S.key(c, r, 'logistic.steps', 300, S.Int(1))
  S.key(c, r, 'adam.lr', probes_lib.LR, S.Float(0.0, open_lo=True))  # paper: 1e-4
  S.key(c, r, 'adam.batch_size', probes_lib.BATCH, S.Int(1))  # paper: 50
  S.key(c, r, 'adam.epochs', probes_lib.EPOCHS, S.Int(1))  # paper: 4
  S.key(c, r, 'adam.weight_decay', probes_lib.WEIGHT_DECAY, S.Float(0.0))  # paper: 1e-6
  # Classification of each source's test split after training on its train split.
  S.key(c, r, 'classification.sources', (), S.Seq(S.Text(True)))  # paper: MNIST, CIFAR-10
  S.key(c, r, 'classification.train_split', 'train', S.Text(True))
  S.key(c, r, 'classification.test_split', 'test', S.Text(True))
  S.key(c, r, 'classification.max_train', 0, S.Int(0))  # 0 = all, else evenly spaced
  S.key(c, r, 'classification.max_test', 0, S.Int(0))
  S.key(c, r, 'classification.fit', 'resize', S.Choice(preprocess.FITS))  # paper MNIST: 'pad'
  S.key(c, r, 'classification.shifts', (), S.Seq(S.Int(0)))  # extra test sets shifted right
  # Exemplar tasks: P images of a pool, each a class; samples are transforms of it.
  S.key(c, r, 'exemplar.transforms', (), S.Seq(S.Choice(_RW_EXEMPLAR), distinct=True))
  S.key(c, r, 'exemplar.source', 'tfds:cifar100', S.Text(True))
  S.key(c, r, 'exemplar.split', 'test', S.Text(True))
  S.key(c, r, 'exemplar.images', 50, S.Int(2))
  S.key(c, r, 'exemplar.n_train', 20, S.Int(1))
  S.key(c, r, 'exemplar.n_test', 10, S.Int(1))
  _transform_keys(c, r, 'exemplar', 'rwjax', 0.5)
  # The paper's invariance tasks (CIFAR100_classify_augs): named classes, train and test
  # pooled, each image transformed once, split 5/6 : 1/6.
  S.key(c, r, 'invariance.transforms', (), S.Seq(S.Choice(transforms.KINDS), distinct=True))
  S.key(c, r, 'invariance.source', 'tfds:cifar100', S.Text(True))
  S.key(c, r, 'invariance.splits', ('train', 'test'), S.Seq(S.Text(True), min_len=1))
  S.key(c, r, 'invariance.classes', tasks_lib.CIFAR100_CLASSES,
        S.Seq(S.Text(True), min_len=2, distinct=True))
  S.key(c, r, 'invariance.per_class', 600, S.Int(0))  # 0 = every image of the class
  # 'once': every image transformed once; 'epoch': drawn anew for each epoch of the Adam
  # probe, train and test images (the paper's: its dataset transforms in __getitem__).
  S.key(c, r, 'invariance.redraw', 'once', S.Choice(REDRAW))  # paper: 'epoch'
  _transform_keys(c, r, 'invariance', 'torchvision', 0.5)  # paper: translate 0.5
  c.invariance.jitter = (0.5, 0.5, 0.5, 0.5)  # paper: ColorJitter(0.5, 0.5, 0.5, 0.5)
  return c, r


def manifolds_config() -> tuple[ml_collections.ConfigDict, dict]:
  """A 'manifolds' eval's keys with their rules (rwjax's values; the paper's beside)."""
  c, r = ml_collections.ConfigDict(), {}
  S.key(c, r, 'type', 'manifolds', S.Choice(TYPES))
  S.key(c, r, 'batchnorm', ('running',), _MODES)  # paper: ('running',) (model.eval())
  S.key(c, r, 'layers', 'stages', S.Names(layers_lib.SETS))  # paper: 'paper_hooks'
  # Exemplar kinds, 'waves', and the names of `classes` (each a class manifold set).
  S.key(c, r, 'kinds', ('translate', 'rotate', 'color', 'class_test'),
        S.Seq(S.Text(True), min_len=1, distinct=True))
  S.key(c, r, 'measures', geometry.MFTMA, S.Seq(S.Choice(geometry.MEASURES), min_len=1,
                                                  distinct=True))
  S.key(c, r, 'simulate_layers', 'paper_simulated', S.Names(layers_lib.SETS))  # sim_alpha
  S.key(c, r, 'sim_trials', 100, S.Int(1))  # paper: n_rep = 100
  S.key(c, r, 'variance', 0.9, S.Float(0.0, 1.0, open_lo=True))  # paper: perc = 0.90
  S.key(c, r, 'n_t', 500, S.Int(1))  # paper: 500
  S.key(c, r, 'kappa', 0.0, S.Float(0.0))  # paper: 0
  S.key(c, r, 'project_dims', 5000, S.Int(1))  # paper: 5000
  S.key(c, r, 'draws', 'rwjax', S.Choice(DRAWS))
  S.key(c, r, 'normalize', 'none', S.Choice(NORMALIZE))  # paper: 'dataset' (not the waves)
  S.key(c, r, 'exemplar.source', 'tfds:cifar100', S.Text(True))  # paper: CIFAR-100 test
  S.key(c, r, 'exemplar.split', 'test', S.Text(True))
  S.key(c, r, 'exemplar.p', 10, S.Int(2))  # paper: 50
  S.key(c, r, 'exemplar.m', 100, S.Int(1))  # paper: 20
  _transform_keys(c, r, 'exemplar', 'rwjax', 0.5)  # paper: torchvision, translate 0.1
  # Class manifold sets by name (a kind): source, split, images loaded, P classes x M images.
  c.classes = ml_collections.ConfigDict({'class_test': _class_set('tfds:cifar10', 10, 100)})
  # 'confidence': whose pooled features rank the class images: 'pretrained' / 'random_init'
  # (seed 0's) or a pre-training workdir.
  S.key(c, r, 'confidence_network', '', S.Text())
  # Wave manifolds: '' = the pre-training's data.movie / data.labels ('' labels: found as the
  # trainer finds them); the first `count` waves of frames[0]..frames[1] frames.
  S.key(c, r, 'waves.movie', '', S.Text())
  S.key(c, r, 'waves.labels', '', S.Text())
  S.key(c, r, 'waves.count', 50, S.Int(2))  # paper: 50
  S.key(c, r, 'waves.frames', (50, 132), S.Seq(S.Int(1), size=2))  # paper: 50..132
  return c, r


def _class_set(source: str, p: int, m: int, selection: str = 'random',
               ranked: str = '') -> dict:
  return {'source': source, 'split': 'test', 'max_examples': 0, 'p': p, 'm': m,
          'selection': selection, 'ranked': ranked}


def class_set_rules() -> dict:
  return {'source': S.Text(True), 'split': S.Text(True), 'max_examples': S.Int(0),
          'p': S.Int(2), 'm': S.Int(1), 'selection': S.Choice(manifolds_lib.SELECTIONS),
          'ranked': S.Choice(('',) + tuple(manifolds_lib.RANKED_FILES))}


SCHEMAS = {'probe': probe_config, 'manifolds': manifolds_config}


def new(kind: str) -> ml_collections.ConfigDict:
  """A fresh eval config of a type, for presets: config.evals.NAME = evals.new('probe')."""
  return SCHEMAS[kind]()[0]


def validate(name: str, c: ml_collections.ConfigDict) -> None:
  """InputError (naming config.evals.NAME.key) for a bad value or an unknown key."""
  prefix = f'config.evals.{name}.'
  if c.get('type') not in SCHEMAS:
    raise InputError(f'{prefix}type={c.get("type")!r} must be one of {TYPES}')
  _, rules = SCHEMAS[c.type]()
  classes = dict(c.get('classes', {}))
  S.unknown_keys(c, dict(rules, **({'classes': None} if c.type == 'manifolds' else {})), prefix)
  S.check(c, rules, prefix)
  for key in ('layers', 'simulate_layers') if c.type == 'manifolds' else ('layers',):
    layers_lib.layer_set(c[key], None, f'{prefix}{key}')  # any projector's names
  if c.type == 'manifolds':
    for set_name, entry in classes.items():
      S.unknown_keys(entry, class_set_rules(), f'{prefix}classes.{set_name}.')
      S.check(entry, class_set_rules(), f'{prefix}classes.{set_name}.')
    allowed = _RW_EXEMPLAR + ('waves',) + tuple(classes)
    bad = [k for k in c.kinds if k not in allowed]
    if bad:
      raise InputError(f'{prefix}kinds={tuple(c.kinds)!r}: {bad} is no kind; use '
                       f'{_RW_EXEMPLAR}, waves, or a name of {prefix}classes {tuple(classes)}')
    lo, hi = c.waves.frames
    if lo > hi:
      raise InputError(f'{prefix}waves.frames={tuple(c.waves.frames)!r} must be (min, max) '
                       'with min <= max')
  else:
    if not (c.classification.sources or c.exemplar.transforms or c.invariance.transforms):
      raise InputError(f'{prefix[:-1]} has no task: list classification.sources, '
                       'exemplar.transforms or invariance.transforms')
    for kind in ('exemplar', 'invariance'):
      if c[kind].jitter[3] > 0.5:
        raise InputError(f'{prefix}{kind}.jitter={tuple(c[kind].jitter)!r}: the hue (last) '
                         'must be <= 0.5')


# ---------------------------------------------------------------------------------------
# Running an eval.

class Job(NamedTuple):
  """Views of layers an eval needs on one set of images (one forward pass serves them all)."""
  set_id: tuple  # identifies the images: equal ids are the same images
  images: Any  # f32[N, H, W, C]
  views: tuple  # (act.View, raw PRNG key or None) pairs
  fixed: bool  # the same images for every seed (features reusable across seeds)


class Context(NamedTuple):
  """What evals share: the network's shape, images, pre-training config, networks."""
  model: Any  # SimCLRModel
  projector: tuple
  size: int
  channels: int
  pre_config: ml_collections.ConfigDict
  load: Callable  # (spec, split, max_examples=0, fit='resize') -> (images, labels, names)
  variables_of: Callable  # (arm, seed) -> variables
  batch_size: int
  stats: Callable  # spec -> (mean f32[C], std f32[C]) of that dataset's images


def source_name(spec: str) -> str:
  """A short task name of an image source: 'tfds:mnist' -> 'mnist', 'folder:/a/cifar10' ->
  'cifar10', 'digits' -> 'digits'."""
  tail = spec.split(':', 1)[-1].rstrip('/')
  return tail.rsplit('/', 1)[-1] or spec


def _transform(c, kind: str) -> transforms.Transform:
  return transforms.Transform(kind, c.style, float(c.translate), float(c.degrees),
                              tuple(float(j) for j in c.jitter),
                              c.fill if isinstance(c.fill, str) else float(c.fill))


class _Eval:
  """What both types share: the config (`what` its key), the BatchNorm modes, the layers, the
  exemplar pool, notes for the report."""

  def __init__(self, name: str, c: ml_collections.ConfigDict, ctx: Context, pool: bool,
               pool_count: str):
    self.name, self.c, self.ctx, self.what = name, c, ctx, f'config.evals.{name}'
    self.modes = tuple(c.batchnorm)
    self.layers = layers_lib.layer_set(c.layers, ctx.projector, f'{self.what}.layers')
    self.notes = []
    e = c.exemplar  # the source images of the exemplar tasks or manifolds, `pool_count` used
    self._pool = ctx.load(e.source, e.split)[0] if pool else None
    if pool and e[pool_count] > len(self._pool):
      raise InputError(f'{self.what}.exemplar.{pool_count}={e[pool_count]} exceeds the '
                       f'{len(self._pool)} images of {e.source}; lower it')


class ProbeEval(_Eval):
  """Linear probes on every task and layer."""

  def __init__(self, name: str, c: ml_collections.ConfigDict, ctx: Context):
    super().__init__(name, c, ctx, bool(c.exemplar.transforms), 'images')
    self.views = tuple(act.View(l, 'pool' if c.features == 'pool' or l == 'pooled' else 'flat')
                       for l in self.layers)
    self._probes = {
        'logistic': functools.partial(
            probes_lib.logistic, l2_grid=tuple(c.logistic.l2_grid),
            val_fraction=c.logistic.val_fraction, steps=c.logistic.steps),
        'adam': functools.partial(probes_lib.adam, lr=c.adam.lr, batch_size=c.adam.batch_size,
                                  epochs=c.adam.epochs, weight_decay=c.adam.weight_decay)}
    cl = c.classification
    self._classification = [
        (source_name(spec), ctx.load(spec, cl.train_split, cl.max_train, cl.fit),
         ctx.load(spec, cl.test_split, cl.max_test, cl.fit)) for spec in cl.sources]
    # The image source of each task, in draw order (`tasks`).
    self._sources = ([c.invariance.source] * len(c.invariance.transforms) + list(cl.sources)
                     + [c.exemplar.source] * len(c.exemplar.transforms))
    self._invariance = None
    if c.invariance.transforms:
      inv = c.invariance
      parts = [ctx.load(inv.source, s) for s in inv.splits]
      x = np.concatenate([np.asarray(q[0]) for q in parts])
      y = np.concatenate([q[1] for q in parts])
      index, labels = tasks_lib.select_classes(y, parts[0][2], inv.classes, inv.per_class,
                                               f'{self.what}.invariance.classes')
      self._invariance = (x[index], labels)

  def _keys(self, seed: int):
    root = jax.random.PRNGKey(seed)
    if self.c.draws == 'rwjax':
      _, k_probe, k_task = jax.random.split(root, 3)
      return k_task, lambda t, i: k_probe
    k11 = jax.random.fold_in(root, 11)
    return (jax.random.fold_in(root, 10),
            lambda t, i: jax.random.fold_in(jax.random.fold_in(k11, t), i))

  def tasks(self, seed: int) -> list[tasks_lib.Task]:
    """This seed's tasks in draw order: invariance, classification, exemplar."""
    c = self.c
    k_task, _ = self._keys(seed)
    out = []
    draws = c.adam.epochs if c.invariance.redraw == 'epoch' and 'adam' in c.probes else 1
    for kind in c.invariance.transforms:
      out.append(tasks_lib.invariance(f'invariance_{kind}', k_task, *self._invariance,
                                      _transform(c.invariance, kind),
                                      len(c.invariance.classes), draws))
    for name, (x_tr, y_tr, names), (x_te, y_te, _) in self._classification:
      out.append(tasks_lib.classification(name, x_tr, y_tr, x_te, y_te, len(names),
                                          c.classification.shifts))
    if c.exemplar.transforms:
      e = c.exemplar
      chosen = self._pool[jax.random.choice(k_task, len(self._pool), (e.images,),
                                            replace=False)]
      for i, kind in enumerate(e.transforms):
        out.append(tasks_lib.exemplar(f'exemplar_{kind}', jax.random.fold_in(k_task, i),
                                      chosen, _transform(e, kind), n_train=e.n_train,
                                      n_test=e.n_test,
                                      what=f'{self.what}.exemplar'))
    if c.normalize == 'dataset':  # after the transforms, as the paper's Normalize
      out = [self._normalized(task, self.ctx.stats(self._sources[t]))
             for t, task in enumerate(out)]
    return out

  inputs = tasks  # the evaluator's name for an eval's inputs of a seed

  @staticmethod
  def _normalized(task: tasks_lib.Task, stats) -> tasks_lib.Task:
    norm = lambda x: (x - stats[0]) / stats[1]
    draw = lambda x, tests: (norm(x), {n: (norm(v), y) for n, (v, y) in tests.items()})
    first = draw(task.x_train, task.tests)
    return task._replace(x_train=first[0], tests=first[1],
                         redraws=tuple(draw(*d) for d in task.redraws))

  def _ids(self, seed: int, t: int, task: tasks_lib.Task, draw: int = 0) -> dict:
    """'train' and each test set's name -> its set id (fixed for the classification sets)."""
    if t - len(self.c.invariance.transforms) in range(len(self._classification)):
      cl, spec = self.c.classification, self._sources[t]
      how = (cl.fit, self.c.normalize)
      test = ('load', spec, cl.test_split, cl.max_test) + how
      return {'train': ('load', spec, cl.train_split, cl.max_train) + how,
              **{name: test + (name,) for name in task.tests}}
    return {w: (self.name, seed, task.name, w, draw) for w in ('train',) + tuple(task.tests)}

  def jobs(self, seed: int, tasks: list) -> list[Job]:
    views = tuple((v, None) for v in self.views)
    out = []
    for t, task in enumerate(tasks):
      for d, (x_train, tests) in enumerate([(task.x_train, task.tests), *task.redraws]):
        ids = self._ids(seed, t, task, d)
        images = {'train': x_train, **{n: x for n, (x, _) in tests.items()}}
        out += [Job(ids[w], images[w], views, ids[w][0] == 'load') for w in ids]
    return out

  def measure(self, seed: int, tasks: list, features: Callable) -> dict:
    """{(task, layer, measure): value}; features(job's set id, view, key) -> f32[N, D]."""
    c = self.c
    _, probe_key = self._keys(seed)
    out = {}
    for t, task in enumerate(tasks):
      ids = [self._ids(seed, t, task, d) for d in range(1 + len(task.redraws))]
      for i, (layer, view) in enumerate(zip(self.layers, self.views)):
        prep = (lambda f: f) if view.reduce == 'pool' else probes_lib.l2_normalize
        get = lambda set_id: prep(features(set_id, view, None))
        for probe in c.probes:
          # Adam: one draw of the images per epoch (or the one draw for every epoch).
          x = lambda w: (np.stack([get(d[w]) for d in ids]) if probe == 'adam'
                         else get(ids[0][w]))
          results = self._probes[probe](
              probe_key(t, i), x('train'), task.y_train,
              [(x(n), y) for n, (_, y) in task.tests.items()], num_classes=task.num_classes)
          for name, r in zip(task.tests, results):
            for measure, field in _PROBE_MEASURES[probe]:
              out[name, layer, measure] = getattr(r, field)
    return out


# The paper's projection-key vocabulary: its activation list (input, the 17 ReLUs, the encoder
# output, each projector hidden Linear, then the projector's ReLUs and output).
def paper_vocab(projector) -> tuple[str, ...]:
  proj = layers_lib.projector_names(projector)
  return (('input',) + layers_lib.BACKBONE_RELUS + ('pooled',)
          + tuple(l for l in proj if l.endswith('_linear'))
          + tuple(l for l in proj if not l.endswith('_linear')))


class ManifoldEval(_Eval):
  """The geometry of every kind of manifold in every layer."""

  def __init__(self, name: str, c: ml_collections.ConfigDict, ctx: Context):
    super().__init__(name, c, ctx, bool(set(c.kinds) & set(_RW_EXEMPLAR)), 'p')
    self.vocab = self.layers if c.draws == 'rwjax' else paper_vocab(ctx.projector)
    self.simulated = set(layers_lib.layer_set(c.simulate_layers, ctx.projector,
                                              f'{self.what}.simulate_layers'))
    self.kinds = tuple(c.kinds)
    # The rwjax draws' kind index: the exemplar kinds, the class sets, then waves.
    self._rw_index = {k: i for i, k in enumerate(_RW_EXEMPLAR + tuple(c.classes) + ('waves',))}
    self._classes = {k: self._class_source(k) for k in self.kinds if k in c.classes}
    self._waves = self._wave_frames() if 'waves' in self.kinds else None
    if 'waves' in self.kinds and self._waves is None:
      self.kinds = tuple(k for k in self.kinds if k != 'waves')
      self.notes.append(f'{name}: wave manifolds skipped: no movie (set {self.what}.waves.movie, '
                        'or pre-train from a file source)')

  def _class_source(self, kind: str):
    """(images, draw(key) -> i64[P, M] each class manifold's images) of a class set."""
    cs, what = self.c.classes[kind], f'{self.what}.classes.{kind}'
    images, labels, names = self.ctx.load(cs.source, cs.split, cs.max_examples)
    if cs.p > len(names):
      raise InputError(f'{what}.p={cs.p} exceeds the {len(names)} classes of {cs.source}')
    if cs.selection == 'random':
      return images, lambda key: manifolds_lib.random_classes(key, labels, p=cs.p, m=cs.m,
                                                              what=what)
    ranked = original = scores = None
    if cs.selection == 'ranked':
      if not cs.ranked:
        raise InputError(f"{what}.ranked is empty: the paper ranked only 'cifar10' and "
                         "'cifar100'; use selection 'confidence' or 'first'")
      ranked = manifolds_lib.ranked_indices(cs.ranked)
      original = sources.original_positions(cs.source, cs.split,
                                            max_examples=cs.max_examples or None)
    elif cs.selection == 'confidence':
      scores = self._confidence(cs, images, labels, len(names))
    return images, lambda key: manifolds_lib.class_index(
        labels, manifolds_lib.draw_classes(key, len(names), cs.p), cs.m, selection=cs.selection,
        what=what, ranked=ranked, original=original, scores=scores)

  def _confidence(self, cs, x_test, y_test, num_classes) -> np.ndarray:
    """f32[N]: a logistic probe's probability of each image's own class, on the pooled
    features of the network config.evals.NAME.confidence_network names."""
    from rwjax import checkpoint  # pylint: disable=g-import-not-at-top
    which, ctx = self.c.confidence_network, self.ctx
    if which in ('pretrained', 'random_init'):
      model, variables = ctx.model, ctx.variables_of(which, 0)
    elif which:
      net_config, variables = checkpoint.load_for_eval(which)
      from rwjax import models  # pylint: disable=g-import-not-at-top
      model = models.create_model(**net_config.model)
    else:
      raise InputError(f"{self.what}.confidence_network is empty: name "
                       "'pretrained', 'random_init' (seed 0's) or a pre-training workdir "
                       'whose network ranks the class images')
    x_train, y_train, _ = ctx.load(cs.source, 'train')
    pooled = lambda x: act.extract(model, variables, x, [act.View('pooled')],
                                   batch_size=ctx.batch_size)[0]
    probe = probes_lib.fit_probe(jax.random.PRNGKey(0), pooled(x_train), y_train,
                                 num_classes=num_classes)
    logits = ((pooled(x_test) - probe.mean) / probe.std) @ probe.weights + probe.bias
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    return prob[np.arange(len(y_test)), y_test]

  def _wave_frames(self):
    """The wave manifolds (the same for every seed; `manifolds`), or None: no movie."""
    from rwjax import paths  # pylint: disable=g-import-not-at-top
    from rwjax import waves  # pylint: disable=g-import-not-at-top
    from rwjax.waves import frames as frames_lib  # pylint: disable=g-import-not-at-top
    from rwjax.waves import movie as movie_lib  # pylint: disable=g-import-not-at-top
    from rwjax.waves import stats  # pylint: disable=g-import-not-at-top
    w, d = self.c.waves, self.ctx.pre_config.data
    path = w.movie or (d.movie if d.source == 'file' else '')
    if not path:
      return None
    movie = movie_lib.load_movie(path)
    movie = movie[None] if movie.ndim == 3 else movie
    label_path = w.labels or (d.labels if not w.movie else '')
    if label_path:
      labels = paths.load_npy(label_path)
      if labels.size != np.prod(movie.shape[:2]):
        raise InputError(f'wave labels {label_path} have shape {labels.shape}; the movie '
                         f'needs one per frame, {movie.shape[:2]}')
      labels = labels.reshape(movie.shape[:2])
    else:  # As the trainer finds them.
      threshold = d.threshold if d.threshold is not None else waves.get_model(
          d.simulator).THRESHOLD
      labels = stats.frame_labels(movie, threshold, min_size=d.min_wave_size)
    index = manifolds_lib.wave_index(labels, count=w.count, min_frames=w.frames[0],
                                     max_frames=w.frames[1],
                                     what=f'{self.what}.waves')
    frames = frames_lib.to_network_input(movie, self.ctx.size, self.ctx.channels, d.movie_norm)
    return frames.reshape(-1, *frames.shape[2:])[np.concatenate(index)], [len(i) for i in index]

  def _keys(self, seed: int, kind: str):
    """(images key, transforms key, classes key, projection key of layer l, analysis key of
    layer l, simulation key of layer l) of one kind (docs/evaluation.md, 'Random draws')."""
    root = jax.random.PRNGKey(seed)
    if self.c.draws == 'rwjax':
      k_images, k_class, k_transform = jax.random.split(jax.random.fold_in(root, 3), 3)
      k_project, k_analysis = jax.random.split(jax.random.fold_in(root, 4))
      k = jax.random.fold_in(k_analysis, self._rw_index[kind])
      index = self.vocab.index
      return (k_images, jax.random.fold_in(k_transform, self._rw_index[kind]), k_class,
              lambda l: jax.random.fold_in(k_project, index(l)),
              lambda l: jax.random.fold_in(k, index(l)),
              lambda l: jax.random.fold_in(jax.random.fold_in(k, 1000), index(l)))
    i = self.c.kinds.index(kind)
    k12, k13 = jax.random.fold_in(root, 12), jax.random.fold_in(root, 13)
    k_kind, k = jax.random.fold_in(k12, i), jax.random.fold_in(k13, i)
    at = self.layers.index
    return (jax.random.fold_in(k_kind, 0), jax.random.fold_in(k_kind, 1),
            jax.random.fold_in(k12, 100),
            lambda l: jax.random.fold_in(jax.random.fold_in(k, 0), self.vocab.index(l)),
            lambda l: jax.random.fold_in(jax.random.fold_in(k, 1), at(l)),
            lambda l: jax.random.fold_in(jax.random.fold_in(k, 2), at(l)))

  def manifolds(self, seed: int) -> dict:
    """kind -> (images f32[sum M_i, H, W, C], sizes [M_i]) for this seed."""
    c, out = self.c, {}
    for kind in self.kinds:
      k_images, k_transform, k_class, *_ = self._keys(seed, kind)
      if kind in _RW_EXEMPLAR:
        e = c.exemplar
        x = manifolds_lib.exemplar(k_images, k_transform, self._pool, p=e.p, m=e.m,
                                   t=_transform(e, kind))
        out[kind] = (x.reshape(-1, *x.shape[2:]), [e.m] * e.p)
      elif kind == 'waves':
        out[kind] = self._waves
      else:
        images, draw = self._classes[kind]
        out[kind] = (images[draw(k_class).reshape(-1)], [c.classes[kind].m] * c.classes[kind].p)
      if c.normalize == 'dataset' and kind != 'waves':  # after the transforms (the paper's)
        mean, std = self.ctx.stats(c.classes[kind].source if kind in c.classes
                                   else c.exemplar.source)
        out[kind] = ((out[kind][0] - mean) / std, out[kind][1])
    return out

  inputs = manifolds  # the evaluator's name for an eval's inputs of a seed

  def _sets(self, manifolds: dict) -> dict:
    """kind -> (set name, first row): the 'rwjax' draws stack every kind's images in one set
    (one projection per layer, one 'batch'-mode order), the 'paper' draws keep each apart."""
    if self.c.draws == 'paper':
      return {kind: (kind, 0) for kind in manifolds}
    starts = np.cumsum([0] + [len(x) for x, _ in manifolds.values()])
    return {kind: ('all', int(start)) for kind, start in zip(manifolds, starts)}

  def jobs(self, seed: int, manifolds: dict) -> list[Job]:
    out, sets = {}, self._sets(manifolds)
    for kind, (images, _) in manifolds.items():
      name = sets[kind][0]
      if name not in out:  # one projection per set: the first kind's keys
        project = self._keys(seed, kind)[3]
        out[name] = (tuple((act.View(l, 'flat', self.c.project_dims), project(l))
                           for l in self.layers), [])
      out[name][1].append(images)
    return [Job((self.name, seed, name), np.concatenate([np.asarray(x) for x in images]),
                views, False) for name, (views, images) in out.items()]

  def measure(self, seed: int, manifolds: dict, features: Callable) -> dict:
    """{(kind, layer, measure): value}; identical point clouds of two layers of a kind (a
    1 x 1 map and its average) are analysed once, with the first layer's draws."""
    c, out, sets = self.c, {}, self._sets(manifolds)
    for kind, (images, sizes) in manifolds.items():
      _, _, _, project, analysis, simulation = self._keys(seed, kind)
      name, start = sets[kind]
      cuts = np.cumsum(sizes)[:-1]
      done = []  # (features, result)
      for layer in self.layers:
        flat = features((self.name, seed, name), act.View(layer, 'flat', c.project_dims),
                        project(layer))[start:start + len(images)]
        result = next((r for f, r in done if f.shape == flat.shape
                       and np.array_equal(f, flat)), None)
        if result is None:
          result = geometry.analyse(
              np.split(flat, cuts), key=analysis(layer), sim_key=simulation(layer),
              measures=tuple(c.measures), n_t=c.n_t, kappa=c.kappa, pad_to=c.project_dims,
              simulate=layer in self.simulated, sim_trials=c.sim_trials,
              variance=c.variance)
          done.append((flat, result))
        out.update({(kind, layer, g): result[g] for g in (*c.measures, 'solver_residual')
                    if g in result})
    return out


def build(name: str, c: ml_collections.ConfigDict, ctx: Context):
  """The eval of config.evals.NAME (validated with `validate` first)."""
  return {'probe': ProbeEval, 'manifolds': ManifoldEval}[c.type](name, c, ctx)
