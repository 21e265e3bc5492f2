"""Simulated capacity: exact separability decisions and agreement with the mean-field alpha."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rwjax.errors import InputError
from rwjax.eval import capacity as cap
from rwjax.eval import simulated_capacity as sc


def test_points_in_general_position_follow_cover_and_bad_input_raises():
  # K points in general position in n dims with a bias: separable for every labeling
  # once n + 1 >= K; 4 points on a line (n = 1) are separable for few balanced labelings.
  rng = np.random.default_rng(0)
  pts = rng.standard_normal((4, 1, 6))
  mask = jnp.ones((4, 1), bool)
  frac = lambda n: float(sc.separable_fraction(
      jnp.asarray(pts, jnp.float32), mask, n, jax.random.PRNGKey(n), n_trials=32, n_max=6))
  assert frac(3) == 1.0
  # In 1-D: 2 of the 6 balanced labelings of 4 ordered points are separable.
  assert 0.1 < frac(1) < 0.6
  with pytest.raises(InputError):
    sc.simulated_capacity([np.zeros((3, 4))], key=jax.random.PRNGKey(0))
  with pytest.raises(InputError):
    sc.simulated_capacity(np.ones((2, 3, 4)), key=jax.random.PRNGKey(0), n_trials=0)


def test_simulated_capacity_agrees_with_mean_field():
  rng = np.random.default_rng(1)
  p, m, n = 24, 4, 200
  x = rng.standard_normal((p, 1, n)) + 0.4 * rng.standard_normal((p, m, n))
  mft = cap.manifold_analysis(x, n_t=400, key=jax.random.PRNGKey(0))
  sim = sc.simulated_capacity(x, key=jax.random.PRNGKey(1), n_trials=48)
  # Statistical error: +-1 dimension of N_c ~ 4%, MC error of the mean field ~2%,
  # finite-size corrections of a few percent at P = 24.
  assert sim['alpha_c'] == pytest.approx(mft['alpha'], rel=0.12)
  frac = np.asarray(sim['curve']['fraction'])
  assert np.all(np.diff(frac) >= -0.2)  # monotone up to sampling noise
  assert frac[np.asarray(sim['curve']['n']) == sim['n_c']][0] >= 0.5
