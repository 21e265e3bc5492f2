"""The paper's comparison end to end: every arm x pre-training seed, trained and evaluated.

  python -m rwjax.experiment --config=configs/experiment.py:SCALE --workdir=DIR [--config.x.y=v]

Each run (arm, seed) is `rwjax.ssl.trainer.train` and `rwjax.evaluate.evaluate` (the binaries'
own functions) in its own directory DIR/runs/ARM/seedS/ (train/: the trainer's workdir; eval/
stepN/PROTOCOL/report.json: the evaluator's report; log.txt: their output). Evaluation at
several points of training: the run trains to each step of config.eval_steps in turn (the
trainer's resume: with the paper's constant learning rate the stages give the same network
as one straight run, tests/test_train.py), and the evaluator reads the checkpoint of that
step. Step 0 of every arm is the random-init network of its seed (the trainer initialises
the network from config.seed alone, and no arm changes the model), so it is read from the
random_init arm. Re-running skips what exists and resumes the rest; a run directory holding
another config is refused (the keys that differ are named) before anything is written.

Arms are data (ARMS): overrides of config.pretrain. An arm that needs a config key or value
this tree's trainer does not have yet (the paper's protocol: data.batching, loss.denominator,
the paper's shuffles) is "pending" and listed as such in the report; so is an evaluation
protocol whose preset (configs/evaluate.py:paper) does not exist yet.

Where the issue left choices open: today's controls ('temporal': within-wave order,
'spatial': one fixed pixel permutation) are run on the saved movie with today's protocol
(arm movie_pairs as their reference); the paper's controls (temporal_global,
spatial_per_frame, spatiotemporal_global) on the same movie with the paper's protocol
(arm lansdell_movie). The recorded arm uses the paper's protocol too. Statistics and claim
rules: rwjax/eval/claims.py. Report: rwjax/experiment_report.py.
"""

import contextlib
import copy
import dataclasses
import json
import os
import sys
import time
from typing import Any, Mapping, Optional

from absl import app
from absl import flags
import ml_collections
from ml_collections import config_flags
import numpy as np

from rwjax import paths as paths_lib
from rwjax.errors import InputError, cli_main, parse_flags

# The paper's training protocol (issue 12; keys added by the train-protocol branch).
PAPER_PROTOCOL = {'data.batching': 'waves', 'loss.denominator': 'negatives'}
MOVIE = {'data.source': 'file', 'data.movie': '{movie}/movie.npy',
         'data.labels': '{movie}/labels.npy'}
# Untrained arms: the network depends on config.seed alone; no simulator warm-up is needed.
UNTRAINED = {'train.steps': 0, 'data.warmup_s': 0.0, 'data.calibration_s': 0.1}
RECORDED = {'data.source': 'file', 'data.movie': '{recorded}/movie.npy',
            'data.labels': '{recorded}/labels.npy'}


@dataclasses.dataclass(frozen=True)
class Arm:
  """One arm of the matrix.

  role: 'waves' (pre-trained on waves), 'control' (a shuffle of `reference`'s movie),
    'baseline' (random init), 'null' (random inits of other seeds standing in as trained).
  overrides: dotted config.pretrain keys -> values ('{movie}' / '{recorded}' are the
    experiment's movie directories).
  """
  role: str
  overrides: dict
  reference: str = ''
  describe: str = ''

  @property
  def trained(self) -> bool:
    return self.overrides.get('train.steps') != 0


ARMS = {
    'random_init': Arm('baseline', dict(UNTRAINED), describe='untrained network of the seed'),
    'lansdell': Arm('waves', {'data.source': 'sim', 'data.simulator': 'lansdell'},
                    describe='Lansdell model streamed from the on-device simulator'),
    'godfrey': Arm('waves', {'data.source': 'sim', 'data.simulator': 'godfrey'},
                   describe='Godfrey model streamed from the on-device simulator'),
    'movie_pairs': Arm('waves', dict(MOVIE), describe="the saved Lansdell movie, today's "
                       'protocol (random pairs, NT-Xent denominator)'),
    'temporal': Arm('control', {**MOVIE, 'data.shuffle': 'temporal'}, 'movie_pairs',
                    describe="today's temporal control (order shuffled within each wave)"),
    'spatial': Arm('control', {**MOVIE, 'data.shuffle': 'spatial'}, 'movie_pairs',
                   describe="today's spatial control (one fixed pixel permutation)"),
    'spatiotemporal': Arm('control', {**MOVIE, 'data.shuffle': 'spatiotemporal'}, 'movie_pairs',
                          describe="today's temporal + spatial controls"),
    'lansdell_movie': Arm('waves', {**MOVIE, **PAPER_PROTOCOL}, describe='the paper: saved '
                          "Lansdell movie, whole-wave batches, the paper's loss"),
    'temporal_global': Arm('control', {**MOVIE, **PAPER_PROTOCOL,
                                       'data.shuffle': 'temporal_global'}, 'lansdell_movie',
                           describe="the paper's temporal shuffle (frames permuted globally)"),
    'spatial_per_frame': Arm('control', {**MOVIE, **PAPER_PROTOCOL,
                                         'data.shuffle': 'spatial_per_frame'}, 'lansdell_movie',
                             describe="the paper's spatial shuffle (a pixel permutation per "
                             'frame)'),
    'spatiotemporal_global': Arm('control', {**MOVIE, **PAPER_PROTOCOL,
                                             'data.shuffle': 'spatiotemporal_global'},
                                 'lansdell_movie', describe="the paper's two shuffles"),
    'recorded': Arm('waves', {**RECORDED, **PAPER_PROTOCOL},
                    describe="stage II MEA recordings, the paper's protocol"),
    'null': Arm('null', dict(UNTRAINED),
                describe='random inits of other seeds standing in as pre-trained'),
}
CLAIMS_ARMS = ('lansdell_movie', 'movie_pairs', 'lansdell')  # claims.waves_arm='auto'


# ---------------------------------------------------------------------------------------
# Config helpers.

def _has(config: ml_collections.ConfigDict, dotted: str) -> bool:
  node = config
  for part in dotted.split('.'):
    if not isinstance(node, (ml_collections.ConfigDict, dict)) or part not in node:
      return False
    node = node[part]
  return True


def _set(config: ml_collections.ConfigDict, dotted: str, value) -> None:
  *parents, last = dotted.split('.')
  node = config
  for part in parents:
    node = node[part]
  node[last] = value


def _leaves(d: dict, prefix: str = '') -> dict:
  """{'a.b': leaf} of a nested dict (tuples and lists are leaves)."""
  out = {}
  for k, v in d.items():
    key = f'{prefix}{k}'
    if isinstance(v, (dict, ml_collections.ConfigDict)) and v:
      out.update(_leaves(dict(v), key + '.'))
    else:
      out[key] = list(v) if isinstance(v, tuple) else v
  return out


def _json(x) -> Any:
  return json.loads(json.dumps(x.to_dict() if hasattr(x, 'to_dict') else x))


def _names(spec: str) -> list[str]:
  return [s.strip() for s in str(spec).split(',') if s.strip()]


# ---------------------------------------------------------------------------------------
# The plan: which arms and protocols run, with which configs.

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

  def eval_dir(self, step: int, protocol: str) -> str:
    return os.path.join(self.dir, 'eval', f'step{step}', protocol)


@dataclasses.dataclass
class Plan:
  workdir: str
  config: ml_collections.ConfigDict
  arms: dict  # name -> 'run' | 'pending ...' | 'skipped ...' (matrix order)
  protocols: dict  # name -> evaluate ConfigDict (every protocol that can run: the report's)
  protocol_status: dict  # name -> 'run' | 'pending ...'
  not_applied: dict  # protocol -> override keys its preset does not have
  runs: list  # Run, in execution order (config.only applied)
  steps: tuple  # the trained arms' evaluation steps
  paths: dict  # '{movie}', '{recorded}' -> directories
  recordings: list  # usable stage II recording files
  rejected: dict  # recording file -> why it was not used
  n_devices: int
  claims_arm: Optional[str]  # None: the first of CLAIMS_ARMS with results
  run_protocols: tuple  # the protocols this invocation evaluates (config.only_protocols)


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


def _protocol(name: str, spec: ml_collections.ConfigDict, config: ml_collections.ConfigDict):
  """(evaluate ConfigDict or None, status, override keys not applied)."""
  from rwjax import defaults, evaluate  # pylint: disable=g-import-not-at-top
  try:
    e = defaults.evaluate_config(spec.preset)
  except InputError:
    return None, f"pending preset {spec.preset!r} (configs/evaluate.py:{spec.preset})", []
  skipped = []
  for key, value in _leaves(dict(spec.overrides)).items():
    if not _has(e, key):
      skipped.append(key)
      continue
    fill = lambda v: (v.replace('{cifar10}', config.cifar10).replace('{mnist}', config.mnist)
                      if isinstance(v, str) else v)
    _set(e, key, tuple(map(fill, value)) if isinstance(value, list) else fill(value))
  e.workdir = '<each run>'
  # Statistics are across the experiment's networks (the random_init arm's runs), so the
  # evaluator's own random-init networks (half of each evaluation) are not evaluated.
  e.random_init_arm = False
  try:
    evaluate.validate(e)
  except InputError as err:
    raise InputError(f'protocol {name!r} (config.protocols.{name}): {err}') from None
  for key in ('data.source', 'exemplar.source'):
    src = e[key.split('.')[0]][key.split('.')[1]]
    used = key == 'data.source' or e.exemplar.enabled or (
        e.capacity.enabled and set(e.capacity.kinds) - {'class'})
    missing = src.startswith('folder:') and not paths_lib.isdir(src[len('folder:'):])
    if used and missing and not config.report_only:  # a report reads no image
      raise InputError(
          f"protocol {name!r} reads images from {src[len('folder:'):]!r}, which is not a "
          'directory; pass --config.cifar10=PATH / --config.mnist=PATH (image folders laid '
          'out split/label/file, e.g. /work/data/cifar10), or choose arms and protocols '
          'that do not need it')
  return e, 'run', skipped


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
      continue
    if rec.times.size == 0:
      rejected[path] = 'no spikes'
      continue
    usable.append(path)
  if not usable:
    why = '; '.join(f'{os.path.basename(k)}: {v}' for k, v in rejected.items())
    raise InputError(f'config.recordings={folder!r} holds no usable stage II recording '
                     f'({len(files)} .h5 file(s){": " + why if why else ""}); pass a folder '
                     'of MEA spike files of retinas aged <= '
                     f'{config.recorded.max_age_days} days (config.recorded.max_age_days)')
  return usable, rejected


def _arm_config(name: str, arm: Arm, config: ml_collections.ConfigDict, paths: dict,
                seed: int) -> tuple[Optional[ml_collections.ConfigDict], Optional[str]]:
  """(the arm's pre-training config, None) or (None, why it is pending)."""
  cfg = copy.deepcopy(config.pretrain)
  missing = [k for k in arm.overrides if not _has(cfg, k)]
  if missing:
    return None, 'pending ' + ', '.join(missing)
  for key, value in arm.overrides.items():
    if isinstance(value, str):
      for k, v in paths.items():
        value = value.replace(k, v)
    _set(cfg, key, value)
  cfg.seed = seed
  return cfg, None


def _validate_arm(name: str, arm: Arm, cfg, n_devices: int) -> Optional[str]:
  """None if the trainer accepts the arm's config; 'pending ...' if it refuses one of the
  arm's own values (a value this tree does not know yet); InputError otherwise."""
  from rwjax.ssl import trainer  # pylint: disable=g-import-not-at-top
  try:
    trainer.validate(cfg, n_devices)
  except InputError as e:
    own = [k for k, v in arm.overrides.items() if isinstance(v, str) and repr(v) in str(e)]
    if own:
      return f'pending {own[0]}={arm.overrides[own[0]]!r} ({e})'
    raise InputError(f'arm {name!r}: {e}') from None
  return None


def _record(run_cfg, steps, protocols: dict, config: ml_collections.ConfigDict,
            arm: Arm, n_devices: int) -> dict:
  rec = {'pretrain': _json(run_cfg), 'steps': list(steps),
         'protocols': {k: _json(v) for k, v in protocols.items()}, 'n_devices': n_devices}
  source = run_cfg.data.source if run_cfg.train.steps else 'none'
  if source == 'file' and '{movie}' in str(arm.overrides.get('data.movie', '')):
    rec['movie'] = _json(config.movie)
  if source == 'file' and '{recorded}' in str(arm.overrides.get('data.movie', '')):
    rec['recorded'] = {**_json(config.recorded), 'folder': paths_lib.abspath(config.recordings)}
  return rec


def make_plan(config: ml_collections.ConfigDict, workdir: str,
              n_devices: Optional[int] = None) -> Plan:
  """Everything the experiment will do, checked; InputError on bad input. Writes nothing."""
  import jax  # pylint: disable=g-import-not-at-top
  if not workdir:
    raise InputError('--workdir is required: the directory for the runs and the report')
  n_devices = n_devices or jax.device_count()
  unknown = [a for a in _names(config.arms) if a not in ARMS]
  if unknown or not _names(config.arms):
    raise InputError(f'config.arms: unknown arm(s) {unknown}; the arms are {list(ARMS)}')
  matrix = _names(config.arms)
  if config.recordings and 'recorded' not in matrix:
    matrix.append('recorded')
  only = _names(config.only)
  bad = [a for a in only if a not in matrix]
  if bad:
    raise InputError(f'config.only: {bad} not in the matrix; choose from {matrix} '
                     '(config.arms sets the matrix)')
  if isinstance(config.seeds, bool) or not isinstance(config.seeds, int) or config.seeds < 1:
    raise InputError(f'config.seeds={config.seeds!r} must be an integer >= 1')
  steps = eval_steps(config)
  if len([s for s in steps if s > 0]) > 1 and config.pretrain.optim.schedule != 'constant':
    raise InputError(
        f"config.pretrain.optim.schedule={config.pretrain.optim.schedule!r}: evaluation at "
        'several steps trains in stages (the trainer resumes), which gives the straight '
        "run's network only for a constant learning rate (the paper's); use "
        "--config.eval_steps='(1.0,)' for a schedule")
  workdir = paths_lib.abspath(workdir)
  data_dir = os.path.join(workdir, 'data')
  paths = {'{movie}': os.path.join(data_dir, 'lansdell_movie'),
           '{recorded}': os.path.join(data_dir, 'recorded')}

  # The base pre-training config must be valid on its own (a user's bad override).
  from rwjax import waves  # pylint: disable=g-import-not-at-top
  from rwjax.ssl import trainer  # pylint: disable=g-import-not-at-top
  base = copy.deepcopy(config.pretrain)
  try:
    trainer.validate(base, n_devices)
    waves.get_model(config.movie.model)
  except InputError as e:
    raise InputError(f'config.pretrain: {e}') from None

  protocols, protocol_status, not_applied = {}, {}, {}
  for name in config.protocols:
    e, status, skipped = _protocol(name, config.protocols[name], config)
    protocol_status[name] = status
    not_applied[name] = skipped
    if e is not None:
      protocols[name] = e
  if not protocols:
    raise InputError('no evaluation protocol can run; config.protocols names presets of '
                     'configs/evaluate.py')
  only_protocols = _names(config.only_protocols)
  bad = [p for p in only_protocols if p not in protocols]
  if bad:
    raise InputError(f'config.only_protocols: {bad} cannot run; choose from {list(protocols)} '
                     '(config.protocols; a pending one needs its preset)')
  run_protocols = tuple(p for p in protocols if not only_protocols or p in only_protocols)

  recordings, rejected = [], {}
  if config.recordings and (not only or 'recorded' in only):
    recordings, rejected = _check_recordings(config)

  arms, runs = {}, []
  for name in matrix:
    arm = ARMS[name]
    if name == 'recorded' and not config.recordings:
      arms[name] = 'skipped (pass --config.recordings=FOLDER of MEA spike files)'
      continue
    status = 'run'
    for s in range(config.seeds):
      seed = seed_of(config, name, s)
      cfg, pending = _arm_config(name, arm, config, paths, seed)
      if cfg is None:
        status = pending
        break
      pending = _validate_arm(name, arm, cfg, n_devices)
      if pending:
        status = pending
        break
      run_steps = steps if arm.trained else (0,)
      run_steps = tuple(x for x in run_steps if x > 0) if arm.trained else run_steps
      if not only or name in only:
        runs.append(Run(name, seed, os.path.join(workdir, 'runs', name, f'seed{seed}'), cfg,
                        run_steps, _record(cfg, run_steps, protocols, config, arm, n_devices)))
    arms[name] = status
  # Random init first (step 0 of every arm), then seed-major, the null arm last.
  order = {n: i for i, n in enumerate(matrix)}
  rank = lambda r: (ARMS[r.arm].role != 'baseline', ARMS[r.arm].role == 'null', r.seed,
                    order[r.arm])
  runs.sort(key=rank)
  claims_arm = None  # 'auto': chosen by the report among the arms with results
  if config.claims.waves_arm != 'auto':
    claims_arm = config.claims.waves_arm
    if claims_arm not in ARMS or ARMS[claims_arm].role != 'waves':
      raise InputError(f'config.claims.waves_arm={claims_arm!r} must be "auto" or a waves '
                       f"arm: {[a for a, x in ARMS.items() if x.role == 'waves']}")
  return Plan(workdir, config, arms, protocols, protocol_status, not_applied, runs, steps,
              paths, recordings, rejected, n_devices, claims_arm, run_protocols)


# ---------------------------------------------------------------------------------------
# Existing runs: finished, resumable, or of another config.

def _differences(old: dict, new: dict) -> list[str]:
  """'key: old -> new' for the leaves both records have and that differ."""
  a, b = _leaves(old), _leaves(new)
  return [f'{k}: {a[k]!r} -> {b[k]!r}' for k in sorted(set(a) & set(b)) if a[k] != b[k]]


def finished(run: Run, protocols) -> bool:
  return all(paths_lib.exists(os.path.join(run.eval_dir(s, p), 'report.json'))
             for s in run.steps for p in protocols)


def check_existing(plan: Plan) -> None:
  """InputError naming every run directory that holds another config, and the keys."""
  problems = []
  for run in plan.runs:
    path = os.path.join(run.dir, 'run.json')
    if not paths_lib.exists(path):
      continue
    old = paths_lib.read_json(path)
    new = dict(run.record)
    if finished(run, plan.run_protocols):  # a finished run does not depend on the device count
      old.pop('n_devices', None)
      new.pop('n_devices', None)
    diff = _differences(old, new)
    if diff:
      problems.append(f"{os.path.relpath(run.dir, plan.workdir)} ({'; '.join(diff[:8])}"
                      f"{'; ...' if len(diff) > 8 else ''})")
  path = os.path.join(plan.workdir, 'data', 'lansdell_movie', 'settings.json')
  if paths_lib.exists(path) and any('movie' in r.record for r in plan.runs):
    diff = _differences(paths_lib.read_json(path), _movie_settings(plan.config))
    if diff:
      problems.append(f"data/lansdell_movie ({'; '.join(diff)})")
  if problems:
    raise InputError(f'workdir {plan.workdir!r} holds runs of another config: '
                     + ' | '.join(problems) + '. Nothing was changed; use a new --workdir, '
                     'or the config those runs were made with')


# ---------------------------------------------------------------------------------------
# Data: the saved movie and the recorded movie, through the waves CLI's own code path.

def _movie_settings(config: ml_collections.ConfigDict) -> dict:
  from rwjax import waves  # pylint: disable=g-import-not-at-top
  m = config.movie
  defaults = waves.get_model(m.model).Params()._asdict()
  given = dict(config.pretrain.data.sim_params.get(m.model, {})) if m.pretrain_params else {}
  params = {k: v for k, v in given.items() if k in defaults and v != defaults[k]}
  return {**_json(m), 'params': params}


def _quiet(log_path: str):
  """Redirects prints (trainer, evaluator, waves CLI) into a log file."""
  stack = contextlib.ExitStack()
  f = stack.enter_context(paths_lib.open_append(log_path))  # a bucket: uploaded on exit
  stack.enter_context(contextlib.redirect_stdout(f))
  stack.enter_context(contextlib.redirect_stderr(f))
  return stack


def write_movie(plan: Plan) -> None:
  """DIR/data/lansdell_movie/{movie,labels}.npy with rwjax.waves.simulate.write_movie."""
  from rwjax.waves import simulate  # pylint: disable=g-import-not-at-top
  out = plan.paths['{movie}']
  if paths_lib.exists(os.path.join(out, 'settings.json')):
    return
  s = _movie_settings(plan.config)
  argv = ['simulate', '--model', s['model'], '--size', str(s['size']),
          '--seconds', str(s['seconds']), '--batch', str(s['batch']),
          '--warmup', str(s['warmup']), '--seed', str(s['seed']), '--gif-seconds', '0',
          '--out', out]
  for k, v in sorted(s['params'].items()):
    argv += ['--param', f'{k}={v}']
  paths_lib.makedirs(out)
  with _quiet(os.path.join(out, 'log.txt')):
    simulate.write_movie(out, **{k: s[k] for k in ('model', 'size', 'seconds', 'batch',
                                                   'warmup', 'seed', 'params')})
  paths_lib.write_atomic(os.path.join(out, 'settings.json'), json.dumps(
      {**s, 'command': 'python -m rwjax.waves ' + ' '.join(argv)}, indent=1))


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
    m = movie_io.load_movie(d)[..., :per, :, :].reshape(-1, *movie_io.load_movie(d).shape[-2:])
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
      {'recordings': plan.recordings, 'frames_each': per, **_json(plan.config.recorded)},
      indent=1))


# ---------------------------------------------------------------------------------------
# Running.

def _duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f'{h}h{m:02d}m{s:02d}s' if h else f'{m}m{s:02d}s'


class Interrupted(Exception):
  """The trainer stopped early (SIGTERM): re-run the command to resume."""


def _write_json(path: str, obj) -> None:
  paths_lib.makedirs(os.path.dirname(path))
  paths_lib.write_atomic(path, json.dumps(obj, indent=1, allow_nan=False))


def execute(plan: Plan, run: Run) -> dict:
  """Trains the run to each evaluation step in turn and evaluates it there; what exists
  is skipped. Returns {'train_s', 'eval_s'} of this call."""
  from rwjax import checkpoint, evaluate  # pylint: disable=g-import-not-at-top
  from rwjax.eval import monitor  # pylint: disable=g-import-not-at-top
  from rwjax.ssl import trainer  # pylint: disable=g-import-not-at-top
  paths_lib.makedirs(run.dir)
  _write_json(os.path.join(run.dir, 'run.json'), run.record)
  timing = {'train_s': 0.0, 'eval_s': 0.0}
  for step in run.steps:
    todo = [p for p in plan.run_protocols
            if not paths_lib.exists(os.path.join(run.eval_dir(step, p), 'report.json'))]
    if not todo:
      continue
    latest = checkpoint.latest_step(run.train_dir) if paths_lib.isdir(run.train_dir) else None
    if latest is not None and latest > step:
      continue  # evaluated before this protocol existed; its checkpoint is gone (report)
    cfg = copy.deepcopy(run.pretrain)
    cfg.train.steps = step
    t0 = time.perf_counter()
    with _quiet(os.path.join(run.dir, 'log.txt')):
      trainer.train(cfg, run.train_dir, hooks=monitor.hooks(cfg))
    timing['train_s'] += time.perf_counter() - t0
    if checkpoint.latest_step(run.train_dir) != step:
      raise Interrupted(f'{run.arm} seed {run.seed} stopped before step {step}')
    for name in todo:
      e = copy.deepcopy(plan.protocols[name])
      e.workdir, e.out = run.train_dir, run.eval_dir(step, name)
      t0 = time.perf_counter()
      with _quiet(os.path.join(run.dir, 'log.txt')):
        report = evaluate.evaluate(e)
      timing['eval_s'] += time.perf_counter() - t0
      if report.get('step', step) != step:  # the evaluator reads the latest checkpoint
        raise RuntimeError(f"{run.train_dir}: evaluated step {report['step']}, not {step}")
      _write_json(os.path.join(e.out, 'report.json'), report)
  path = os.path.join(run.dir, 'timing.json')
  old = paths_lib.read_json(path) if paths_lib.exists(path) else {'train_s': 0.0, 'eval_s': 0.0}
  _write_json(path, {k: old.get(k, 0.0) + v for k, v in timing.items()})
  return timing


def run_matrix(plan: Plan) -> None:
  """Every run of the plan, with one progress line per run on stderr."""
  start = time.perf_counter()
  n = len(plan.runs)
  spent = {True: [], False: []}  # trained? -> seconds of the runs executed now

  def eta(i):
    rest = plan.runs[i:]
    mean = lambda t: (np.mean(spent[t]) if spent[t] else
                      np.mean(spent[not t]) if spent[not t] else None)
    est = [mean(ARMS[r.arm].trained) for r in rest if not finished(r, plan.run_protocols)]
    return None if any(e is None for e in est) else float(sum(est))

  for i, run in enumerate(plan.runs):
    label = f'run {i + 1}/{n} {run.arm} seed {run.seed}'
    if finished(run, plan.run_protocols):
      what = 'finished before, skipped'
    else:
      t0 = time.perf_counter()
      execute(plan, run)
      spent[ARMS[run.arm].trained].append(time.perf_counter() - t0)
      what = f'done in {_duration(time.perf_counter() - t0)}'
    left = eta(i + 1)
    print(f'experiment: {label}: {what} | elapsed {_duration(time.perf_counter() - start)} '
          f"| ETA {_duration(left) if left is not None else '?'}", file=sys.stderr,
          flush=True)


# ---------------------------------------------------------------------------------------
# Results.

_SKIP = ('configs', 'data', 'timing', 'jax')


def measures(report: dict) -> dict:
  """{'task/.../layer': the network's value} of an evaluator report: every node that holds
  a 'pretrained' summary (the evaluated network; its mean over the evaluator's seeds)."""
  out = {}

  def walk(node, path):
    if isinstance(node, dict):
      if isinstance(node.get('pretrained'), dict) and 'mean' in node['pretrained']:
        out['/'.join(path)] = node['pretrained']['mean']
        return
      for k, v in node.items():
        if not path and k in _SKIP:
          continue
        walk(v, path + [str(k)])

  walk(report, [])
  return out


def collect(plan: Plan) -> dict:
  """results[arm][seed][protocol][step] = measures, for every run directory of the matrix
  that has reports (whatever config.only was). Step 0 of a trained arm is random_init's."""
  results = {}
  for arm, status in plan.arms.items():
    if status != 'run':
      continue
    for s in range(plan.config.seeds):
      seed = seed_of(plan.config, arm, s)
      base = os.path.join(plan.workdir, 'runs', arm, f'seed{seed}', 'eval')
      for path in paths_lib.glob(os.path.join(base, 'step*', '*', 'report.json')):
        step = int(os.path.basename(os.path.dirname(os.path.dirname(path)))[4:])
        protocol = os.path.basename(os.path.dirname(path))
        results.setdefault(arm, {}).setdefault(seed, {}).setdefault(protocol, {})[step] = \
            measures(paths_lib.read_json(path))
  ri = results.get('random_init', {})
  for arm, by_seed in results.items():
    if not ARMS[arm].trained:
      continue
    for seed, by_protocol in by_seed.items():
      for protocol in by_protocol:
        if 0 in plan.steps and 0 in ri.get(seed, {}).get(protocol, {}):
          by_protocol[protocol][0] = ri[seed][protocol][0]
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
  environment names, JAX_COMPILATION_CACHE_DIR, is jax's own and kept).

  Runs of one shape (every seed; an arm and its controls) compile the same programs: the
  persistent cache compiles each once for the matrix and again never on a re-run (kept
  locally only: a bucket would add a round trip per program).
  """
  if (not config.compilation_cache or not workdir or paths_lib.is_remote(workdir)
      or environ.get('JAX_COMPILATION_CACHE_DIR')):
    return None
  return os.path.join(workdir, 'jax_cache')


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The whole experiment: plan, check, data, runs, report. Returns the results dict."""
  from rwjax import experiment_report  # pylint: disable=g-import-not-at-top
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
  pending = {a: s for a, s in plan.arms.items() if s != 'run'}
  print(f'experiment: {len(plan.runs)} runs ({len(plan.arms) - len(pending)} arms x '
        f'{config.seeds} seeds{", only " + config.only if config.only else ""}); '
        f'protocols {list(plan.run_protocols)}; steps {list(plan.steps)}'
        + ''.join(f'\n  {a}: {s}' for a, s in pending.items())
        + ''.join(f'\n  protocol {p}: {s}' for p, s in plan.protocol_status.items()
                  if s != 'run'), file=sys.stderr, flush=True)
  interrupted = None
  if not config.report_only:  # report_only: the report from the runs that exist, nothing run
    if any('movie' in r.record and not finished(r, plan.run_protocols) for r in plan.runs):
      write_movie(plan)
    if any('recorded' in r.record and not finished(r, plan.run_protocols) for r in plan.runs):
      write_recorded(plan)
    try:
      run_matrix(plan)
    except Interrupted as e:
      interrupted = str(e)
  results = collect(plan)
  summary = experiment_report.write(plan, results, machine(), time.perf_counter() - t0)
  print(f"experiment: wrote {os.path.join(plan.workdir, 'report.md')} and report.html "
        f"{'from the runs there (config.report_only) ' if config.report_only else ''}"
        f'({_duration(time.perf_counter() - t0)})', file=sys.stderr, flush=True)
  if interrupted:
    print(f'experiment: interrupted ({interrupted}); re-run the command to resume',
          file=sys.stderr, flush=True)
  return summary


def define_flags() -> None:
  config_flags.DEFINE_config_file(
      'config', None, 'Experiment config (configs/experiment.py:SCALE).', lock_config=True)
  flags.DEFINE_string('workdir', None, 'Runs, report.md and report.html go here.')


def _parse_flags(argv: list[str]) -> list[str]:
  """parse_flags, with a bad scale as one error line (ml_collections would wrap the config
  file's InputError in a traceback)."""
  import runpy  # pylint: disable=g-import-not-at-top
  for a in argv[1:]:
    if a.startswith('--config='):
      path, _, scale = a[len('--config='):].partition(':')
      if os.path.isfile(path):
        try:
          runpy.run_path(path)['get_config'](*([scale] if scale else []))
        except InputError as e:
          print(f'error: {e}', file=sys.stderr)
          sys.exit(2)
  return parse_flags(argv)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments {argv[1:]}')
  if flags.FLAGS.config is None:
    raise app.UsageError('pass --config=configs/experiment.py:SCALE --workdir=DIR')
  cli_main(lambda: run(flags.FLAGS.config, flags.FLAGS.workdir))


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=_parse_flags)
