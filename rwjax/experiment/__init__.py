"""The paper's comparison end to end: every arm x pre-training seed, trained and evaluated.

  python -m rwjax.experiment --config=configs/experiment.py:SCALE --workdir=DIR [--config.x.y=v]

Run (arm, seed) trains in DIR/runs/ARM/seedS/train/ to each step of config.eval_steps in turn
(the trainer resumes: with the paper's constant learning rate the stages give the straight
run's network) and evaluates each step's checkpoint once with config.evaluate into
eval/stepN/report.json (output in log.txt). Step 0 of every arm is read from random_init (the
network depends on config.seed alone). Re-running skips what exists; a run directory holding
another config is refused, the differing keys named. Arms: arms.py; claim rules:
rwjax/eval/claims.py; report: report.py; the matrix and scales: docs/experiment.md.
"""

import contextlib
import copy
import dataclasses
import json
import os
import sys
import time
from typing import Any, Mapping, Optional

import ml_collections
import numpy as np

from rwjax import paths as paths_lib
from rwjax import schema as S
from rwjax.errors import InputError
from rwjax.metrics import duration
from rwjax.experiment.arms import ARMS, Arm

__all__ = ['ARMS', 'Arm', 'Plan', 'Run', 'make_plan', 'check_existing', 'execute', 'collect',
           'run', 'write_movies', 'write_recorded', 'compilation_cache_dir']


def to_json(x) -> Any:
  return json.loads(json.dumps(x.to_dict() if hasattr(x, 'to_dict') else x))


@dataclasses.dataclass
class Run:
  arm: str
  seed: int
  dir: str
  pretrain: ml_collections.ConfigDict
  steps: tuple  # evaluation steps (0 only for untrained arms)
  record: dict  # what the run's results depend on (run.json)

  @property
  def train_dir(self) -> str:
    return os.path.join(self.dir, 'train')

  def report(self, step: int) -> str:
    return os.path.join(self.dir, 'eval', f'step{step}', 'report.json')

  @property
  def finished(self) -> bool:
    return all(paths_lib.exists(self.report(s)) for s in self.steps)


@dataclasses.dataclass
class Plan:
  workdir: str
  config: ml_collections.ConfigDict
  evaluate: ml_collections.ConfigDict  # config.evaluate, resolved
  arms: tuple  # the matrix, in order ('recorded' only with config.recordings)
  runs: list  # Run, in execution order (config.only applied)
  steps: tuple  # the trained arms' evaluation steps
  paths: dict  # '{movies}', '{recorded}' -> directories
  recordings: list  # usable stage II recording files
  rejected: dict  # recording file -> why it was not used
  n_devices: int


def seed_of(config: ml_collections.ConfigDict, arm: str, i: int) -> int:
  """The pre-training seed of an arm's i-th run (the null arm's: other seeds)."""
  return config.first_seed + i + (config.null_seed_offset if ARMS[arm].role == 'null' else 0)


def eval_steps(config: ml_collections.ConfigDict) -> tuple:
  total = config.pretrain.train.steps
  fractions = tuple(config.eval_steps)
  if not fractions or any(not isinstance(f, (int, float)) or isinstance(f, bool)
                          or not 0 <= f <= 1 for f in fractions):
    raise InputError(f'config.eval_steps={fractions!r} must be fractions in [0, 1] of '
                     'config.pretrain.train.steps, e.g. (0.0, 0.1, 0.3, 1.0)')
  return tuple(sorted({int(round(f * total)) for f in fractions} | {total}))


def resolved_evaluate(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """config.evaluate with '{cifar10}' / '{mnist}' in its strings replaced by config.cifar10
  / config.mnist, checked (its image folders too, unless config.report_only)."""
  from rwjax import evaluate  # pylint: disable=g-import-not-at-top
  fill = lambda v: (v.replace('{cifar10}', config.cifar10).replace('{mnist}', config.mnist)
                    if isinstance(v, str) else tuple(map(fill, v)) if isinstance(v, tuple)
                    else v)
  e = copy.deepcopy(config.evaluate)
  for key, value in S.leaves(to_json(e)).items():
    value = tuple(value) if isinstance(value, list) else value
    if fill(value) != value:
      S.put(e, key, fill(value))
  try:
    evaluate.validate_evals(e)
  except InputError as err:
    raise InputError(str(err).replace('config.', 'config.evaluate.', 1)) from None
  if config.report_only:  # a report reads no image
    return e
  for name, leaf in S.leaves(to_json(e.evals)).items():
    for spec in leaf if isinstance(leaf, list) else [leaf]:
      if isinstance(spec, str) and spec.startswith('folder:') and not paths_lib.isdir(
          spec[len('folder:'):]):
        raise InputError(
            f'config.evaluate.evals.{name} reads images from {spec[len("folder:"):]!r}, '
            'which is not a directory; pass --config.cifar10=PATH / --config.mnist=PATH '
            '(image folders laid out split/label/file, e.g. /work/data/cifar10)')
  return e


def _check_recordings(config: ml_collections.ConfigDict) -> tuple[list, dict]:
  """(usable stage II files, {rejected file: why}); InputError if none is usable."""
  from rwjax.waves import recorded  # pylint: disable=g-import-not-at-top
  folder = config.recordings
  if not paths_lib.isdir(folder):
    raise InputError(f'config.recordings={folder!r} is not a directory; pass a folder of MEA '
                     'spike files (.h5, the layout of rwjax/waves/recorded.py)')
  files = sorted(paths_lib.glob(os.path.join(folder, '*.h5')) +
                 paths_lib.glob(os.path.join(folder, '*.hdf5')))
  usable, rejected = [], {}
  for path in files:
    try:
      rec = recorded.load_mea(path)
    except InputError as e:
      rejected[path] = str(e)
      continue
    if rec.age_days is None or rec.age_days > config.recorded.max_age_days:
      rejected[path] = (f'age {rec.age_days} is not stage II (<= '
                        f'{config.recorded.max_age_days} days)')
    elif rec.times.size == 0:
      rejected[path] = 'no spikes'
    else:
      usable.append(path)
  if not usable:
    why = '; '.join(f'{os.path.basename(k)}: {v}' for k, v in rejected.items())
    raise InputError(f'config.recordings={folder!r} holds no usable stage II recording '
                     f'({len(files)} .h5 file(s){": " + why if why else ""}); pass a folder '
                     'of MEA spike files of retinas aged <= '
                     f'{config.recorded.max_age_days} days (config.recorded.max_age_days)')
  return usable, rejected


def arm_config(arm: Arm, config: ml_collections.ConfigDict, paths: dict,
               seed: int) -> ml_collections.ConfigDict:
  """The arm's pre-training config for one seed."""
  cfg = copy.deepcopy(config.pretrain)
  for key, value in arm.overrides.items():
    if isinstance(value, str):
      for k, v in paths.items():
        value = value.replace(k, v)
    S.put(cfg, key, value)
  cfg.seed = seed
  return cfg


def _record(cfg, steps, config: ml_collections.ConfigDict, evaluate, arm: Arm,
            n_devices: int) -> dict:
  rec = {'pretrain': to_json(cfg), 'steps': list(steps), 'evaluate': to_json(evaluate),
         'n_devices': n_devices}
  if cfg.train.steps and arm.movies:
    rec['movie'] = to_json(config.movies[arm.movies[0]])
  if cfg.train.steps and '{recorded}' in str(arm.overrides.get('data.movie', '')):
    rec['recorded'] = {**to_json(config.recorded),
                       'folder': paths_lib.abspath(config.recordings)}
  return rec


def make_plan(config: ml_collections.ConfigDict, workdir: str,
              n_devices: Optional[int] = None) -> Plan:
  """Everything the experiment will do, checked; InputError on bad input. Writes nothing."""
  import jax  # pylint: disable=g-import-not-at-top
  from rwjax.ssl import trainer  # pylint: disable=g-import-not-at-top
  if not workdir:
    raise InputError('--workdir is required: the directory for the runs and the report')
  n_devices = n_devices or jax.device_count()
  matrix = list(S.names(config.arms))
  unknown = [a for a in matrix if a not in ARMS]
  if unknown or not matrix:
    raise InputError(f'config.arms: unknown arm(s) {unknown}; the arms are {list(ARMS)}')
  if bool(config.recordings) != ('recorded' in matrix):  # recorded: only with recordings
    matrix = matrix + ['recorded'] if config.recordings else [a for a in matrix if a != 'recorded']
  only = S.names(config.only)
  bad = [a for a in only if a not in matrix]
  if bad:
    raise InputError(f'config.only: {bad} not in the matrix; choose from {matrix} '
                     '(config.arms sets the matrix; recorded needs config.recordings)')
  if isinstance(config.seeds, bool) or not isinstance(config.seeds, int) or config.seeds < 1:
    raise InputError(f'config.seeds={config.seeds!r} must be an integer >= 1')
  steps = eval_steps(config)
  if len([s for s in steps if s > 0]) > 1 and config.pretrain.optim.schedule != 'constant':
    raise InputError(
        f"config.pretrain.optim.schedule={config.pretrain.optim.schedule!r}: evaluation at "
        'several steps trains in stages (the trainer resumes), which gives the straight '
        "run's network only for a constant learning rate (the paper's); use "
        "--config.eval_steps='(1.0,)' for a schedule")
  used = {m for a in matrix for m in ARMS[a].movies}
  used |= {config.movies[m].like for m in used & set(config.movies) if 'like' in config.movies[m]}
  missing = sorted(used - set(config.movies))
  if missing:
    raise InputError(f'config.movies has no {missing}: the arms {matrix} train on them')
  evaluate = resolved_evaluate(config)
  workdir = paths_lib.abspath(workdir)
  data_dir = os.path.join(workdir, 'data')
  paths = {'{movies}': os.path.join(data_dir, 'movies'),
           '{recorded}': os.path.join(data_dir, 'recorded')}
  recordings, rejected = [], {}
  if 'recorded' in matrix and (not only or 'recorded' in only):
    recordings, rejected = _check_recordings(config)
  runs = []
  for name in matrix:
    arm = ARMS[name]
    for s in range(config.seeds):
      cfg = arm_config(arm, config, paths, seed_of(config, name, s))
      try:
        trainer.validate(cfg, n_devices)
      except InputError as e:
        raise InputError(f'arm {name!r}: {e}') from None
      run_steps = tuple(x for x in steps if x > 0) if arm.trained else (0,)
      if not only or name in only:
        runs.append(Run(name, cfg.seed, os.path.join(workdir, 'runs', name, f'seed{cfg.seed}'),
                        cfg, run_steps, _record(cfg, run_steps, config, evaluate, arm, n_devices)))
  # Random init first (step 0 of every arm), then seed-major, the null arm last.
  order = {n: i for i, n in enumerate(matrix)}
  runs.sort(key=lambda r: (ARMS[r.arm].role != 'baseline', ARMS[r.arm].role == 'null',
                           r.seed, order[r.arm]))
  if config.claims.waves_arm != 'auto' and (config.claims.waves_arm not in ARMS or ARMS[
      config.claims.waves_arm].role != 'waves'):
    raise InputError(f'config.claims.waves_arm={config.claims.waves_arm!r} must be "auto" or '
                     f"a waves arm: {[a for a, x in ARMS.items() if x.role == 'waves']}")
  return Plan(workdir, config, evaluate, tuple(matrix), runs, steps, paths, recordings,
              rejected, n_devices)


def _differences(old: dict, new: dict) -> list[str]:
  """'key: old -> new' for the leaves both records have and that differ."""
  a, b = S.leaves(old), S.leaves(new)
  return [f'{k}: {a[k]!r} -> {b[k]!r}' for k in sorted(set(a) & set(b)) if a[k] != b[k]]


def check_existing(plan: Plan) -> None:
  """InputError naming every run directory that holds another config, and the keys."""
  problems = []
  for run in plan.runs:
    path = os.path.join(run.dir, 'run.json')
    if not paths_lib.exists(path):
      continue
    old, new = paths_lib.read_json(path), dict(run.record)
    if run.finished:  # a finished run does not depend on the device count
      old.pop('n_devices', None)
      new.pop('n_devices', None)
    diff = _differences(old, new)
    if diff:
      problems.append(f"{os.path.relpath(run.dir, plan.workdir)} ({'; '.join(diff[:8])}"
                      f"{'; ...' if len(diff) > 8 else ''})")
  for name in {m for r in plan.runs for m in ARMS[r.arm].movies}:
    path = os.path.join(plan.paths['{movies}'], name, 'settings.json')
    if paths_lib.exists(path):
      diff = _differences(paths_lib.read_json(path), to_json(plan.config.movies[name]))
      if diff:
        problems.append(f"data/movies/{name} ({'; '.join(diff)})")
  if problems:
    raise InputError(f'workdir {plan.workdir!r} holds runs of another config: '
                     + ' | '.join(problems) + '. Nothing was changed; use a new --workdir, '
                     'or the config those runs were made with')


# ---------------------------------------------------------------------------------------
# Data: the saved movies and the recorded movie.

def _movie_order(config: ml_collections.ConfigDict, names) -> list[str]:
  """The movies to write for `names`, each after the movie its noise is like."""
  out = []
  for name in names:
    like = config.movies[name].get('like')
    out += [m for m in _movie_order(config, [like]) if m not in out] if like else []
    out += [name] if name not in out else []
  return out


def _quiet(log_path: str):
  """Redirects prints (trainer, evaluator, movie writers) into a log file."""
  stack = contextlib.ExitStack()
  f = stack.enter_context(paths_lib.open_append(log_path))  # a bucket: uploaded on exit
  stack.enter_context(contextlib.redirect_stdout(f))
  stack.enter_context(contextlib.redirect_stderr(f))
  return stack


def write_movies(plan: Plan) -> None:
  """DIR/data/movies/NAME/{movie,labels}.npy of every movie an unfinished run trains on, from
  config.movies[NAME] (also its settings.json, with the command): a simulation
  (rwjax.waves.simulate.write_movie) or noise like another movie (rwjax.waves.noise)."""
  from rwjax.waves import noise, simulate  # pylint: disable=g-import-not-at-top
  names = sorted({m for r in plan.runs if not r.finished for m in ARMS[r.arm].movies})
  for name in _movie_order(plan.config, names):
    out = os.path.join(plan.paths['{movies}'], name)
    if paths_lib.exists(os.path.join(out, 'settings.json')):
      continue
    s = to_json(plan.config.movies[name])
    paths_lib.makedirs(out)
    with _quiet(os.path.join(out, 'log.txt')):
      if 'like' in s:
        like = os.path.join(plan.paths['{movies}'], s['like'])
        command = (f"python -m rwjax.waves noise --like={like} --seed={s['seed']} "
                   f"--refine={s['refine']}")
        noise.write_movie(like, out, seed=s['seed'], refine=s['refine'])
      else:
        command = 'python -m rwjax.waves simulate ' + ' '.join(
            [f'--{k.replace("_", "-")}={s[k]}' for k in ('model', 'size', 'seconds', 'batch',
                                                         'warmup', 'seed', 'min_size')]
            + [f'--param {k}={v}' for k, v in sorted(s['params'].items())])
        simulate.write_movie(out, gif_seconds=0.0, progress=None, **s)
    paths_lib.write_atomic(os.path.join(out, 'settings.json'), json.dumps(
        {**s, 'command': f'{command} --out={out}'}, indent=1))


def write_recorded(plan: Plan) -> None:
  """Each usable recording through rwjax.waves.recorded.write_movie (`python -m rwjax.waves
  convert`), then the first max_frames / n frames of each joined in time into
  DIR/data/recorded/{movie,labels}.npy (labels offset so that waves of different
  recordings stay apart)."""
  from rwjax.waves import movie as movie_io  # pylint: disable=g-import-not-at-top
  from rwjax.waves import recorded  # pylint: disable=g-import-not-at-top
  out = plan.paths['{recorded}']
  if paths_lib.exists(os.path.join(out, 'settings.json')):
    return
  paths_lib.makedirs(out)
  per = max(1, plan.config.recorded.max_frames // len(plan.recordings))
  movies, labels, offset = [], [], 0
  for path in plan.recordings:
    d = os.path.join(out, os.path.splitext(os.path.basename(path))[0])
    if not paths_lib.exists(os.path.join(d, movie_io.META_FILE)):
      with _quiet(os.path.join(out, 'log.txt')):
        recorded.write_movie(d, path)
    m = movie_io.load_movie(d)[..., :per, :, :]
    m = m.reshape(-1, *m.shape[-2:])
    l = paths_lib.load_npy(os.path.join(d, movie_io.LABELS_FILE))
    l = l.reshape(-1)[:len(m)].astype(np.int32)
    l = np.where(l >= 0, l + offset, -1)
    offset = int(l.max(initial=offset - 1)) + 1
    movies.append(m)
    labels.append(l)
  paths_lib.save_npy(os.path.join(out, 'movie.npy'),
                     np.concatenate(movies)[None].astype(np.float32))
  paths_lib.save_npy(os.path.join(out, 'labels.npy'), np.concatenate(labels)[None])
  paths_lib.write_atomic(os.path.join(out, 'settings.json'), json.dumps(
      {'recordings': plan.recordings, 'frames_each': per, **to_json(plan.config.recorded)},
      indent=1))


# ---------------------------------------------------------------------------------------
# Running.

def _say(message: str) -> None:
  print(f'experiment: {message}', file=sys.stderr, flush=True)


class Interrupted(Exception):
  """The trainer stopped early (SIGTERM): re-run the command to resume."""


def _write_json(path: str, obj) -> None:
  paths_lib.makedirs(os.path.dirname(path))
  paths_lib.write_atomic(path, json.dumps(obj, indent=1, allow_nan=False))


def execute(plan: Plan, run: Run) -> dict:
  """Trains the run to each evaluation step in turn and evaluates it there once; what
  exists is skipped. Returns {'train_s', 'eval_s'} of this call."""
  from rwjax import checkpoint, evaluate  # pylint: disable=g-import-not-at-top
  from rwjax.eval import monitor  # pylint: disable=g-import-not-at-top
  from rwjax.ssl import trainer  # pylint: disable=g-import-not-at-top
  paths_lib.makedirs(run.dir)
  _write_json(os.path.join(run.dir, 'run.json'), run.record)
  timing = {'train_s': 0.0, 'eval_s': 0.0}

  def timed(key, fn):
    t0 = time.perf_counter()
    with _quiet(os.path.join(run.dir, 'log.txt')):
      out = fn()
    timing[key] += time.perf_counter() - t0
    return out

  for step in run.steps:
    if paths_lib.exists(run.report(step)):
      continue
    cfg = copy.deepcopy(run.pretrain)
    cfg.train.steps = step
    timed('train_s', lambda: trainer.train(cfg, run.train_dir, hooks=monitor.hooks(cfg)))
    if checkpoint.latest_step(run.train_dir) != step:
      raise Interrupted(f'{run.arm} seed {run.seed} stopped before step {step}')
    e = copy.deepcopy(plan.evaluate)
    e.workdir, e.out = run.train_dir, os.path.dirname(run.report(step))
    report = timed('eval_s', lambda: evaluate.evaluate(e))
    if report['step'] != step:  # the evaluator reads the latest checkpoint
      raise RuntimeError(f"{run.train_dir}: evaluated step {report['step']}, not {step}")
    _write_json(run.report(step), report)
  path = os.path.join(run.dir, 'timing.json')
  old = paths_lib.read_json(path) if paths_lib.exists(path) else {}
  _write_json(path, {k: old.get(k, 0.0) + v for k, v in timing.items()})
  return timing


def run_matrix(plan: Plan) -> None:
  """Every run of the plan, with one progress line per run on stderr."""
  start = time.perf_counter()
  spent = {True: [], False: []}  # trained? -> seconds of the runs executed now

  def eta(i):
    mean = lambda t: (np.mean(spent[t]) if spent[t] else
                      np.mean(spent[not t]) if spent[not t] else None)
    est = [mean(ARMS[r.arm].trained) for r in plan.runs[i:] if not r.finished]
    return None if any(e is None for e in est) else float(sum(est))

  for i, run in enumerate(plan.runs):
    label = f'run {i + 1}/{len(plan.runs)} {run.arm} seed {run.seed}'
    if run.finished:
      what = 'finished before, skipped'
    else:
      t0 = time.perf_counter()
      execute(plan, run)
      spent[ARMS[run.arm].trained].append(time.perf_counter() - t0)
      what = f'done in {duration(time.perf_counter() - t0)}'
    left = eta(i + 1)
    _say(f'{label}: {what} | elapsed {duration(time.perf_counter() - start)} '
         f"| ETA {duration(left) if left is not None else '?'}")


# ---------------------------------------------------------------------------------------
# Results.

def measures(report: dict) -> dict:
  """{(eval, task, layer, measure, batchnorm): the network's value} of an evaluator report
  (the pre-trained arm's mean over the evaluator's seeds)."""
  return {(r['eval'], r['task'], r['layer'], r['measure'], r['batchnorm']):
          r['pretrained']['mean'] for r in report['rows']}


def collect(plan: Plan) -> dict:
  """results[arm][seed][step] = measures, for every run directory of the matrix that has
  reports (whatever config.only was). Step 0 of a trained arm is random_init's."""
  results = {}
  for arm in plan.arms:
    for s in range(plan.config.seeds):
      seed = seed_of(plan.config, arm, s)
      base = os.path.join(plan.workdir, 'runs', arm, f'seed{seed}', 'eval')
      for path in paths_lib.glob(os.path.join(base, 'step*', 'report.json')):
        step = int(os.path.basename(os.path.dirname(path))[4:])
        results.setdefault(arm, {}).setdefault(seed, {})[step] = measures(
            paths_lib.read_json(path))
  ri = results.get('random_init', {}) if 0 in plan.steps else {}
  for arm, by_seed in results.items():
    for seed, by_step in by_seed.items():
      if ARMS[arm].trained and 0 in ri.get(seed, {}):
        by_step[0] = ri[seed][0]
  return results


def machine() -> dict:
  import platform  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  return {'platform': platform.platform(), 'processor': platform.processor() or
          platform.machine(), 'cpu_count': os.cpu_count(), 'python': platform.python_version(),
          'jax': jax.__version__, 'backend': jax.default_backend(),
          'devices': [str(d) for d in jax.devices()]}


def compilation_cache_dir(config: ml_collections.ConfigDict, workdir: str,
                          environ: Mapping[str, str]) -> Optional[str]:
  """DIR/jax_cache when config.compilation_cache and DIR is local, else None (a cache the
  environment names, JAX_COMPILATION_CACHE_DIR, is jax's own and kept). Runs of one shape
  compile the same programs: once for the matrix, never on a re-run (local only: a bucket
  would add a round trip per program)."""
  if (not config.compilation_cache or not workdir or paths_lib.is_remote(workdir)
      or environ.get('JAX_COMPILATION_CACHE_DIR')):
    return None
  return os.path.join(workdir, 'jax_cache')


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The whole experiment: plan, check, data, runs, report. Returns the report's summary."""
  from rwjax.experiment import report  # pylint: disable=g-import-not-at-top
  t0 = time.perf_counter()
  cache = compilation_cache_dir(config, workdir, os.environ)
  if cache:
    import jax  # pylint: disable=g-import-not-at-top
    jax.config.update('jax_compilation_cache_dir', cache)
  plan = make_plan(config, workdir)
  check_existing(plan)
  if config.report_only and not any(paths_lib.exists(os.path.join(r.dir, 'run.json'))
                                    for r in plan.runs):
    raise InputError(f'config.report_only: {plan.workdir!r} holds no run of this matrix; '
                     'run the experiment there first (or unpack its results there)')
  paths_lib.check_writable(plan.workdir)  # creates it; a bucket's errors: one message
  _say(f'{len(plan.runs)} runs ({len(plan.arms)} arms x {config.seeds} seeds'
       f'{", only " + config.only if config.only else ""}); evals '
       f'{list(plan.evaluate.evals)}; steps {list(plan.steps)}')
  interrupted = None
  if not config.report_only:  # report_only: the report from the runs that exist, nothing run
    write_movies(plan)
    if any('recorded' in r.record and not r.finished for r in plan.runs):
      write_recorded(plan)
    try:
      run_matrix(plan)
    except Interrupted as e:
      interrupted = str(e)
  summary = report.write(plan, collect(plan), machine(), time.perf_counter() - t0)
  _say(f"wrote {os.path.join(plan.workdir, 'report.md')} and report.html "
       f"{'from the runs there (config.report_only) ' if config.report_only else ''}"
       f'({duration(time.perf_counter() - t0)})')
  if interrupted:
    _say(f'interrupted ({interrupted}); re-run the command to resume')
  return summary
