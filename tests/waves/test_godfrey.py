"""Godfrey & Swindale (2007) simulator: coupling kernel, state contract, waves."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rwjax.waves import godfrey as G

SMALL = G.Params(size=32)


def test_coupling_kernel_is_the_disk_overlap_and_the_neighbour_fraction():
  w = G.coupling_kernel()
  k = w.shape[0] // 2
  assert w.shape == (19, 19) and w[k, k] == 0.0           # d < 2R = 10 spacings; no self
  np.testing.assert_array_equal(w, w.T)
  np.testing.assert_array_equal(w, w[::-1])
  # One spacing: d / 2R = 0.1 -> 2 [acos(0.1) - 0.1 sqrt(1 - 0.01)] / pi.
  assert w[k, k + 1] == pytest.approx(2 * (math.acos(0.1) - 0.1 * math.sqrt(0.99)) / math.pi,
                                      rel=1e-5)
  assert np.all(np.diff(w[k, k + 1:]) < 0)                 # decreasing with distance
  assert w[k, -1] > 0 and w[0, 0] == 0.0                  # (0, 9) inside, (9, 9) outside 2R
  # Sum over the lattice ~ pi R^2 / spacing^2 - 1 (the overlap integrates to (pi R^2)^2).
  assert w.sum() == pytest.approx(math.pi * 25 - 1, rel=0.01)
  frac = G.neighbour_fraction(SMALL)
  assert frac.max() == pytest.approx(1.0) and 0.25 < frac[0, 0] < 0.3   # corner: ~ a quarter


def test_state_contract_determinism_and_waves_of_calcium_in_unit_range():
  st = G.init(jax.random.PRNGKey(1), 2, SMALL)
  for field in st[:5]:
    assert field.shape == (2, 32, 32) and field.dtype == jnp.float32
  assert st.key.shape == (2, 2) and st.key.dtype == jnp.uint32
  assert 0.5 <= float(st.theta.min()) and float(st.theta.max()) <= 5.0
  assert float(st.rho.min()) > 0
  st1, f1 = G.advance(st, 4, SMALL)
  st2, f2 = G.advance(st1, 4, SMALL)
  _, f = G.advance(st, 8, SMALL)
  assert f.shape == (2, 8, 32, 32)
  # Same draws and updates, but scans of other lengths are other programs, which need not be
  # bit-identical on every CPU: equal to float32 rounding (a wrong key split or a skipped
  # step changes the frames at order 1).
  np.testing.assert_allclose(np.concatenate([f1, f2], axis=1), f, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(G.warmup(st, 0.4, SMALL).theta, st1.theta, rtol=1e-5, atol=1e-6)
  st, frames = G.advance(st, 100, SMALL)
  frames = np.asarray(frames)
  assert frames.min() >= 0.0 and frames.max() <= 1.0
  active = (frames > G.THRESHOLD).mean(axis=(2, 3))        # [B, T]
  # Thresholds decay to 0 within 10 s, the first cells fire and recruit their neighbours.
  assert (active.max(axis=1) > 0.3).all()
  assert not np.array_equal(frames[0], frames[1])
  assert float(st.theta.max()) > 5.0                       # refractory after the wave


def test_matches_numpy_reference_with_same_draws(repo_module):
  # bench/numpy_godfrey.py: the docstring's equations with a dense pairwise coupling.
  ref = repo_module('bench/numpy_godfrey.py')
  p = G.Params(size=16)
  st = G.init(jax.random.PRNGKey(8), 2, p)
  st = G.warmup(st, 4.0, p)  # thresholds have nearly decayed: the first waves begin
  n = 40
  end, frames = G.advance(st, n, p)
  f = {k: np.asarray(getattr(st, k), np.float64).reshape(2, -1)
       for k in ('active_time', 'e', 'theta', 'rho', 'calcium')}
  keys, draws = st.key, []
  for _ in range(n):
    keys, z = jax.vmap(lambda k: G.frame_draws(k, p))(keys)
    draws.append(np.asarray(z, np.float64).reshape(2, -1))
  f, expected = ref.advance(f, np.stack(draws, 1), p)
  assert (expected > G.THRESHOLD).mean() > 0.05  # the comparison covers a wave
  assert float(st.rho.max()) != float(np.asarray(f['rho']).max())  # activity ended: rho redrawn
  np.testing.assert_allclose(frames, expected, rtol=0, atol=1e-4)
  for k in ('active_time', 'e', 'theta', 'rho'):  # the hidden state too
    np.testing.assert_allclose(np.asarray(getattr(end, k)).reshape(2, -1), f[k],
                               rtol=1e-4, atol=1e-4, err_msg=k)
