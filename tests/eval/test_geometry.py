"""One layer's geometry: measures, pooled dimensionality, unequal manifolds, zero-padding."""

import jax
import numpy as np
import pytest

from rwjax.eval import geometry

KEYS = dict(key=jax.random.PRNGKey(1), sim_key=jax.random.PRNGKey(2), n_t=20, kappa=0.0)


def test_measures_of_unequal_manifolds_pooled_dimensionality_and_zero_padding():
  rng = np.random.default_rng(0)
  points = [(rng.normal(size=(m, 20)) + 3 * rng.normal(size=(1, 20))).astype(np.float32)
            for m in (4, 6, 5)]  # as wave manifolds are
  out = geometry.analyse(points, measures=geometry.MEASURES, pad_to=64, simulate=True,
                         sim_trials=4, **KEYS)
  assert set(out) == set(geometry.MEASURES) | {'dims', 'solver_residual'} and out['dims'] == 20
  assert 0 < out['alpha'] <= 2 + 1e-3 and out['radius'] > 0 and out['dimension'] > 0
  assert out['solver_residual'] < 1e-3 and np.isfinite(out['sim_alpha']) and out['sim_alpha'] > 0
  pooled = np.concatenate(points)
  lam = np.linalg.eigvalsh(np.cov(pooled.T, bias=True))[::-1]
  assert out['participation_ratio'] == pytest.approx(lam.sum() ** 2 / (lam ** 2).sum(), rel=1e-4)
  assert out['pcs_90'] == 1 + np.searchsorted(np.cumsum(lam) / lam.sum(), 0.9)
  only = geometry.analyse(points, measures=('pcs_90',), pad_to=64, **KEYS)
  assert only == {'dims': 20, 'solver_residual': 0.0, 'pcs_90': out['pcs_90']}
  points = list((rng.normal(size=(3, 4, 32)) + 2 * rng.normal(size=(3, 1, 32))).astype(np.float32))
  a, b = (geometry.analyse(points, measures=geometry.MFTMA, pad_to=n, **KEYS) for n in (0, 64))
  for k in geometry.MFTMA:
    assert a[k] == pytest.approx(b[k], rel=1e-4), k
