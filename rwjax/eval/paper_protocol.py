"""The paper's protocol inside `python -m rwjax.evaluate`: config checks, data, both arms.

`validate(config)` checks config.paper_tasks / paper_probe / paper_manifolds once;
`evaluate(config, model, pre_config, variables_of, size, channels)` loads the data (bad
class names and too-small sets fail here, before any network runs or anything is written),
then for every arm and seed runs rwjax.eval.paper on that network and returns
report['paper']: per task / manifold kind, layer and measure, the two arms' per-seed values
compared by rwjax.eval.stats.compare (paired over seeds, as the rest of the report).

Seed s draws its task transforms and split from fold_in(PRNGKey(s), 10), its probes'
initialisation and batch order from fold_in(.., 11), its manifolds from fold_in(.., 12) and
their projections and Gaussian draws from fold_in(.., 13): the same for both arms.
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rwjax import models
from rwjax import paths as paths_lib
from rwjax.data import augs, paper_tasks, sources
from rwjax.data.preprocess import FITS, to_network_input
from rwjax.errors import InputError
from rwjax.eval import paper, paper_manifolds, probes, stats

ARMS = stats.ARMS
EXEMPLAR_KINDS = ('translate', 'color')
PROTOCOL = ('paper protocol: a linear layer trained with Adam (lr {lr}, batch {batch_size}, '
            '{epochs} epochs, weight decay {weight_decay}); the number is the best test '
            'accuracy over epochs (selected on the test set); intermediate layers flattened '
            'and L2-normalised. logistic: rwjax.eval.probes on the same features (L2 chosen '
            'on a validation split)')


def enabled(config: ml_collections.ConfigDict) -> bool:
  return bool(config.paper_probe.enabled or config.paper_manifolds.enabled)


def _count(name, value, minimum=1):
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    raise InputError(f'config.{name}={value!r} must be an integer >= {minimum}')


def _jitter(name, value):
  if len(value) != 4 or min(value) < 0 or value[3] > 0.5:
    raise InputError(f'config.{name}={tuple(value)!r}: give (brightness, contrast, saturation, '
                     'hue), all >= 0, hue <= 0.5')


def validate(config: ml_collections.ConfigDict) -> None:
  """InputError on the first bad paper-protocol value."""
  t, p, m = config.paper_tasks, config.paper_probe, config.paper_manifolds
  if t.enabled:
    bad = [x for x in t.transforms if x not in augs.TASK_TRANSFORMS]
    if bad or not t.transforms:
      raise InputError(f'config.paper_tasks.transforms={tuple(t.transforms)!r}: choose from '
                       f'{tuple(augs.TASK_TRANSFORMS)}')
    _count('paper_tasks.per_class', t.per_class, 0)
    if not 0 <= t.translate <= 1 or t.degrees < 0:
      raise InputError('config.paper_tasks.translate must be in [0, 1] and degrees >= 0')
    _jitter('paper_tasks.jitter', t.jitter)
    if not t.splits:
      raise InputError('config.paper_tasks.splits is empty; use e.g. (train, test)')
  if p.enabled:
    _count('paper_probe.batch_size', p.batch_size)
    _count('paper_probe.epochs', p.epochs)
    _count('paper_probe.max_train', p.max_train, 0)
    _count('paper_probe.max_test', p.max_test, 0)
    if not p.lr > 0 or p.weight_decay < 0:
      raise InputError('config.paper_probe.lr must be > 0 and weight_decay >= 0')
    if p.fit not in FITS:
      raise InputError(f'config.paper_probe.fit={p.fit!r}: use one of {FITS}')
    if not t.enabled and not p.classification:
      raise InputError('config.paper_probe has no task: enable config.paper_tasks or list '
                       'config.paper_probe.classification datasets')
  if m.enabled:
    known = EXEMPLAR_KINDS + ('waves',) + tuple(f'class_{k}' for k in m.classes)
    bad = [k for k in m.kinds if k not in known]
    if bad or not m.kinds or len(set(m.kinds)) < len(m.kinds):
      raise InputError(f'config.paper_manifolds.kinds={tuple(m.kinds)!r}: choose distinct '
                       f'kinds from {known} (class_<name> reads paper_manifolds.classes.<name>)')
    _count('paper_manifolds.exemplar_p', m.exemplar_p, 2)
    _count('paper_manifolds.exemplar_m', m.exemplar_m)
    for name, c in m.classes.items():
      _count(f'paper_manifolds.classes.{name}.p', c.p, 2)
      _count(f'paper_manifolds.classes.{name}.m', c.m)
    if m.class_selection not in paper_manifolds.SELECTIONS:
      raise InputError(f'config.paper_manifolds.class_selection={m.class_selection!r}: use '
                       f'one of {paper_manifolds.SELECTIONS}')
    _count('paper_manifolds.n_t', m.n_t)
    _count('paper_manifolds.project_dims', m.project_dims)
    _count('paper_manifolds.sim_trials', m.sim_trials)
    _count('paper_manifolds.wave_count', m.wave_count, 2)
    _jitter('paper_manifolds.jitter', m.jitter)
    if not 0 < m.variance <= 1 or m.kappa < 0 or not 0 <= m.translate <= 1:
      raise InputError('config.paper_manifolds: variance must be in (0, 1], kappa >= 0, '
                       'translate in [0, 1]')
    lo, hi = m.wave_frames
    if not 1 <= lo <= hi:
      raise InputError(f'config.paper_manifolds.wave_frames={tuple(m.wave_frames)!r} must be '
                       '(min, max) frames with 1 <= min <= max')


def _stand_in(spec: str, expected: str) -> str | None:
  """A report note when a source stands in for the paper's dataset."""
  if expected in spec.lower():
    return None
  return f'{spec} in place of the paper\'s {expected.upper()}'


class _Loader:
  """Network-input images of any source and split, loaded once."""

  def __init__(self, config, size, channels):
    self.config, self.size, self.channels, self.cache = config, size, channels, {}

  def __call__(self, spec, split, max_examples=0, fit='resize'):
    k = (spec, split, max_examples, fit)
    if k not in self.cache:
      images, labels, names = sources.load_images(
          spec, split, data_dir=self.config.data.data_dir or None,
          download=self.config.data.download, max_examples=max_examples or None)
      prep = jax.jit(to_network_input, static_argnums=(1, 2, 3))
      self.cache[k] = (prep(images, self.size, self.channels, fit), labels, names)
    return self.cache[k]


def _wave_images(config, pre_config, size, channels):
  """(frames f32[B * T, size, size, C] network input, frame-index lists) or None."""
  from rwjax import waves  # pylint: disable=g-import-not-at-top
  from rwjax.waves import frames as frames_lib, movie as movie_lib, stats as wave_stats
  m, d = config.paper_manifolds, pre_config.data
  path = m.wave_movie or (d.movie if d.source == 'file' else '')
  if not path:
    return None
  movie = movie_lib.load_movie(path)
  movie = movie[None] if movie.ndim == 3 else movie
  label_path = m.wave_labels or (d.labels if not m.wave_movie else '')
  if label_path:
    labels = paths_lib.load_npy(label_path)  # any path (gs://)
    if labels.size != np.prod(movie.shape[:2]):
      raise InputError(f'wave labels {label_path} have shape {labels.shape}; the movie needs '
                       f'one per frame, {movie.shape[:2]}')
    labels = labels.reshape(movie.shape[:2])
  else:  # Found as the trainer finds them.
    threshold = d.threshold if d.threshold is not None else waves.get_model(
        d.simulator).THRESHOLD
    labels = wave_stats.frame_labels(movie, threshold)
  index = paper_manifolds.wave_manifolds(labels, count=m.wave_count, min_frames=m.wave_frames[0],
                                         max_frames=m.wave_frames[1])
  frames = frames_lib.to_network_input(jnp.asarray(movie), size, channels)
  return frames.reshape(-1, *frames.shape[2:]), index, path


def _class_scores(config, pre_config, which, x_train, y_train, x_test, y_test, num_classes,
                  variables_of):
  """f32[N_test]: a logistic probe's probability of each test image's own class, on the
  pooled features of the network config.paper_manifolds.confidence_network names."""
  from rwjax.eval import features as features_lib  # pylint: disable=g-import-not-at-top
  from rwjax import checkpoint  # pylint: disable=g-import-not-at-top
  if which in ARMS:
    net_config, variables = None, variables_of(which, 0)
  elif which and paths_lib.isdir(which):  # any path (gs://)
    net_config, variables = checkpoint.load_for_eval(which)
  else:
    raise InputError(f"config.paper_manifolds.confidence_network={which!r}: name 'pretrained', "
                     "'random_init' (seed 0's) or a pre-training workdir whose network ranks "
                     'the class images')
  model = models.create_model(**(net_config or pre_config).model)
  extract = lambda x: features_lib.extract_features(model, variables, x,
                                                    batch_size=config.batch_size,
                                                    layers=('pooled',))['pooled']
  probe = probes.fit_probe(jax.random.PRNGKey(0), extract(x_train), y_train,
                           num_classes=num_classes, l2_grid=tuple(config.probe.l2_grid),
                           val_fraction=config.probe.val_fraction, steps=config.probe.steps)
  logits = ((extract(x_test) - probe.mean) / probe.std) @ probe.weights + probe.bias
  prob = np.exp(logits - logits.max(1, keepdims=True))
  prob /= prob.sum(1, keepdims=True)
  return prob[np.arange(len(y_test)), y_test]


def evaluate(config: ml_collections.ConfigDict, model: models.SimCLRModel,
             pre_config: ml_collections.ConfigDict,
             variables_of: Callable[[str, int], dict], size: int, channels: int) -> dict:
  """report['paper'] (module docstring); variables_of(arm, seed) gives each network."""
  return run(prepare(config, model, pre_config, variables_of, size, channels))


def prepare(config: ml_collections.ConfigDict, model: models.SimCLRModel,
            pre_config: ml_collections.ConfigDict,
            variables_of: Callable[[str, int], dict], size: int, channels: int,
            features_of: Callable[[str, int, str], Any] | None = None) -> dict:
  """Loads and checks every image set (InputError now, before any network runs); `run`
  then evaluates both arms.

  features_of(arm, seed, purpose) -> rwjax.eval.features.Extractor (purpose 'probes' or
  'manifolds'): the network under the evaluation's BatchNorm mode for that purpose; None =
  variables_of(arm, seed) in eval mode (running statistics).
  """
  validate(config)
  t, p, m = config.paper_tasks, config.paper_probe, config.paper_manifolds
  load = _Loader(config, size, channels)
  seeds = range(config.seeds)
  key = lambda seed, i: jax.random.fold_in(jax.random.PRNGKey(seed), i)
  notes, sources_used = [], {}

  # --- Data, checked before any network runs.
  task_pool = None
  if p.enabled and t.enabled:
    parts = [load(t.source, s) for s in t.splits]
    x = jnp.concatenate([q[0] for q in parts])
    y = np.concatenate([q[1] for q in parts])
    index, labels = paper_tasks.select_classes(y, parts[0][2], t.classes, t.per_class)
    task_pool = (x[index], labels)
    sources_used['invariance_tasks'] = t.source
    notes.append(_stand_in(t.source, 'cifar100'))
  classification = {}
  if p.enabled:
    for spec in p.classification:
      x_tr, y_tr, names = load(spec, config.data.train_split, p.max_train, p.fit)
      x_te, y_te, _ = load(spec, config.data.test_split, p.max_test, p.fit)
      classification[spec] = (x_tr, y_tr, x_te, y_te, len(names))
  manifold_sets = {}  # kind -> per-seed images
  if m.enabled:
    for kind in m.kinds:
      if kind in EXEMPLAR_KINDS:
        pool = load(m.exemplar_source, m.exemplar_split)[0]
        spec = (augs.Affine(0.0, float(m.translate)) if kind == 'translate'
                else augs.Jitter(*map(float, m.jitter)))
        manifold_sets[kind] = [paper_manifolds.exemplar_manifolds(
            jax.random.fold_in(key(s, 12), m.kinds.index(kind)), pool, p=m.exemplar_p,
            m=m.exemplar_m, spec=spec) for s in seeds]
        sources_used[kind] = m.exemplar_source
        notes.append(_stand_in(m.exemplar_source, 'cifar100'))
      elif kind == 'waves':
        found = _wave_images(config, pre_config, size, channels)
        if found is None:
          notes.append('wave manifolds skipped: no movie (set config.paper_manifolds.'
                       'wave_movie, or pre-train from a file source)')
          continue
        frames, index, path = found
        manifold_sets[kind] = [[frames[i] for i in index]] * len(seeds)  # fixed waves
        sources_used[kind] = path
      else:
        c = m.classes[kind[len('class_'):]]
        x_te, y_te, names = load(c.source, config.data.test_split)
        ranked = original = scores = None
        if m.class_selection == 'ranked':
          if not c.ranked:
            raise InputError(f'config.paper_manifolds.classes.{kind[6:]}.ranked is empty: the '
                             "paper ranked only 'cifar10' and 'cifar100'; use class_selection "
                             "'confidence' or 'first'")
          ranked = paper_manifolds.ranked_indices(c.ranked)
          original = sources.original_positions(c.source, config.data.test_split,
                                                data_dir=config.data.data_dir or None) \
              if c.source.startswith('tfds:') else None
        elif m.class_selection == 'confidence':
          x_tr, y_tr, _ = load(c.source, config.data.train_split)
          scores = _class_scores(config, pre_config, m.confidence_network, x_tr, y_tr, x_te,
                                 y_te, len(names), variables_of)
        per_seed = []
        for s in seeds:
          classes = paper_manifolds.draw_classes(jax.random.fold_in(key(s, 12), 100),
                                                 len(names), c.p)
          index = paper_manifolds.class_manifold_index(
              y_te, classes, c.m, selection=m.class_selection, ranked=ranked,
              original=original, scores=scores)
          per_seed.append(x_te[index])
        manifold_sets[kind] = per_seed
        sources_used[kind] = c.source
        if kind == 'class_cifar100':
          notes.append(_stand_in(c.source, 'cifar100'))

  return dict(config=config, model=model, variables_of=variables_of, features_of=features_of,
              task_pool=task_pool,
              classification=classification, manifold_sets=manifold_sets, notes=notes,
              sources_used=sources_used)


def run(prepared: dict) -> dict:
  """Both arms, every seed, on the image sets of `prepare`: report['paper']."""
  config, model, variables_of = (prepared[k] for k in ('config', 'model', 'variables_of'))
  task_pool, classification, manifold_sets = (
      prepared[k] for k in ('task_pool', 'classification', 'manifold_sets'))
  t, p, m = config.paper_tasks, config.paper_probe, config.paper_manifolds
  seeds = range(config.seeds)
  key = lambda seed, i: jax.random.fold_in(jax.random.PRNGKey(seed), i)
  probe_layers = paper.probe_layers(model, p.layers) if p.enabled else ()
  m_layers = paper.manifold_layers(model, m.layers)
  simulate = tuple(l for l in paper.sim_layers(model) if l in m_layers) if m.simulate else ()
  rows = {arm: [] for arm in ARMS}

  def features_for(arm, s, purpose):
    if prepared['features_of'] is None:
      return paper.make_features(model, variables_of(arm, s), batch_size=config.batch_size)
    ex = prepared['features_of'](arm, s, purpose)
    return paper.make_features(model, ex.variables, batch_size=ex.batch_size,
                               batchnorm=ex.batchnorm, bn_batch=ex.bn_batch)

  for arm in stats.evaluated_arms(config.random_init_arm):
    for s in seeds:
      features = features_for(arm, s, 'probes')
      out = {'probes': {}, 'manifolds': {}}
      if p.enabled:
        tasks = {}
        if task_pool is not None:
          for tr in t.transforms:
            specs = {'translate': augs.Affine(0.0, float(t.translate)),
                     'rotate': augs.Affine(float(t.degrees), 0.0),
                     'color': augs.Jitter(*map(float, t.jitter)), 'none': None}
            task = paper_tasks.invariance_task(key(s, 10), task_pool[0], task_pool[1], tr,
                                               specs=specs, fill=float(t.fill))
            tasks[f'invariance_{tr}'] = (*task, len(t.classes))
        tasks.update({f'classification {k}': v for k, v in classification.items()})
        out['probes'] = paper.run_probes(features, tasks, probe_layers, key=key(s, 11),
                                         probe_cfg=p,
                                         logistic_cfg=config.probe if p.logistic else None)
      features = features_for(arm, s, 'manifolds') if manifold_sets else None
      for i, (kind, per_seed) in enumerate(manifold_sets.items()):
        out['manifolds'][kind] = paper.analyse_manifolds(
            features, per_seed[s], m_layers, key=jax.random.fold_in(key(s, 13), i),
            n_t=m.n_t, kappa=m.kappa, project_dims=m.project_dims, simulate=simulate,
            sim_trials=m.sim_trials, variance=m.variance)
      rows[arm].append(out)

  def compare(get):
    return stats.compare([get(r) for r in rows['pretrained']],
                         [get(r) for r in rows['random_init']])

  probes_out = {}
  for task, layers in (rows['pretrained'][0]['probes'] if seeds else {}).items():
    probes_out[task] = {l: {measure: compare(lambda r: r['probes'][task][l][measure])
                            for measure in ('paper_protocol', 'logistic') if measure in row}
                        for l, row in layers.items()}
  manifolds_out = {}
  for kind, layers in (rows['pretrained'][0]['manifolds'] if seeds else {}).items():
    manifolds_out[kind] = {l: {g: compare(lambda r: r['manifolds'][kind][l][g])
                               for g in row if g not in ('dims', 'solver_residual')}
                           for l, row in layers.items()}
  residual = max([r['manifolds'][k][l]['solver_residual'] for arm in ARMS for r in rows[arm]
                  for k in r['manifolds'] for l in r['manifolds'][k]] or [0.0])
  return {
      'protocol': PROTOCOL.format(**{k: p[k] for k in ('lr', 'batch_size', 'epochs',
                                                       'weight_decay')}),
      'sources': prepared['sources_used'],
      'notes': [n for n in prepared['notes'] if n],
      'probe_layers': list(probe_layers),
      'probes': probes_out,  # task -> layer -> {'paper_protocol', 'logistic'} -> comparison
      'manifold_layers': list(m_layers),
      'simulated_layers': list(simulate),
      'manifolds': manifolds_out,  # kind -> layer -> measure -> comparison
      'manifold_solver_residual': float(residual),
      'settings': {'tasks': t.to_dict(), 'probe': p.to_dict(), 'manifolds': m.to_dict()},
  }


def table(paper_report: dict) -> str:
  """The printed rows of report['paper']: every probe row says which protocol it follows
  ('paper protocol': best test accuracy over epochs; 'logistic': today's probe)."""
  if not paper_report:
    return ''
  mean = lambda s: '-' if s['mean'] is None else f"{s['mean']:.3f}"
  pval = lambda c: '-' if c['p'] is None else f"{c['p']:.2g}"
  w = max([28] + [len(t) + 2 for t in paper_report['probes']])
  rows = [f"{'paper task':<{w}}{'probe':<16}{'layer':<22}{'pre-trained':>12}{'random':>9}"
          f"{'p':>8}"] if paper_report['probes'] else []
  for task, layers in paper_report['probes'].items():
    for layer, row in layers.items():
      for measure, c in row.items():
        label = 'paper protocol' if measure == 'paper_protocol' else measure
        rows.append(f'{task:<{w}}{label:<16}{layer:<22}{mean(c["pretrained"]):>12}'
                    f'{mean(c["random_init"]):>9}{pval(c):>8}')
  if paper_report['manifolds']:
    rows += ['' if rows else None, f"{'paper manifolds':<28}{'layer':<26}{'alpha pre / rand':>18}{'p':>8}"
                 f"{'PR pre / rand':>16}{'sim alpha pre / rand':>22}"]
    pair = lambda c: (f'{mean(c["pretrained"])} / {mean(c["random_init"])}' if c else '')
    for kind, layers in paper_report['manifolds'].items():
      for layer, row in layers.items():
        rows.append(f"{kind:<28}{layer:<26}{pair(row['alpha']):>18}{pval(row['alpha']):>8}"
                    f"{pair(row['participation_ratio']):>16}{pair(row.get('sim_alpha')):>22}")
  rows += [f'note: {n}' for n in paper_report['notes']]
  return '\n'.join(r for r in rows if r is not None)
