"""Seed statistics: summaries, differences, scipy t-tests and Hedges' g, JSON-safe."""

import json

import jax
import numpy as np
import pytest
import scipy.stats

from rwjax.data import load_images, to_network_input
from rwjax.errors import InputError
from rwjax.eval import activations as act
from rwjax.eval import probes
from rwjax.eval.stats import compare, summarise
from rwjax.models import create_model, init_variables


def test_summary_paired_and_welch_tests_and_hedges_g():
  a, b = [0.8, 0.82, 0.85, 0.81], [0.5, 0.55, 0.52, 0.49]
  paired = compare(a, b)
  assert paired['pretrained']['mean'] == pytest.approx(np.mean(a))
  assert paired['random_init']['std'] == pytest.approx(np.std(b, ddof=1))
  assert paired['difference'] == pytest.approx(np.mean(a) - np.mean(b))
  assert paired['test'] == 'paired t'
  assert paired['p'] == pytest.approx(scipy.stats.ttest_rel(a, b).pvalue) and paired['p'] < 0.01
  welch = compare(a, b, paired=False)
  expected = scipy.stats.ttest_ind(a, b, equal_var=False)
  assert welch['t'] == pytest.approx(expected.statistic) and welch['test'] == 'welch t'
  json.dumps(welch, allow_nan=False)
  # By hand: means 0.82 and 0.515, sample variances 0.0014/3 and 0.0021/3; pooled std
  # sqrt(0.0035/6) = 0.0241523; Hedges' correction 1 - 3/(4*8 - 9) = 20/23.
  g = 0.305 / 0.0241523 * 20 / 23
  assert welch['effect_size'] == pytest.approx(g, rel=1e-5)
  assert paired['effect_size'] == pytest.approx(g, rel=1e-5)


def test_undefined_numbers_are_none_the_report_strict_json_and_bad_inputs_raise():
  one = compare([0.7], [0.6])
  assert one['pretrained']['std'] is None and one['t'] is None and one['p'] is None
  assert one['difference'] == pytest.approx(0.1) and one['effect_size'] is None
  flat = compare([0.5, 0.5], [0.5, 0.5])  # No spread: the t statistic is undefined.
  assert flat['p'] is None
  assert compare([0.5, 0.5], [0.5, 0.5], paired=False)['effect_size'] is None
  nan = compare([float('nan'), 1.0], [0.5, 0.5])
  assert nan['pretrained']['mean'] is None and nan['difference'] is None
  assert nan['pretrained']['values'] == [None, 1.0]
  json.dumps([one, flat, nan], allow_nan=False)
  with pytest.raises(InputError, match='non-empty'):
    summarise([])
  with pytest.raises(InputError, match='paired'):
    compare([0.1, 0.2], [0.3])


def test_an_untrained_stand_in_is_significant_far_less_often_across_networks():
  """An untrained network standing in for the pre-trained arm comes out 'significant'
  against random inits with the per-seed paired test over one network far more often than
  the 5% a valid test allows; with one value per network (Welch) it does not. All 12
  networks here are random inits, so every 'significant' row is a false positive."""
  digits = lambda split, n: load_images('digits', split, max_examples=n)
  (x_train, y_train, _), (x_test, y_test, _) = digits('train', 240), digits('test', 120)
  x_train, x_test = (np.asarray(to_network_input(x, 8, 1)) for x in (x_train, x_test))
  model = create_model(stem='cifar', width=4, projector=(8, 4), dtype='float32', channels=1)
  views = [act.View(l) for l in ('stem', 'layer1', 'layer2', 'pooled')]
  n_nets, n_seeds = 12, 3
  acc = np.zeros((len(views), n_nets, n_seeds))  # network j, evaluation draw s
  for j in range(n_nets):
    variables = init_variables(model, jax.random.PRNGKey(100 + j), 8)
    f_train, f_test = (act.extract(model, variables, x, views, batch_size=256)
                       for x in (x_train, x_test))
    for s in range(n_seeds):
      key = jax.random.split(jax.random.PRNGKey(s), 3)[1]
      for i in range(len(views)):
        probe = probes.fit_probe(key, f_train[i], y_train, num_classes=10, steps=30)
        acc[i, j, s] = probes.probe_accuracy(probe, f_test[i], y_test)
  rng = np.random.default_rng(0)
  hits = {'one network, paired over seeds': [], 'networks, welch': []}
  seeds = np.arange(n_seeds)
  for _ in range(100):
    for i in range(len(views)):
      nets = rng.permutation(n_nets)
      stand_in, others = nets[0], nets[1:1 + n_seeds]
      today = compare(acc[i, stand_in, seeds], acc[i, others, seeds])
      hits['one network, paired over seeds'].append((today['p'] or 1.0) < 0.05)
      across = compare(acc[i, nets[4:4 + n_seeds], seeds], acc[i, others, seeds], paired=False)
      hits['networks, welch'].append((across['p'] or 1.0) < 0.05)
  rates = {k: float(np.mean(v)) for k, v in hits.items()}
  assert rates['networks, welch'] <= 0.1, rates
  assert rates['one network, paired over seeds'] >= 2 * max(rates['networks, welch'], 0.05), rates
