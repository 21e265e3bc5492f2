"""The verdict rules of rwjax/eval/claims.py on planted comparisons (numbers made by hand)."""

import math

import pytest

from rwjax.eval import claims

H, N, I = claims.HELD, claims.NOT_HELD, claims.INCONCLUSIVE


def c(gain, p):
  return {'gain': gain, 'p': p}


def test_translation_and_classification():
  assert claims.translation(c(0.05, 0.01)) == H
  assert claims.translation(c(0.05, 0.2)) == I
  assert claims.translation(c(-0.01, 0.01)) == N
  assert claims.translation(None) == I
  assert claims.not_worse([c(0.0, None), c(0.02, 0.5)]) == H
  assert claims.not_worse([c(-0.01, 0.5)]) == I
  assert claims.not_worse([c(0.1, 0.01), c(-0.05, 0.01)]) == N


def test_capacity_per_mode_and_what_survives_adapt():
  layers = ['stem', 'layer1', 'layer2', 'layer3', 'layer4', 'pooled']
  late = {l: c(g, 0.01) for l, g in zip(layers, (0.0, 0.01, 0.02, 0.03, 0.05, 0.04))}
  early = {l: c(g, 0.01) for l, g in zip(layers, (0.0, 0.09, 0.02, 0.03, 0.01, 0.04))}
  assert claims.capacity(late) == (H, 'layer4')
  assert claims.capacity(early) == (N, 'layer1')
  assert claims.capacity({**late, 'pooled': c(0.04, 0.3)})[0] == I
  assert claims.capacity({**late, 'projector_output': c(0.9, 0.001)}) == (H, 'layer4')
  # A gain that survives re-estimated statistics, and one that does not.
  running = c(0.16, 0.006)
  kept = claims.survives(running, c(0.12, 0.01))
  assert '+0.120' in kept and '75% of it survives, significant' in kept
  lost = claims.survives(running, c(0.01, 0.7))
  assert '6% of it survives, not significant' in lost
  assert claims.survives(running, None) == 'not measured in both modes'


def test_controls_need_less_than_half_and_a_direct_test():
  waves = c(0.10, 0.01)
  below = {'t': c(0.04, 0.3), 's': c(-0.02, 0.5)}
  # Both controls keep < 50% and the wave arm is significantly above each: held.
  assert claims.controls(waves, below, {'t': c(0.06, 0.02), 's': c(0.12, 0.001)}) == H
  # The same point estimates, one direct test not significant: inconclusive.
  assert claims.controls(waves, below, {'t': c(0.06, 0.2), 's': c(0.12, 0.001)}) == I
  # A control that keeps the gain (60%): not held, whatever the direct tests say.
  assert claims.controls(waves, {'t': c(0.06, 0.1)}, {'t': c(0.04, 0.01)}) == N
  assert claims.controls(c(0.10, 0.2), {'t': c(0.0, 0.9)}, {'t': c(0.1, 0.01)}) == I
  assert claims.controls(waves, {}, {}) == I


def test_specificity_fails_when_another_task_gains_significantly_more():
  t = c(0.10, 0.01)
  small = {'rotation': c(0.01, 0.5), 'colour': c(0.049, 0.1)}
  no_excess = {'rotation': c(-0.09, 0.01), 'colour': c(-0.05, 0.2)}
  assert claims.specific(t, small, no_excess) == H
  assert claims.specific(t, {'rotation': c(0.08, 0.01)}, {'rotation': c(-0.02, 0.4)}) == N
  # Colour gains significantly more than translation: not held, even with no significant
  # translation gain (otherwise inconclusive).
  assert claims.specific(c(0.01, 0.6), {'colour': c(0.05, 0.008)},
                         {'colour': c(0.04, 0.02)}) == N
  assert claims.specific(c(0.01, 0.6), {'colour': c(0.05, 0.008)},
                         {'colour': c(0.04, 0.2)}) == I


def test_network_comparison_statistics_typed_from_their_definitions():
  a, b = [1.0, 2.0, 3.0], [0.0, 0.5, 1.0]
  got = claims.compare_networks(a, b)
  va, vb = 1.0, 0.25  # sample variances
  t = 1.5 / math.sqrt(va / 3 + vb / 3)
  assert got['gain'] == pytest.approx(1.5)
  assert got['g'] == pytest.approx(1.5 / math.sqrt((va + vb) / 2) * (1 - 3 / (4 * 6 - 9)))
  import scipy.stats  # pylint: disable=g-import-not-at-top
  df = (va / 3 + vb / 3) ** 2 / ((va / 3) ** 2 / 2 + (vb / 3) ** 2 / 2)
  assert got['p'] == pytest.approx(2 * scipy.stats.t.sf(t, df))
  assert claims.null_rate([c(0.1, 0.01), c(0.1, 0.3), c(0.0, None), None]) == (1, 2)
  assert claims.difference([0.3, None, 0.5], [0.1, 0.2, float('nan')]) == [pytest.approx(0.2)]


def test_row_specs():
  spec = claims.parse('paper_manifolds/translate/*/alpha/adapt', 'config.claims.capacity')
  assert spec.matches(('paper_manifolds', 'translate', 'stem_relu', 'alpha', 'adapt'))
  assert not spec.matches(('paper_manifolds', 'translate', 'stem_relu', 'alpha', 'running'))
  any_mode = claims.parse('p/t/pooled/adam_best', 'x')
  assert any_mode.matches(('p', 't', 'pooled', 'adam_best', 'batch'))
  assert str(any_mode) == 'p/t/pooled/adam_best'
  with pytest.raises(claims.InputError, match='config.claims.capacity'):
    claims.parse('paper_manifolds/translate', 'config.claims.capacity')
