"""Participation ratio and principal components for 90% against hand-derived values."""

import numpy as np
import pytest

from rwjax.errors import InputError
from rwjax.eval import dimensionality as dim


def axis_cloud(stds, n_dims, copies=1):
  """Points +-std_i e_i (all sign patterns' vertices of a cross): covariance diag(std^2 / k)
  up to a common factor, mean 0."""
  pts = []
  for i, s in enumerate(stds):
    for sign in (1, -1):
      p = np.zeros(n_dims)
      p[i] = sign * s
      pts.append(p)
  return np.tile(np.array(pts), (copies, 1))


def test_hand_derived_spectra():
  # Variances proportional to 4 and 1: PR = 5^2 / (16 + 1) = 25 / 17; 4 / 5 = 80% < 90% -> 2.
  d = dim.dimensionality(axis_cloud([2.0, 1.0], 6))
  assert d['participation_ratio'] == pytest.approx(25 / 17, rel=1e-5)
  assert d['pcs_90'] == 2
  # 9 : 1 holds exactly 90% in one component.
  d = dim.dimensionality(axis_cloud([3.0, 1.0], 4))
  assert d['pcs_90'] == 1 and d['participation_ratio'] == pytest.approx(100 / 82, rel=1e-5)
  # Five equal variances: PR = 5, 90% needs 5 components (4 hold 80%).
  d = dim.dimensionality(axis_cloud([1.0] * 5, 12))
  assert d['participation_ratio'] == pytest.approx(5.0, rel=1e-5) and d['pcs_90'] == 5
  # The global mean is removed: a shifted cloud, in a rotated basis, keeps its values.
  q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 6)))
  moved = axis_cloud([2.0, 1.0], 6) @ q + 7.0
  d = dim.dimensionality(moved.reshape(2, 2, 6))  # as P = 2 manifolds of M = 2
  assert d['participation_ratio'] == pytest.approx(25 / 17, rel=1e-4) and d['pcs_90'] == 2


def test_more_points_than_dimensions_and_the_rule_at_the_threshold():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(400, 3)) * np.array([3.0, 2.0, 1.0])
  lam = np.sort(np.linalg.eigvalsh(np.cov(x.T, bias=True)))[::-1]
  d = dim.dimensionality(x)
  assert d['participation_ratio'] == pytest.approx(lam.sum() ** 2 / (lam ** 2).sum(), rel=1e-4)
  assert dim.pcs_for_variance([5, 3, 2], 0.8) == 2 and dim.pcs_for_variance([5, 3, 2], 0.81) == 3
  assert dim.pcs_for_variance([0, 0], 0.9) == 0
  with pytest.raises(InputError):
    dim.dimensionality(np.zeros((1, 4)))
