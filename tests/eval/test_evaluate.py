"""The evaluate binary end to end on tiny pre-training workdirs and the shipped digits."""

import concurrent.futures
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import scipy.stats

from rwjax import defaults
from rwjax import evaluate
from rwjax import models
from rwjax.data import load_images, to_network_input
from rwjax.errors import InputError
from rwjax.eval import geometry
from rwjax.eval import probes
from rwjax.eval import report as report_lib

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PNG = b'\x89PNG\r\n\x1a\n'
# The digits preset at test sizes (config.evals.<key>).
SMALL = {'probes.layers': 'layer1,pooled', 'probes.classification.max_train': 200,
         'probes.classification.max_test': 100, 'probes.classification.shifts': (2,),
         'probes.exemplar.transforms': ('translate',), 'probes.exemplar.images': 4,
         'probes.exemplar.n_train': 3, 'probes.exemplar.n_test': 2, 'probes.logistic.steps': 50,
         'capacity.layers': 'layer1,pooled', 'capacity.kinds': ('translate', 'class_test'),
         'capacity.exemplar.p': 3, 'capacity.exemplar.m': 4, 'capacity.n_t': 20,
         'capacity.project_dims': 64}


def _binary(*flags):
  return subprocess.run(
      [sys.executable, '-m', 'rwjax.evaluate', f'--config={_REPO}/configs/evaluate.py:digits',
       *flags], capture_output=True, text=True, cwd=_REPO, timeout=600,
      env={**os.environ, 'JAX_PLATFORMS': 'cpu'})


def test_binary_writes_every_row_the_table_and_the_plots_and_bad_input_is_one_error_line(
    workdirs, tmp_path):
  out = tmp_path / 'eval'
  bad = [('--config.workdir={tmp}/nothing', 'config.json'),
         ('--config.evals.probes.logistic.steps=0', 'config.evals.probes.logistic.steps=0 must be'),
         ('--config.evals.probes.logistc=3', 'config.evals.probes.logistc is not a key')]
  flags = [[f'--config.out={tmp_path}/eval{i}', flag.format(tmp=tmp_path)]
           + ([] if 'workdir' in flag else [f'--config.workdir={workdirs[0]}'])
           for i, (flag, _) in enumerate(bad)]
  flags.append([f'--config.workdir={workdirs[0]}', f'--config.out={out}',
                *[f'--config.evals.{k}={v}' for k, v in SMALL.items()]])
  with concurrent.futures.ThreadPoolExecutor() as pool:  # the four binaries side by side
    *procs, proc = pool.map(lambda f: _binary(*f), flags)
  for i, ((_, message), bad_proc) in enumerate(zip(bad, procs)):
    assert bad_proc.returncode == 2, message
    lines = bad_proc.stderr.strip().splitlines()
    assert lines[-1].startswith('error: ') and message in lines[-1]
    assert sum(l.startswith('error:') for l in lines) == 1 and 'Traceback' not in bad_proc.stderr
    assert not os.path.exists(tmp_path / f'eval{i}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads((out / 'report.json').read_text())
  assert report['step'] == 7 and report['seeds'] == 2
  assert report['configs']['pretrain']['model']['width'] == 4
  # One workdir: one pre-trained network, paired over seeds.
  assert report['statistics']['unit'] == 'seed' and report['statistics']['test'] == 'paired t'
  rows = report['rows']
  assert {tuple(r[k] for k in report_lib.KEYS[:4]) for r in rows} == {
      (e, t, l, m) for e, tasks, measures in (
          ('probes', ('digits', 'digits_shift2', 'exemplar_translate'), ('logistic',)),
          ('capacity', ('translate', 'class_test'), geometry.MFTMA))
      for t in tasks for l in ('layer1', 'pooled') for m in measures}
  for r in rows:
    assert r['batchnorm'] == 'running' and r['test'] == 'paired t'
    for arm in ('pretrained', 'random_init'):
      assert len(r[arm]['values']) == 2
    assert r['difference'] == pytest.approx(r['pretrained']['mean'] - r['random_init']['mean'])
    values = r['pretrained']['values'] + r['random_init']['values']
    if r['measure'] == 'logistic':
      assert all(0 <= v <= 1 for v in values)
    if r['measure'] == 'alpha':  # at kappa = 0 no manifold beats the capacity of points, 2
      assert all(0 < v <= 2.0 + 1e-3 for v in values)
  # Digits are easy even through a tiny random ResNet: well above chance (0.1).
  find = lambda **k: report_lib.find(report, **k)
  assert find(eval='probes', task='digits', layer='layer1')['random_init']['mean'] > 0.3
  assert report['manifold_solver_residual'] < 1e-3
  table = proc.stdout
  assert '2 seeds per arm; test: paired t' in table and 'note: one pre-trained network' in table
  assert 'exemplar_translate' in table and 'center_corr' in table
  for name in ('accuracy.png', 'geometry.png'):
    assert (out / name).read_bytes()[:8] == PNG


def _probe_config(workdirs, out):
  config = defaults.config_file('evaluate', 'digits')
  del config.evals['capacity']
  p = config.evals.probes
  p.layers, p.logistic.steps, p.classification.shifts, p.exemplar.transforms = (
      'pooled', 50, (), ())
  p.classification.max_train, p.classification.max_test = 200, 100
  config.seeds, config.workdirs, config.out = 3, ','.join(workdirs), out
  return config


def test_workdirs_of_one_architecture_give_one_value_per_network_and_welchs_test(
    workdirs, wide_workdir, tmp_path, capsys):
  config = _probe_config([workdirs[0], wide_workdir, workdirs[1]], str(tmp_path / 'wide'))
  with pytest.raises(InputError, match=r'different architectures \(width: 4 vs 8\)'):
    evaluate.run(config)
  assert not os.path.exists(tmp_path / 'wide')  # refused before anything is written
  config = _probe_config(workdirs, str(tmp_path / 'eval'))
  report = evaluate.run(config)
  row = report_lib.find(report, eval='probes', task='digits', layer='pooled',
                        measure='logistic', batchnorm='running')
  assert report['workdirs'] == [os.path.abspath(w) for w in workdirs]
  assert report['steps'] == [7, 7, 7] and report['statistics']['unit'] == 'network'
  assert report['statistics']['networks']['pretrained'] == report['workdirs']
  assert row['test'] == 'welch t'
  # Independently: each run's network rebuilt from its seed, applied in eval mode to all
  # images at once, its probe fit with seed s's draws (split(PRNGKey(s), 3)[1]).
  data = lambda split, n: load_images('digits', split, max_examples=n)
  (x_train, y_train, _), (x_test, y_test, _) = data('train', 200), data('test', 100)
  model = models.create_model(**report['configs']['pretrain']['model'])
  h = jax.jit(lambda v, x: model.apply(v, to_network_input(x, 8, 3), train=False)[1])
  own = []
  for s, seed in enumerate((42, 43, 44)):
    variables = models.init_variables(model, jax.random.PRNGKey(seed), 8)
    probe = probes.fit_probe(jax.random.split(jax.random.PRNGKey(s), 3)[1],
                             np.asarray(h(variables, x_train)), y_train, num_classes=10,
                             steps=50)
    own.append(probes.probe_accuracy(probe, np.asarray(h(variables, x_test)), y_test))
  np.testing.assert_allclose(row['pretrained']['values'], own, atol=1e-6)
  assert row['pretrained']['std'] == pytest.approx(np.std(own, ddof=1))
  assert row['pretrained']['std'] > 0.005  # Three different networks: a real spread.
  rand = row['random_init']['values']
  assert row['p'] == pytest.approx(scipy.stats.ttest_ind(own, rand, equal_var=False).pvalue)
  pooled = np.sqrt((np.var(own, ddof=1) + np.var(rand, ddof=1)) / 2)  # equal n
  assert row['effect_size'] == pytest.approx((np.mean(own) - np.mean(rand)) / pooled
                                             * (1 - 3 / (4 * 6 - 9)))
  table = capsys.readouterr().out
  assert '3 networks per arm; test: welch t, effect size: hedges g' in table
  assert json.loads((tmp_path / 'eval' / 'report.json').read_text())['rows'][0]['test'] == (
      'welch t')
  # Without the random-init arm (rwjax.experiment's use): the same pre-trained numbers, here
  # beside those under the two other BatchNorm modes.
  config = _probe_config(workdirs, str(tmp_path / 'alone'))
  config.random_init_arm, config.evals.probes.batchnorm = False, ('running', 'batch', 'adapt')
  config.adapt.images, config.batchnorm_batch = 64, 32
  report = evaluate.evaluate(config)
  alone = report_lib.find(report, task='digits', measure='logistic', batchnorm='running')
  assert alone['pretrained']['values'] == pytest.approx(own, abs=1e-6)
  assert alone['random_init'] == {'n': 0, 'mean': None, 'std': None, 'values': []}
  assert alone['difference'] is None and alone['p'] is None
  for mode in ('batch', 'adapt'):
    values = report_lib.find(report, task='digits', batchnorm=mode)['pretrained']['values']
    assert all(0.1 < v <= 1 for v in values) and values != alone['pretrained']['values']
  assert 'each group of 32 images' in report['batchnorm']['batch']
  assert 'on 64 images of digits train' in report['batchnorm']['adapt']
