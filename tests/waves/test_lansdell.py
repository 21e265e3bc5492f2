"""Lansdell et al. (2014) simulator: state contract, determinism, boundaries, waves,
and agreement with the plain NumPy reference in bench/numpy_lansdell.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rwjax.errors import InputError
from rwjax.waves import lansdell as L

SMALL = L.Params(size=16, spont_prob=0.02)


def test_init_shapes_dtypes_rest_values_and_bad_params():
  st = L.init(jax.random.PRNGKey(0), 3, SMALL)
  for field in (st.v, st.r, st.s, st.e):
    assert field.shape == (3, 16, 16) and field.dtype == jnp.float32
  assert st.key.shape == (3, 2) and st.key.dtype == jnp.uint32
  np.testing.assert_array_equal(st.v, -70.0)
  np.testing.assert_array_equal(st.r + st.s + st.e, 0.0)
  assert L.pixel_mm() == pytest.approx(2 / 63)
  assert L.THRESHOLD == -60.0
  with pytest.raises(InputError, match='whole multiple'):
    L.init(jax.random.PRNGKey(0), 1, L.Params(dt=0.003))
  with pytest.raises(InputError, match='batch'):
    L.init(jax.random.PRNGKey(0), 0)
  with pytest.raises(InputError, match='n_frames'):
    L.advance(st, -1, SMALL)


def test_advance_is_deterministic_carrying_state_equals_one_longer_call_and_shorter_frames():
  st = L.init(jax.random.PRNGKey(1), 2, SMALL)
  st_a, f_a = L.advance(st, 5, SMALL)
  assert f_a.shape == (2, 5, 16, 16) and f_a.dtype == jnp.float32
  np.testing.assert_array_equal(L.advance(st, 5, SMALL)[1], f_a)
  assert not np.array_equal(f_a[0], f_a[1])
  assert not np.array_equal(st_a.key, st.key)
  _, f3 = L.advance(L.init(jax.random.PRNGKey(2), 2, SMALL), 5, SMALL)
  assert not np.array_equal(f_a, f3)
  st_b, f_b = L.advance(st_a, 5, SMALL)
  st_w = L.warmup(st, 0.5, SMALL)
  np.testing.assert_allclose(st_w.v, st_a.v, atol=1e-5)
  np.testing.assert_array_equal(st_w.key, st_a.key)
  st_c, f_c = L.advance(st, 10, SMALL)
  np.testing.assert_allclose(np.concatenate([f_a, f_b], axis=1), f_c, rtol=0, atol=1e-5)
  np.testing.assert_array_equal(st_b.key, st_c.key)
  # frame_dt = 0.01 s with spont_frames = 10 (a 0.1 s spontaneous-input window) is the
  # default 0.1 s model filmed ten times as often: every tenth frame, the state and the
  # warm-up are those of the default, frame for frame.
  fine = SMALL._replace(frame_dt=0.01, spont_frames=10)
  st_f, frames = L.advance(st, 50, fine)
  assert frames.shape == (2, 50, 16, 16)
  np.testing.assert_allclose(frames[:, 9::10], f_a, rtol=0, atol=1e-4)
  np.testing.assert_array_equal(st_f.key, st_a.key)
  np.testing.assert_allclose(L.warmup(st, 0.5, fine).v, st_a.v, rtol=0, atol=1e-4)
  # In-between frames are the states between (not copies of the window's last frame).
  assert not np.allclose(frames[:, 0], frames[:, 9])
  with pytest.raises(InputError, match='spont_frames=10'):
    L.advance(st, 15, fine)
  with pytest.raises(InputError, match='spont_frames'):
    L.init(jax.random.PRNGKey(0), 1, SMALL._replace(spont_frames=0))


def test_laplacian_is_no_flux():
  x = jax.random.normal(jax.random.PRNGKey(4), (2, 9, 7))
  lap = L.laplacian(x, 0.5)
  # Neumann borders: diffusion only moves E around, the total is conserved.
  np.testing.assert_allclose(lap.sum(axis=(1, 2)), 0.0, atol=1e-4)
  np.testing.assert_array_equal(L.laplacian(jnp.full((1, 5, 5), 3.0), 0.1), 0.0)
  quiet = SMALL._replace(spont_prob=0.0)
  st = L.init(jax.random.PRNGKey(5), 1, quiet)
  st = st._replace(e=jnp.full_like(st.e, 0.3), v=jnp.full_like(st.v, -30.0))
  st, frames = L.advance(st, 3, quiet)
  for field in (frames[:, -1], st.r, st.s, st.e):
    assert np.ptp(np.asarray(field)) < 1e-4


@pytest.mark.parametrize('params', [L.Params(), L.Params(kappa=0.23, v2=17.0)])
def test_gates_match_the_textbook_forms(params):
  # Defaults take the shared-exponential path, the second set the direct one.
  v = np.linspace(-95.0, 60.0, 311)
  g, ca_open, y = L.gates(jnp.asarray(v, jnp.float32), params)
  p = params
  np.testing.assert_allclose(g, 1 / (1 + np.exp(-p.kappa * (v - p.v0))), rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(ca_open, (1 + np.tanh((v - p.v1) / p.v2)) / 2, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(y, np.exp((v - p.v3) / (2 * p.v4)), rtol=1e-5)


def test_matches_numpy_reference_with_same_draws(repo_module):
  ref = repo_module('bench/numpy_lansdell.py')
  st = L.init(jax.random.PRNGKey(6), 2, SMALL)
  n = 5
  _, frames = L.advance(st, n, SMALL)
  keys, f = st.key, ref.init(2, SMALL, np.float64)
  draw = jax.vmap(lambda k: L.spontaneous_input(k, SMALL))
  expected = []
  for _ in range(n):
    keys, driven = draw(keys)
    f = ref.frame(f, np.asarray(driven), SMALL)
    expected.append(f['v'])
  expected = np.stack(expected, axis=1)
  assert (expected > L.THRESHOLD).any()   # the comparison covers firing cells
  np.testing.assert_allclose(frames, expected, rtol=0, atol=0.05)


def test_waves_start_and_propagate():
  p = L.Params(size=32, spont_prob=2e-3)
  st = L.init(jax.random.PRNGKey(7), 1, p)
  _, frames = L.advance(st, 60, p)
  active = (np.asarray(frames[0]) > L.THRESHOLD).sum(axis=(1, 2))
  first = np.argmax(active > 0)
  assert active[first] > 0 and active[first] < 10      # starts from a few cells...
  assert active.max() > 0.3 * 32 * 32                   # ...and spreads over the retina
