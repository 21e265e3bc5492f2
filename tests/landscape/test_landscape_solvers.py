"""HVPs, MINRES and Lanczos against dense linear algebra (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rwjax.landscape import hvp, lanczos, minres


@pytest.fixture(autouse=True)
def _x64():
  with jax.enable_x64(True):
    yield


def _mlp_loss(params, x, y):
  h = jnp.tanh(x @ params['w1'] + params['b1'])
  return jnp.mean((h @ params['w2'] - y)**2)


def test_hvp_equals_dense_hessian_times_v_on_a_pytree_loss():
  k = jax.random.split(jax.random.PRNGKey(0), 5)
  params = {'w1': jax.random.normal(k[0], (3, 4)), 'b1': jax.random.normal(k[1], (4,)),
            'w2': jax.random.normal(k[2], (4, 2))}
  x, y = jax.random.normal(k[3], (7, 3)), jax.random.normal(k[4], (7, 2))
  loss, theta, unravel = hvp.flatten_loss(lambda p: _mlp_loss(p, x, y), params)
  assert theta.dtype == jnp.float64 and theta.shape == (24,)
  np.testing.assert_allclose(loss(theta), _mlp_loss(params, x, y))
  dense = jax.hessian(loss)(theta)
  v = jax.random.normal(jax.random.PRNGKey(1), theta.shape)
  np.testing.assert_allclose(hvp.hvp(loss, theta, v), dense @ v, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(hvp.hvp_operator(loss, theta)(v), dense @ v, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(hvp.dense_hessian(loss, theta), dense, rtol=1e-10, atol=1e-12)


def _singular_matrix(rng, n=12, eigenvalues=(3., -2., 1.5, 0.7, -0.3, 5., 2., -1.)):
  q, _ = np.linalg.qr(rng.normal(size=(n, n)))
  ev = np.zeros(n)
  ev[:len(eigenvalues)] = eigenvalues
  return (q * ev) @ q.T, q[:, len(eigenvalues):]


@pytest.mark.parametrize('shift', [0.0, 0.25])
def test_minres_matches_pseudo_inverse_on_a_consistent_system(shift):
  """Singular (shift 0: the minimum-norm solution), or shifted indefinite and regular."""
  rng = np.random.default_rng(0)
  a, _ = _singular_matrix(rng)
  b = a @ rng.normal(size=12) if shift == 0 else rng.normal(size=12)
  res = jax.jit(lambda b: minres.minres(lambda v: jnp.asarray(a) @ v, b, shift=shift))(
      jnp.asarray(b))
  assert int(res.flag) == minres.COMPATIBLE
  np.testing.assert_allclose(res.x, np.linalg.pinv(a + shift * np.eye(12)) @ b, atol=1e-8)
  assert float(res.residual_norm) < 1e-8 and float(res.ar_norm) < 1e-8


def test_minres_flags_incompatible_and_zero_rhs_and_gives_least_squares_solution():
  rng = np.random.default_rng(1)
  a, null = _singular_matrix(rng)
  b = a @ rng.normal(size=12) + null[:, 0]       # ||component outside range(A)|| = 1
  res = minres.minres(lambda v: jnp.asarray(a) @ v, jnp.asarray(b))
  assert int(res.flag) == minres.INCOMPATIBLE
  np.testing.assert_allclose(res.residual_norm, 1.0, rtol=1e-8)
  assert float(res.ar_norm) < 1e-8
  # A x is the projection of b onto range(A), as for the pseudo-inverse solution.
  np.testing.assert_allclose(a @ np.asarray(res.x), a @ np.linalg.pinv(a) @ b, atol=1e-8)
  zero = minres.minres(lambda v: jnp.asarray(a) @ v, jnp.zeros(12))
  assert int(zero.flag) == minres.ZERO_RHS and float(jnp.abs(zero.x).max()) == 0.0


def test_lanczos_norm_and_slq_index_match_dense_spectrum():
  rng = np.random.default_rng(3)
  q, _ = np.linalg.qr(rng.normal(size=(60, 60)))
  ev = np.concatenate([-np.linspace(0.5, 2, 15), np.linspace(0.1, 4, 45)])
  a = jnp.asarray((q * ev) @ q.T)
  matvec = lambda v: a @ v
  np.testing.assert_allclose(lanczos.norm_estimate(matvec, 60, jnp.float64, 30), 4.0, rtol=1e-6)
  index, h_norm = lanczos.slq_index(matvec, 60, jnp.float64, jax.random.PRNGKey(0),
                                    num_probes=16, num_steps=60)
  np.testing.assert_allclose(h_norm, 4.0, rtol=1e-8)
  assert abs(float(index) - 0.25) < 0.08
