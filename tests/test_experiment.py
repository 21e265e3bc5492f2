"""The experiment binary: the tiny matrix end to end, resume, --only, 1 vs 8 devices, bad input.

The end-to-end run is a subprocess of the command line (`python -m rwjax.experiment`) on 8
virtual devices, once for the module (the suite's one tiny experiment); the tiny matrix is cut
with --config.only to the arms that cover every part of the machinery (random init, a trained
wave arm with the paper's protocol, a control of it, the null arm); the noise movie is written
on its own, smaller.
"""

import hashlib
import json
import math
import os
import runpy
import shutil
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats

from rwjax import experiment
from rwjax import schema as S
from rwjax.errors import InputError
from rwjax.ssl import trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, 'configs', 'experiment.py')
ONLY = 'random_init,lansdell_movie,temporal_global,null'
VERDICTS = {'held', 'not held', 'inconclusive'}


def tiny(**overrides):
  c = runpy.run_path(CONFIG)['get_config']('tiny')
  for k, v in overrides.items():
    S.put(c, k, v)
  return c


def run_cli(workdir, *flags, devices=8, timeout=1800):
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS='cpu',
             XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
  p = subprocess.run([sys.executable, '-m', 'rwjax.experiment', f'--config={CONFIG}:tiny',
                      f'--workdir={workdir}', *flags], cwd=ROOT, env=env, capture_output=True,
                     text=True, timeout=timeout)
  assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
  return p.stderr


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
  """The tiny matrix (a subset of arms) on 8 devices: (workdir, stderr)."""
  workdir = str(tmp_path_factory.mktemp('experiment') / 'tiny')
  return workdir, run_cli(workdir, f'--config.only={ONLY}')


def _report(workdir, arm, seed, step):
  path = os.path.join(workdir, 'runs', arm, f'seed{seed}', 'eval', f'step{step}', 'report.json')
  with open(path) as f:
    return json.load(f)


def _digest(workdir, under='runs'):
  """{path: sha256} of the report.json files under workdir/runs (of every file elsewhere)."""
  out = {}
  for base, _, files in os.walk(os.path.join(workdir, under)):
    for name in files:
      if name == 'report.json' or under != 'runs':
        path = os.path.join(base, name)
        out[path] = hashlib.sha256(open(path, 'rb').read()).hexdigest()
  return out


def test_report_files_claims_and_progress(tiny_run):
  workdir, stderr = tiny_run
  md = open(os.path.join(workdir, 'report.md')).read()
  page = open(os.path.join(workdir, 'report.html')).read()
  summary = json.load(open(os.path.join(workdir, 'results.json')))
  # Self-contained HTML: every figure embedded, none linked.
  assert page.count('src="data:image/png;base64,') >= 3 and 'src="figures/' not in page
  # The five claims: 1, 2 with both probes, 3 per BatchNorm mode of the manifold analysis,
  # 4 on claim 1's and claim 3's measures, 5; each with a verdict.
  modes = experiment.resolved_evaluate(tiny()).evals.paper_manifolds.batchnorm
  assert [r['claim'] for r in summary['claims']] == (
      ['1', '2', '2'] + ['3'] * len(modes) + ['4'] * (1 + len(modes)) + ['5'])
  assert {r['verdict'] for r in summary['claims']} <= VERDICTS
  table = [l for l in md.splitlines() if l.startswith(tuple(f'| {n} |' for n in '12345'))]
  assert len(table) == len(summary['claims'])
  assert all(any(f'| {v} |' in l for v in VERDICTS) for l in table)
  assert summary['claims_arm'] == 'lansdell_movie'
  # Each evaluation's BatchNorm modes: the paper's probes in train mode, its manifolds with
  # the stored statistics; rwjax's stored throughout.
  assert '| paper_probes | probe | batch | pooled,stem_relu,layer4_block0_relu1 |' in md
  assert '| probes | probe | running |' in md
  # One progress line per run: run i of N, elapsed, ETA.
  lines = [l for l in stderr.splitlines() if l.startswith('experiment: run ')]
  assert len(lines) == 8 and lines[0].startswith('experiment: run 1/8 random_init seed 0')
  assert all('| elapsed ' in l and '| ETA ' in l for l in lines)
  assert sorted(os.listdir(os.path.join(workdir, 'runs'))) == sorted(ONLY.split(','))
  # The movie arms trained on real waves: every logged step had anchors with positives.
  for arm in ('lansdell_movie', 'temporal_global'):
    rows = [json.loads(l) for l in open(os.path.join(workdir, 'runs', arm, 'seed0', 'train',
                                                     'metrics.jsonl'))]
    rows = [r for r in rows if 'n_anchors' in r]
    assert rows and all(r['n_anchors'] > 0 for r in rows), rows


def test_claim_numbers_follow_from_the_evaluator_reports(tiny_run):
  """Claim 1's numbers, recomputed from the evaluator's report.json files with Welch's test
  and Hedges' g typed from their definitions."""
  workdir, _ = tiny_run
  summary = json.load(open(os.path.join(workdir, 'results.json')))
  row = dict(zip(('eval', 'task', 'layer', 'measure', 'batchnorm'),
                 summary['claims'][0]['measure'].split('/')))
  assert row == {'eval': 'paper_probes', 'task': 'invariance_translate', 'layer': 'pooled',
                 'measure': 'adam_best', 'batchnorm': 'batch'}
  value = lambda arm, seed, step: next(
      r['pretrained']['mean'] for r in _report(workdir, arm, seed, step)['rows']
      if all(r[k] == v for k, v in row.items()))
  a = np.array([value('lansdell_movie', s, 6) for s in (0, 1)])
  b = np.array([value('random_init', s, 0) for s in (0, 1)])
  gain = a.mean() - b.mean()
  assert summary['claims'][0]['by_step']['6'] == pytest.approx(gain, abs=1e-9)
  va, vb = a.var(ddof=1), b.var(ddof=1)
  if va + vb > 0:
    t = gain / math.sqrt(va / 2 + vb / 2)
    df = (va / 2 + vb / 2) ** 2 / ((va / 2) ** 2 + (vb / 2) ** 2)
    p = 2 * scipy.stats.t.sf(abs(t), df)
    g = gain / math.sqrt((va + vb) / 2) * (1 - 3 / (4 * 4 - 9))
    assert f'p={p:.3g}' in summary['claims'][0]['numbers']
    assert f'g={g:.2f}' in summary['claims'][0]['numbers']
  # Step 0 of a trained arm is the random-init network of its seed.
  steps = summary['results']['lansdell_movie']['0']
  assert steps['0'] == summary['results']['random_init']['0']['0']
  assert sorted(steps, key=int) == ['0', '3', '6']


def test_rerun_skips_finished_runs_and_resumes_an_interrupted_one(tiny_run):
  workdir, _ = tiny_run
  before = _digest(workdir)
  numbers = experiment.measures(_report(workdir, 'lansdell_movie', 1, 6))
  # Interrupt lansdell_movie seed 1 after its step-3 evaluation: no step-6 checkpoint or
  # report.
  run_dir = os.path.join(workdir, 'runs', 'lansdell_movie', 'seed1')
  shutil.rmtree(os.path.join(run_dir, 'train', 'checkpoints', '6'))
  shutil.rmtree(os.path.join(run_dir, 'eval', 'step6'))
  stderr = run_cli(workdir, f'--config.only={ONLY}')
  lines = [l for l in stderr.splitlines() if l.startswith('experiment: run ')]
  redone = [l for l in lines if 'lansdell_movie seed 1' in l]
  assert len(redone) == 1 and 'done in' in redone[0]
  assert sum('finished before, skipped' in l for l in lines) == 7
  assert 'resuming from step 3' in open(os.path.join(run_dir, 'log.txt')).read()
  # Training resumed from the step-3 checkpoint gives the same network: the same numbers
  # (report.json also holds timings); every other report is untouched.
  assert experiment.measures(_report(workdir, 'lansdell_movie', 1, 6)) == numbers
  # The step-6 report was redone (its timings differ).
  redone = os.path.join(run_dir, 'eval', 'step6', 'report.json')
  after = _digest(workdir)
  assert after.pop(redone)
  assert {k: v for k, v in before.items() if k != redone} == after


def test_workdir_of_another_config_is_refused_and_kept(tiny_run):
  workdir, _ = tiny_run
  before = _digest(workdir)
  c = tiny(only=ONLY)
  c.pretrain.model.width = 8
  c.pretrain.optim.lr = 3e-4
  with pytest.raises(InputError, match=r'another config.*pretrain\.model\.width: 4 -> 8.*'
                     r'pretrain\.optim\.lr: 0\.001 -> 0\.0003'):
    experiment.run(c, workdir)
  assert _digest(workdir) == before


@pytest.mark.parametrize('key, value, message', [
    ('only', 'lansdell,nope', r"config.only: \['nope'\] not in the matrix"),
    ('evaluate.evals.probes.layers', 'nope', r'config.evaluate.evals.probes.layers'),
    ('claims.waves_arm', 'temporal', r'config.claims.waves_arm'),
    ('arms', 'random_init,bogus', r"unknown arm\(s\) \['bogus'\]"),
    ('eval_steps', (0.0, 1.5), 'fractions in'),
    ('report_only', True, 'holds no run of this matrix'),
    ('recordings', '{tmp}/missing', 'not a directory'),
])
def test_bad_input_is_refused_before_anything_is_written(tmp_path, key, value, message):
  value = value.format(tmp=tmp_path) if isinstance(value, str) else value
  with pytest.raises(InputError, match=message):
    experiment.run(tiny(**{key: value}), str(tmp_path / 'w'))
  assert not os.path.exists(tmp_path / 'w')


def test_unknown_scale_is_one_error_line(tmp_path):
  with pytest.raises(InputError, match="unknown scale 'huge'"):
    runpy.run_path(CONFIG)['get_config']('huge')
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS='cpu')
  p = subprocess.run([sys.executable, '-m', 'rwjax.experiment', f'--config={CONFIG}:huge',
                      f'--workdir={tmp_path}/w'], cwd=ROOT, env=env, capture_output=True,
                     text=True, timeout=120)
  assert p.returncode == 2 and "unknown scale 'huge'" in p.stderr, p.stderr[-2000:]
  assert 'Traceback' not in p.stderr and not os.path.exists(tmp_path / 'w')


def test_recorded_arm_converts_stage_two_recordings(tmp_path):
  """Without a usable file (a broken one, a P12 one) the recordings are refused before
  anything is written; a stage II file (planted wave) goes through the convert code path."""
  import h5py  # pylint: disable=g-import-not-at-top
  folder = tmp_path / 'mea'
  folder.mkdir()
  (folder / 'broken.h5').write_bytes(b'not an hdf5 file')
  (folder / 'notes.txt').write_text('no recordings here')
  rng = np.random.default_rng(0)
  rows, cols = [x.ravel() for x in np.meshgrid(np.arange(64), np.arange(64), indexing='ij')]

  def planted(name, age):  # a front sweeping the columns at 2 columns per 0.1 s
    times = [np.sort(c * 0.05 + 1.0 + rng.uniform(0, 0.1, 3)) for c in cols]
    with h5py.File(folder / name, 'w') as f:
      f['epos'] = np.stack([rows, cols]).astype(np.float64) * 42.0
      f['sCount'] = np.full(rows.size, 3, np.int32)
      f['spikes'] = np.concatenate(times)
      f['summary/duration'] = np.array([8.0])
      f['meta/age'] = np.array([age])

  planted('p12.h5', 12)
  with pytest.raises(InputError, match=r'no usable stage II recording.*broken\.h5: .*not '
                     r'a readable HDF5 file.*p12\.h5: age 12 is not stage II'):
    experiment.run(tiny(recordings=str(folder)), str(tmp_path / 'w'))
  assert not os.path.exists(tmp_path / 'w')
  planted('p5.h5', 5)
  plan = experiment.make_plan(tiny(recordings=str(folder)), str(tmp_path / 'w'))
  assert [os.path.basename(p) for p in plan.recordings] == ['p5.h5']
  assert sorted(map(os.path.basename, plan.rejected)) == ['broken.h5', 'p12.h5']
  experiment.write_recorded(plan)
  movie = np.load(os.path.join(plan.paths['{recorded}'], 'movie.npy'))
  labels = np.load(os.path.join(plan.paths['{recorded}'], 'labels.npy'))
  assert movie.shape == (1, 80, 64, 64) and labels.shape == (1, 80)
  assert (labels >= 0).any()  # the planted wave was found


def test_movies_are_written_once_after_the_movie_they_are_like(tmp_path):
  """The noise movie (the tiny matrix's, of a smaller Lansdell movie) after the movie it is
  like, with its labels; settings.json holds each movie's settings and command, a second call
  writes nothing, and a workdir whose movie was made from other settings is refused."""
  c = tiny(only='noise', seeds=1)
  c.movies.lansdell.update({'size': 32, 'seconds': 5.0, 'batch': 1, 'warmup': 0.0})
  plan = experiment.make_plan(c, str(tmp_path / 'w'))
  experiment.write_movies(plan)
  path = lambda name, file: os.path.join(plan.paths['{movies}'], name, file)
  settings = {m: json.load(open(path(m, 'settings.json'))) for m in ('lansdell', 'noise')}
  assert settings['lansdell']['command'] == (
      'python -m rwjax.waves simulate --model=lansdell --size=32 --seconds=5.0 --batch=1 '
      f"--warmup=0.0 --seed=0 --min-size=50 --out={path('lansdell', '')[:-1]}")
  assert settings['noise'] == {'like': 'lansdell', 'seed': 0, 'refine': 2, 'command': (
      f"python -m rwjax.waves noise --like={path('lansdell', '')[:-1]} --seed=0 --refine=2 "
      f"--out={path('noise', '')[:-1]}")}
  labels = np.load(path('lansdell', 'labels.npy'))
  assert labels.max() >= 0  # a wave to train on
  np.testing.assert_array_equal(np.load(path('noise', 'labels.npy')), labels)
  before = _digest(plan.workdir, 'data')
  experiment.write_movies(plan)
  assert _digest(plan.workdir, 'data') == before
  c.movies.noise.seed = 1
  with pytest.raises(InputError, match=r'data/movies/noise \(seed: 0 -> 1\)'):
    experiment.check_existing(experiment.make_plan(c, plan.workdir))


def test_step_zero_of_a_trained_arm_is_the_random_init_network(tmp_path):
  """The premise of reading step 0 from the random_init arm: the trainer's initial network
  depends on the seed, not on the arm's data settings."""
  rng = np.random.default_rng(0)
  movie = rng.uniform(size=(2, 20, 32, 32)).astype(np.float32)
  labels = np.repeat(np.arange(4), 10).reshape(2, 20)
  np.save(tmp_path / 'movie.npy', movie)
  np.save(tmp_path / 'labels.npy', labels)
  paths = {'{movies}': str(tmp_path), '{recorded}': str(tmp_path)}
  states = []
  for name in ('random_init', 'temporal'):
    cfg = experiment.arm_config(experiment.ARMS[name], tiny(), paths, 3)
    cfg.data.movie, cfg.data.labels = str(tmp_path / 'movie.npy'), str(tmp_path / 'labels.npy')
    cfg.train.steps = 0
    states.append(trainer.train(cfg, str(tmp_path / name)))
  flat = [np.concatenate([np.ravel(x) for x in __import__('jax').tree.leaves(s.params)])
          for s in states]
  np.testing.assert_array_equal(flat[0], flat[1])


def test_compilation_cache_only_in_a_local_workdir_and_never_over_the_environments():
  c = tiny()
  assert experiment.compilation_cache_dir(c, '/runs/x', {}) == '/runs/x/jax_cache'
  assert experiment.compilation_cache_dir(c, 'gs://bucket/x', {}) is None  # a round trip each
  assert experiment.compilation_cache_dir(c, '/runs/x',
                                          {'JAX_COMPILATION_CACHE_DIR': '/c'}) is None
  c.compilation_cache = False
  assert experiment.compilation_cache_dir(c, '/runs/x', {}) is None


@pytest.mark.parametrize('scale', ['cpu', 'cpu_wide', 'paper', 'colab'])
def test_larger_scales_are_complete_plans(tmp_path, scale):
  """Every arm of the larger scales passes the trainer's validation and the evaluation the
  evaluator's (image folders stubbed), seeds as configured."""
  for name in ('cifar10', 'mnist'):
    for split in ('train', 'test'):
      os.makedirs(tmp_path / name / split / '0')
  c = runpy.run_path(CONFIG)['get_config'](scale)
  c.cifar10, c.mnist = str(tmp_path / 'cifar10'), str(tmp_path / 'mnist')
  plan = experiment.make_plan(c, str(tmp_path / 'w'))
  assert list(plan.arms) == [a for a in c.arms.split(',') if a != 'recorded']
  if scale == 'cpu_wide':  # the paper's width: waves against random init only
    assert plan.arms == ('random_init', 'lansdell_movie') and c.pretrain.model.width == 64
  else:
    assert {'random_init', 'lansdell_movie', 'temporal_global', 'null'} <= set(plan.arms)
  assert len(plan.runs) == len(plan.arms) * c.seeds
  e = plan.evaluate
  # The experiment compares its own networks: no evaluator-side random-init arm.
  assert not e.random_init_arm and e.seeds == 1
  assert e.evals.probes.classification.sources == ('folder:' + c.cifar10,
                                                   'folder:' + c.mnist)
  q = e.evals.paper_probes
  assert q.invariance.source == 'folder:' + c.cifar10  # CIFAR-10 for CIFAR-100
  assert q.classification.sources == ('folder:' + c.mnist, 'folder:' + c.cifar10)
  assert e.evals.paper_manifolds.classes.class_cifar10.source == 'folder:' + c.cifar10
  if scale == 'paper':
    assert c.seeds == 3 and sorted({r.seed for r in plan.runs if r.arm == 'random_init'}) == [
        42, 43, 44]
    assert c.pretrain.model.width == 64
    assert set(plan.arms) == set(experiment.ARMS) - {'recorded'}
  c.cifar10 = str(tmp_path / 'missing')
  with pytest.raises(InputError, match="reads images from .*missing.*--config.cifar10"):
    experiment.make_plan(c, str(tmp_path / 'w'))
  assert not os.path.exists(tmp_path / 'w')
  c.report_only = True  # reads no image: the report of runs made elsewhere
  assert experiment.make_plan(c, str(tmp_path / 'w')).runs


def test_claims_on_planted_results_and_the_panels_they_plot():
  """Planted per-network numbers: a capacity gain at the encoder output that survives 'adapt'
  and that the noise control keeps; the steps figure plots each claim's measure once, claim 3
  at the encoder output and every dataset of claim 2 and task of claim 5 in its own panel."""
  import types  # pylint: disable=g-import-not-at-top
  from rwjax.experiment import report  # pylint: disable=g-import-not-at-top
  c = runpy.run_path(CONFIG)['get_config']('cpu_paper')
  plan = types.SimpleNamespace(config=c, arms=('random_init', 'paper_movie', 'noise'),
                               steps=(0, 4))
  layers = ('stem_relu', 'layer2_block1_out', 'layer4_block1_out', 'pooled', 'projector_0')
  probe = lambda task: ('paper_probes', task, 'pooled', 'adam_best', 'running')
  logistic = lambda task: ('paper_logistic', task, 'pooled', 'logistic', 'running')
  cap = lambda layer, mode: ('paper_manifolds', 'translate', layer, 'alpha', mode)
  def values(gain, seed):  # per-network spread +-0.01 (+-0.03 on translation)
    out = {probe(t): 0.3 + 0.01 * (seed - 1) * (3 if t == 'invariance_translate' else 1)
           for t in ('invariance_translate', 'invariance_rotate', 'invariance_color',
                     'cifar10', 'mnist')}
    out.update({logistic(t): 0.5 + 0.01 * (seed - 1) for t in ('cifar10', 'mnist')})
    for i, layer in enumerate(layers):
      for mode in ('running', 'adapt'):
        out[cap(layer, mode)] = 0.2 + 0.01 * (seed - 1) + gain * (i + 1) / 4
    return out
  results = {'random_init': {s: {0: values(0.0, s)} for s in range(3)},
             'paper_movie': {s: {0: values(0.0, s), 4: values(0.1, s)} for s in range(3)},
             'noise': {s: {0: values(0.0, s), 4: values(0.09, s)} for s in range(3)}}
  rows = report.evaluate_claims(report.Results(plan, results), 'paper_movie')
  verdict = {f"{r['claim']} {r['reading']}".strip(): r['verdict'] for r in rows}
  # pooled: 0.2 + 0.1 vs 0.2, std 0.01 over 3 networks; the largest backbone gain at pooled.
  assert verdict['3 BatchNorm running'] == verdict['3 BatchNorm adapt'] == 'held'
  # noise keeps 90% >= 50% of the gain.
  assert verdict['4 on claim 3, BatchNorm running'] == 'not held'
  # The translation probe reads the same in both arms: gain 0, not held; nothing to control.
  assert (verdict['1'], verdict['4 on claim 1']) == ('not held', 'inconclusive')
  assert report.figure_panels(rows) == {
      'claim 1': probe('invariance_translate'),
      "claim 2 the paper's probe, cifar10": probe('cifar10'),
      "claim 2 the paper's probe, mnist": probe('mnist'),
      'claim 2 logistic probe, cifar10': logistic('cifar10'),
      'claim 2 logistic probe, mnist': logistic('mnist'),
      'claim 3 BatchNorm running': cap('pooled', 'running'),
      'claim 3 BatchNorm adapt': cap('pooled', 'adapt'),
      'claim 5, invariance_rotate': probe('invariance_rotate'),
      'claim 5, invariance_color': probe('invariance_color')}
