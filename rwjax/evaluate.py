"""Evaluates pre-trained networks against random-init networks of the same architecture.

  python -m rwjax.evaluate --config=configs/evaluate.py:PRESET --config.workdir=DIR
  python -m rwjax.evaluate --config=configs/evaluate.py:paper \
      --config.workdirs='runs/seed*' --config.out=runs/eval    (or DIR1,DIR2,DIR3)

A pre-trained network is the latest checkpoint of a pre-training workdir, rebuilt from the
config saved there; seed s gives random-init network s and the draws of seed s of every eval
(rwjax.eval.evals), shared by both arms. One workdir stands in for every seed (a paired test
over seeds); several (config.workdirs) give one network per seed and a test across networks.
The evaluations are `config.evals` (presets: configs/evaluate.py), all read from one forward
pass per network, BatchNorm mode and set of images (rwjax.eval.activations). Writes
OUT/report.json (rwjax.eval.report), PNG plots and a table. Protocol: docs/evaluation.md.
"""

import functools
import glob
import time
from typing import NamedTuple

from absl import app
from absl import flags
import jax
import ml_collections
from ml_collections import config_flags
import numpy as np

from rwjax import checkpoint
from rwjax import defaults
from rwjax import models
from rwjax import paths as paths_lib
from rwjax import schema as S
from rwjax.data import sources
from rwjax.data import preprocess
from rwjax.data.preprocess import to_network_input
from rwjax.errors import InputError, cli_main, parse_flags
from rwjax.eval import activations as act
from rwjax.eval import batchnorm as bn_lib
from rwjax.eval import evals as evals_lib
from rwjax.eval import report as report_lib
from rwjax.eval import stats


def workdirs_of(config: ml_collections.ConfigDict) -> list[str]:
  """The pre-training workdirs of the pre-trained arm: config.workdir, or config.workdirs
  ('DIR1,DIR2' and / or globs, each glob's matches sorted)."""
  if bool(config.workdir) == bool(config.workdirs):
    raise InputError('set one of config.workdir (a pre-training workdir written by `python -m '
                     'rwjax.train`) and config.workdirs (several: DIR1,DIR2,DIR3 or a quoted '
                     "glob 'runs/seed*')")
  if config.workdir:
    return [config.workdir]
  found = []
  for item in S.names(config.workdirs):
    if glob.has_magic(item):
      matches = sorted(m for m in paths_lib.glob(item) if paths_lib.isdir(m))
      if not matches:
        raise InputError(f'config.workdirs: {item!r} matches no directory; check the pattern '
                         '(quote it so the shell does not expand it)')
      found += matches
    else:
      found.append(item)
  full = [paths_lib.abspath(d) for d in found]
  twice = sorted({d for d in full if full.count(d) > 1})
  if twice:
    raise InputError(f'config.workdirs lists {twice} more than once: each pre-training run '
                     'counts once')
  return found


def validate_evals(config: ml_collections.ConfigDict) -> None:
  """The evaluations' settings (every key but the workdirs'); InputError on the first bad
  one."""
  S.check(config, defaults.evaluate_rules())
  if not config.evals:
    raise InputError('config.evals is empty: use a preset (configs/evaluate.py:PRESET)')
  for name, c in config.evals.items():
    evals_lib.validate(name, c)
  if any('adapt' in c.batchnorm for c in config.evals.values()) and not config.adapt.source:
    raise InputError("config.adapt.source is empty: BatchNorm mode 'adapt' recomputes the "
                     'statistics on those images (e.g. the classification train split)')


def validate(config: ml_collections.ConfigDict) -> None:
  """Every config value the evaluator reads, checked once; InputError on the first bad one."""
  validate_evals(config)
  workdirs = workdirs_of(config)
  if len(workdirs) > 1 and config.seeds != len(workdirs):
    raise InputError(f'config.seeds={config.seeds} must equal the number of pre-training '
                     f'workdirs ({len(workdirs)}): seed s pairs workdir s with random-init '
                     f'network s; set --config.seeds={len(workdirs)}')
  if len(workdirs) > 1 and not config.out:
    raise InputError('config.out is not set: with several workdirs pass --config.out=DIR')


class Network(NamedTuple):
  """One network of an arm: the unit of the statistics when there are several workdirs."""
  arm: str  # 'pretrained' | 'random_init'
  seed: int  # the evals' draws of seed s, shared by network s of both arms
  source: str  # the workdir, or 'init seed s'
  variables: dict  # stored (pre-trained) or initial {'params', 'batch_stats'}


def load_pretrained(workdirs: list[str]) -> tuple[list[ml_collections.ConfigDict], list[dict]]:
  """(config, variables) of each workdir's latest checkpoint; InputError when the workdirs'
  networks differ in architecture (config.model but its compute dtype, or data.input_size)."""
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


def networks_of(config, model, size: int, sources_: list[str],
                pretrained: list[dict]) -> dict[str, list[Network]]:
  """{arm: [Network for seed s]}: pre-trained network s is pretrained[s] (the only one for
  every s when there is one), random-init network s is initialised from
  split(PRNGKey(s), 3)[0]."""
  out = {'pretrained': [], 'random_init': []}
  for seed in range(config.seeds):
    i = seed % len(pretrained)
    out['pretrained'].append(Network('pretrained', seed, sources_[i], pretrained[i]))
    if config.random_init_arm:
      k_init = jax.random.split(jax.random.PRNGKey(seed), 3)[0]
      out['random_init'].append(Network('random_init', seed, f'init seed {seed}',
                                        models.init_variables(model, k_init, size)))
  return out


def _loader(config, size: int, channels: int):
  """load(spec, split, max_examples=0, fit='resize'): network-input images of any source and
  split, loaded once: (f32[N, size, size, C] on the device, labels i32[N], class names)."""
  prep = jax.jit(to_network_input, static_argnums=(1, 2, 3))

  @functools.cache
  def load(spec: str, split: str, max_examples: int, fit: str):
    images, labels, names = sources.load_images(
        spec, split, data_dir=config.data_dir or None, download=config.download,
        max_examples=max_examples or None)
    return prep(images, size, channels, fit), labels, names

  return lambda spec, split, max_examples=0, fit='resize': load(spec, split, max_examples, fit)


def _stats(load, channels: int):
  """stats(spec) -> (mean f32[C], std f32[C]): the paper's constants for the datasets it
  normalised (rwjax.data.preprocess.CHANNEL_STATS, by name), else those of the source's
  train split."""

  @functools.cache
  def stats(spec: str):
    found = (preprocess.CHANNEL_STATS.get(evals_lib.source_name(spec))
             or preprocess.channel_stats(load(spec, 'train')[0]))
    return tuple(np.broadcast_to(np.asarray(v, np.float32), (channels,)) for v in found)

  return stats


def _features(model, config, passes: act.Passes):
  """features(network, variables, mode, jobs) -> get(set_id, view, key) -> f32[N, D]: each
  set of images through the network once (all views of all jobs on it), the fixed sets of a
  network kept for its later seeds."""
  kept = {}  # network source -> {(mode, set_id, view, key bytes): features}
  key_bytes = lambda key: None if key is None else np.asarray(key).tobytes()

  def features(net: Network, variables: dict, mode: str, jobs: list) -> dict:
    if net.source not in kept:
      kept.clear()  # one network at a time: the one-workdir arm reuses it over seeds
      kept[net.source] = {}
    cache, out, todo = kept[net.source], {}, {}  # todo: set id -> (images, {k: (view, key)})
    for job in jobs:
      images, views = todo.setdefault(job.set_id, (job.images, {}))
      for view, key in job.views:
        k = (job.set_id, view, key_bytes(key))
        if (mode, *k) in cache:
          out[k] = cache[(mode, *k)]
        else:
          views[k] = (view, key)
    fixed = {j.set_id for j in jobs if j.fixed}
    for set_id, (images, views) in todo.items():
      if views:
        arrays = act.extract(model, variables, images, [v for v, _ in views.values()],
                             [k for _, k in views.values()], batch_size=config.batch_size,
                             batchnorm=mode, bn_batch=config.batchnorm_batch, passes=passes)
        out.update(zip(views, arrays))
        cache.update({(mode, *k): a for k, a in zip(views, arrays) if set_id in fixed})
    return lambda set_id, view, key: out[set_id, view, key_bytes(key)]

  return features


def evaluate_networks(config: ml_collections.ConfigDict, model: models.SimCLRModel,
                      pre_config: ml_collections.ConfigDict, networks: dict) -> dict:
  """Runs every eval of config.evals on every network; returns the report's rows and notes.

  Args:
    config: the evaluate config (validated).
    model, pre_config: the networks' architecture and the pre-training config (wave
      manifolds read its movie).
    networks: {arm: [Network for seed s]} ('random_init' may be empty).
  """
  size, channels = pre_config.data.input_size, pre_config.model.channels
  load = _loader(config, size, channels)
  dataset_stats = _stats(load, channels)
  ctx = evals_lib.Context(model, tuple(model.projector), size, channels, pre_config, load,
                          lambda arm, seed: networks[arm][seed].variables, config.batch_size,
                          dataset_stats)
  evals = [evals_lib.build(name, c, ctx) for name, c in config.evals.items()]
  modes = tuple(dict.fromkeys(m for e in evals for m in e.modes))
  adapt_images = None
  if 'adapt' in modes:
    a = config.adapt
    adapt_images = load(a.source, a.split, a.max_examples)[0]
    adapt_images = adapt_images[sources.subset(len(adapt_images), a.images or None)]
    if a.normalize == 'dataset':
      mean, std = dataset_stats(a.source)
      adapt_images = (adapt_images - mean) / std
  passes, timing = act.Passes(), {'inputs_s': 0.0, 'networks_s': 0.0, 'measures_s': 0.0}
  features = _features(model, config, passes)
  adapted, values = {}, {}  # values: (eval, task, layer, measure, mode) -> {arm: [per seed]}
  arms = [a for a in stats.ARMS if networks.get(a)]
  for seed in range(config.seeds):
    t = time.perf_counter()
    inputs = {e.name: e.inputs(seed) for e in evals}
    jobs = {e.name: e.jobs(seed, inputs[e.name]) for e in evals}
    timing['inputs_s'] += time.perf_counter() - t
    for arm in arms:
      net = networks[arm][seed]
      for mode in modes:
        t = time.perf_counter()
        variables = net.variables
        if mode == 'adapt':
          if net.source not in adapted:
            adapted.clear()
            adapted[net.source] = bn_lib.adapt(model, net.variables, adapt_images,
                                               batch_size=config.batch_size, passes=passes)
          variables = adapted[net.source]
        chosen = [e for e in evals if mode in e.modes]
        get = features(net, variables, mode, [j for e in chosen for j in jobs[e.name]])
        timing['networks_s'] += time.perf_counter() - t
        t = time.perf_counter()
        for e in chosen:
          for (task, layer, measure), v in e.measure(seed, inputs[e.name], get).items():
            values.setdefault((e.name, task, layer, measure, mode), {}).setdefault(
                arm, []).append(v)
        timing['measures_s'] += time.perf_counter() - t
  timing['forward_images'], timing['adapt_images'] = passes.forward, passes.adapt
  return {'values': values, 'layers': {e.name: list(e.layers) for e in evals},
          'notes': [n for e in evals for n in e.notes], 'timing': timing}


def evaluate(config: ml_collections.ConfigDict) -> dict:
  """Validates, loads the networks, runs every eval; returns the report dict."""
  validate(config)
  start = time.perf_counter()
  workdirs = workdirs_of(config)
  pre_configs, pretrained = load_pretrained(workdirs)
  pre_config = pre_configs[0]
  model = models.create_model(**pre_config.model)
  networks = networks_of(config, model, pre_config.data.input_size,
                         [paths_lib.abspath(w) for w in workdirs], pretrained)
  several = len(workdirs) > 1
  paired = config.test == 'paired' or (config.test == 'auto' and not several)
  out = evaluate_networks(config, model, pre_config, networks)
  out['timing']['total_s'] = time.perf_counter() - start
  return report_lib.assemble(
      out, config=config, paired=paired, several=several,
      workdirs=[paths_lib.abspath(w) for w in workdirs],
      steps=[checkpoint.latest_step(w) for w in workdirs],
      networks={arm: [n.source for n in nets] for arm, nets in networks.items()},
      configs={'evaluate': config.to_dict(), 'pretrain': pre_config.to_dict(),
               'pretrain_runs': [c.to_dict() for c in pre_configs]})


def run(config: ml_collections.ConfigDict) -> dict:
  """Evaluates, writes the report and plots, prints the table; returns the report."""
  report = evaluate(config)
  out = config.out or paths_lib.join(report['workdir'], 'eval')
  written = report_lib.write(report, out)
  print(report_lib.table(report))
  print(f"\n{report['timing']['total_s']:.1f} s, {report['timing']['forward_images']} images "
        f'through the networks; wrote ' + ', '.join(written), flush=True)
  return report


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments {argv[1:]}; settings go in --config.x=v')
  if flags.FLAGS.config is None:
    raise app.UsageError('pass --config=configs/evaluate.py --config.workdir=DIR')
  cli_main(lambda: run(flags.FLAGS.config))


if __name__ == '__main__':  # flag defined here: importing the module claims no --config
  config_flags.DEFINE_config_file(
      'config', None, 'Evaluation config file (configs/evaluate.py[:preset]).', lock_config=True)
  app.run(main, flags_parser=parse_flags)
