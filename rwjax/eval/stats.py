"""Seed statistics: a pre-trained network's numbers beside the random-init network's.

`compare(pretrained, random_init)` summarises per-seed values (mean, sample std), their
difference, a two-sided t-test from scipy.stats, paired (`ttest_rel`) when seed i of both arms
shares everything but the pre-training (same probe split, same task draw) or Welch's
(`ttest_ind`, unequal variances) otherwise, and Hedges' g (`hedges_g`), the one effect size
of the project (the evaluator's and the experiment's). Undefined numbers (a std or a test from
fewer than two seeds, values with no spread, a non-finite value such as the capacity of a dead
layer) are None, so the result is strict JSON (`text` prints them as 'n/a').
With one pre-trained network reused for every seed, the paired test asks whether that
network differs from random inits, not whether pre-training does (docs/evaluation.md,
'Several pre-training runs per arm').
"""

import math
import warnings
from typing import Optional, Sequence

import numpy as np
import scipy.stats

from rwjax.errors import InputError

ARMS = ('pretrained', 'random_init')  # the two networks of every comparison


def _number(x: float) -> Optional[float]:
  return float(x) if math.isfinite(x) else None


def text(x: Optional[float], spec: str = '.3f') -> str:
  """x formatted with `spec`, 'n/a' for an undefined (None) number."""
  return 'n/a' if x is None else format(x, spec)


def summarise(values: Sequence[float]) -> dict:
  """{'n', 'mean', 'std' (ddof=1; None for one value), 'values'} of per-seed values."""
  v = np.asarray(values, np.float64)
  if v.ndim != 1 or not len(v):
    raise InputError(f'need a non-empty list of per-seed values, got {values!r}')
  with np.errstate(all='ignore'):
    return {'n': len(v), 'mean': _number(v.mean()),
            'std': _number(v.std(ddof=1)) if len(v) > 1 else None,
            'values': [_number(x) for x in v]}


def compare(pretrained: Sequence[float], random_init: Sequence[float], *,
            paired: bool = True) -> dict:
  """Pre-trained vs random-init per-seed values.

  Args:
    pretrained: values over seeds for the pre-trained network.
    random_init: values over seeds for the random-init network (may be empty: its summary
      then has n=0 and every statistic is None).
    paired: pair seed i of both arms (needs equal counts); False for Welch's test.

  Returns:
    {'pretrained': summary, 'random_init': summary, 'difference' (mean of pretrained minus
    mean of random_init), 'test' ('paired t' | 'welch t'), 't', 'p', 'effect_size'
    (Hedges' g)} (t, p and the effect size None when undefined).
  """
  a = summarise(pretrained)
  # No random-init values: the evaluator's config.random_init_arm=False (nothing compared).
  b = summarise(random_init) if len(random_init) else {'n': 0, 'mean': None, 'std': None,
                                                       'values': []}
  if paired and b['n'] and a['n'] != b['n']:
    raise InputError(f'a paired test needs as many pre-trained as random-init seeds, got '
                     f"{a['n']} and {b['n']}; use paired=False for Welch's test")
  t = p = effect = None
  if min(a['n'], b['n']) > 1:
    # Nearly identical values (the pre-trained arm's features are the same for every seed)
    # make scipy warn about lost precision; the statistics are reported as computed.
    with np.errstate(all='ignore'), warnings.catch_warnings():
      warnings.simplefilter('ignore', RuntimeWarning)
      x, y = np.asarray(pretrained, np.float64), np.asarray(random_init, np.float64)
      result = (scipy.stats.ttest_rel(x, y) if paired
                else scipy.stats.ttest_ind(x, y, equal_var=False))
    t, p = _number(result.statistic), _number(result.pvalue)
    effect = _number(hedges_g(x, y))
  defined = a['mean'] is not None and b['mean'] is not None
  return {'pretrained': a, 'random_init': b,
          'difference': a['mean'] - b['mean'] if defined else None,
          'test': 'paired t' if paired else 'welch t', 't': t, 'p': p, 'effect_size': effect}


def hedges_g(x: np.ndarray, y: np.ndarray) -> float:
  """Hedges' g: (mean x - mean y) / pooled sample std x (1 - 3 / (4 (n_x + n_y) - 9)); NaN
  when there is no spread."""
  with np.errstate(all='ignore'):
    nx, ny = len(x), len(y)
    pooled = np.sqrt(((nx - 1) * x.var(ddof=1) + (ny - 1) * y.var(ddof=1)) / (nx + ny - 2))
    return float((x.mean() - y.mean()) / pooled * (1 - 3 / (4 * (nx + ny) - 9)))
