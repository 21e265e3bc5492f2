"""Participation ratio and principal components for 90% against hand-derived values."""

import numpy as np
import pytest

from rwjax.errors import InputError
from rwjax.eval import dimensionality as dim


def axis_cloud(stds, n_dims):
  """Points +-std_i e_i (the vertices of a cross): mean 0, covariance proportional to
  diag(std^2)."""
  vertices = np.eye(n_dims)[:len(stds)] * np.asarray(stds)[:, None]
  return np.concatenate([vertices, -vertices])


@pytest.mark.parametrize('stds, n_dims, pr, pcs', [
    ([2.0, 1.0], 6, 25 / 17, 2),  # variances 4 : 1: PR = 5^2 / (16 + 1); 4 / 5 = 80% < 90%
    ([3.0, 1.0], 4, 100 / 82, 1),  # 9 : 1 holds exactly 90% in one component
    ([1.0] * 5, 12, 5.0, 5),  # five equal variances: 4 components hold 80%
])
def test_hand_derived_spectra(stds, n_dims, pr, pcs):
  d = dim.dimensionality(axis_cloud(stds, n_dims))
  assert d['participation_ratio'] == pytest.approx(pr, rel=1e-5) and d['pcs_90'] == pcs


def test_moved_clouds_and_the_rule_at_the_threshold():
  # The global mean is removed: a shifted cloud, in a rotated basis, keeps its values.
  q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 6)))
  moved = axis_cloud([2.0, 1.0], 6) @ q + 7.0
  d = dim.dimensionality(moved.reshape(2, 2, 6))  # as P = 2 manifolds of M = 2
  assert d['participation_ratio'] == pytest.approx(25 / 17, rel=1e-4) and d['pcs_90'] == 2
  assert dim.pcs_for_variance([5, 3, 2], 0.8) == 2 and dim.pcs_for_variance([5, 3, 2], 0.81) == 3
  assert dim.pcs_for_variance([0, 0], 0.9) == 0
  with pytest.raises(InputError):
    dim.dimensionality(np.zeros((1, 4)))
