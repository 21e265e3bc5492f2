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
