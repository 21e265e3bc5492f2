"""Seed statistics: summaries, differences and scipy t-tests, JSON-safe."""

import json

import numpy as np
import pytest
import scipy.stats

from rwjax.errors import InputError
from rwjax.eval.stats import compare, summarise


def test_summary_and_paired_and_welch_tests():
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


def test_undefined_numbers_are_none():
  one = compare([0.7], [0.6])
  assert one['pretrained']['std'] is None and one['t'] is None and one['p'] is None
  assert one['difference'] == pytest.approx(0.1)
  flat = compare([0.5, 0.5], [0.5, 0.5])  # No spread: the t statistic is undefined.
  assert flat['p'] is None
  json.dumps([one, flat], allow_nan=False)


def test_bad_inputs_raise_input_error():
  with pytest.raises(InputError, match='non-empty'):
    summarise([])
  with pytest.raises(InputError, match='paired'):
    compare([0.1, 0.2], [0.3])


def test_non_finite_values_become_null_and_the_report_stays_strict_json():
  c = compare([float('nan'), 1.0], [0.5, 0.5])
  assert c['pretrained']['mean'] is None and c['difference'] is None
  assert c['pretrained']['values'] == [None, 1.0]
  json.dumps(c, allow_nan=False)


def test_effect_sizes_match_hand_computed_values():
  a, b = [0.8, 0.82, 0.85, 0.81], [0.5, 0.55, 0.52, 0.49]
  # By hand: means 0.82 and 0.515, sample variances 0.0014/3 and 0.0021/3; pooled std
  # sqrt(0.0035/6) = 0.0241523; Hedges' correction 1 - 3/(4*8 - 9) = 20/23.
  welch = compare(a, b, paired=False)
  assert welch['effect_size_kind'] == 'hedges g'
  assert welch['effect_size'] == pytest.approx(0.305 / 0.0241523 * 20 / 23, rel=1e-5)
  # Differences 0.3, 0.27, 0.33, 0.32: mean 0.305, sample std sqrt(0.0021/3) = 0.0264575.
  paired = compare(a, b)
  assert paired['effect_size_kind'] == 'cohen d_z'
  assert paired['effect_size'] == pytest.approx(0.305 / 0.0264575, rel=1e-5)
  assert compare([0.7], [0.6])['effect_size'] is None
  assert compare([0.5, 0.5], [0.5, 0.5], paired=False)['effect_size'] is None
