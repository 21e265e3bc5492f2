"""Critical-point finders on the linear autoencoder and the gradient-flat test functions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rwjax.landscape import damped_newton, diagnostics, gradient_norm, linear_ae, newton_mr, toy


@pytest.fixture(autouse=True)
def _x64():
  with jax.enable_x64(True):
    yield


@pytest.fixture(scope='module')
def problem():
  with jax.enable_x64(True):
    x = linear_ae.make_data(jax.random.PRNGKey(0), k=16, n=10_000)
    s = linear_ae.second_moment(x)
    thetas, losses, subsets = linear_ae.critical_points(np.asarray(s), p=4)
    return x, s, thetas, losses, subsets, linear_ae.make_loss(s, 4)


def test_data_spectrum_and_analytic_critical_points_zero_gradient_and_loss(problem):
  x, s, thetas, losses, subsets, loss = problem
  assert x.dtype == jnp.float64 and x.shape == (16, 10_000)
  assert float(jnp.abs(x.mean(axis=1)).max()) < 1e-12
  np.testing.assert_allclose(jnp.diag(s), np.linspace(1, 16, 16), rtol=0.06)
  assert len(subsets) == 2517
  some = np.random.default_rng(0).choice(len(subsets), 200, replace=False)
  g = jax.vmap(jax.grad(loss))(jnp.asarray(thetas[some]))
  assert float(jnp.sum(g**2, axis=1).max()) < 1e-20
  np.testing.assert_allclose(jax.vmap(loss)(jnp.asarray(thetas[some])), losses[some], rtol=1e-12)
  # The covariance form is the data loss, exactly.
  for i in some[:3]:
    np.testing.assert_allclose(linear_ae.loss_from_data(jnp.asarray(thetas[i]), x, 4),
                               losses[i], rtol=1e-10)


def test_newton_mr_started_near_analytic_points_converges_to_them(problem):
  _, s, thetas, losses, subsets, loss = problem
  picks = [0, 7, 300, 2000, 2516]   # empty subset (origin), saddles, global minimum
  rng = np.random.default_rng(1)
  starts = jnp.asarray(thetas[picks] + 1e-3 * rng.normal(size=(len(picks), 128)))
  finals, infos = jax.jit(jax.vmap(lambda t: newton_mr.run(loss, t, 15, maxiter=200)))(starts)
  g2 = jax.vmap(lambda t: jnp.sum(jax.grad(loss)(t)**2))(finals)
  assert float(g2.max()) < 1e-20
  np.testing.assert_allclose(jax.vmap(loss)(finals), losses[picks], rtol=1e-9)
  # Same critical class: W2 W1 is the projection onto the chosen eigenvectors.
  _, u = np.linalg.eigh(np.asarray(s))
  for theta, i in zip(finals, picks):
    w1, w2 = linear_ae.unpack(theta, 16, 4)
    proj = u[:, list(subsets[i])] @ u[:, list(subsets[i])].T
    np.testing.assert_allclose(w2 @ w1, proj, atol=1e-6)
  assert bool(jnp.all(infos.alpha <= 1.0))


def test_every_accepted_newton_mr_step_satisfies_armijo(problem):
  loss = problem[-1]
  rho = 1e-4
  step = jax.jit(lambda st: newton_mr.step(loss, st, rho=rho, maxiter=50))
  g2_of = jax.jit(lambda t: jnp.sum(jax.grad(loss)(t)**2))
  hessian = jax.jit(jax.hessian(loss))
  state = newton_mr.init(0.3 * jax.random.normal(jax.random.PRNGKey(2), (128,)))
  accepted = 0
  for _ in range(8):
    theta = state.theta
    state, info, p = step(state)
    if not bool(info.accepted):
      np.testing.assert_array_equal(state.theta, theta)   # failed search: theta unchanged
      assert bool(state.done)
      break
    accepted += 1
    alpha = float(info.alpha)
    assert 0 < alpha <= 1
    np.testing.assert_allclose(state.theta, theta + alpha * p)
    g = jax.grad(loss)(theta)
    slope = float(p @ hessian(theta) @ g)
    assert slope <= 0
    assert float(g2_of(state.theta)) <= float(g2_of(theta)) + 2 * rho * alpha * slope + 1e-12
  assert accepted >= 4


def test_gradient_flat_toys_newton_mr_stalls_on_x_plus_y_squared_and_finds_toys_minimum():
  theta, infos = jax.jit(lambda t: newton_mr.run(toy.linear_flat, t, 8))(jnp.array([0.3, 0.7]))
  assert float(theta[1]) == 0.0
  np.testing.assert_array_equal(infos.accepted, True)   # zero steps keep passing Armijo
  np.testing.assert_allclose(infos.grad_norm_sq[-1], 1.0)
  np.testing.assert_allclose(infos.r[-1], 1.0, atol=1e-12)
  assert float(infos.r_h[-1]) < 1e-12
  assert bool(diagnostics.diagnose(toy.linear_flat, theta).gradient_flat)
  # toy.toy: gradient-flat at (sqrt 2, 0), a minimum at (-3, 0).
  flat = diagnostics.diagnose(toy.toy, jnp.array([2.0**0.5, 0.0]))
  np.testing.assert_allclose(flat.grad_norm_sq, (9 - 4 * 2**0.5)**2)
  np.testing.assert_allclose(flat.r, 1.0, atol=1e-12)
  assert float(flat.r_h) < 1e-10 and bool(flat.gradient_flat)
  crit = diagnostics.diagnose(toy.toy, jnp.array([-3.0, 0.0]))
  assert float(crit.grad_norm_sq) == 0.0 and not bool(crit.gradient_flat)
  theta, _ = newton_mr.run(toy.toy, jnp.array([-2.5, 0.4]), 20)
  np.testing.assert_allclose(theta, [-3.0, 0.0], atol=1e-8)
  assert float(diagnostics.diagnose(toy.toy, theta).index) == 0.0


def test_gradient_norm_and_damped_newton_decrease_it_and_dense_and_lanczos_index_agree(problem):
  *_, thetas, _, subsets, loss = problem
  start = jnp.asarray(thetas[7]) + 1e-2 * jax.random.normal(jax.random.PRNGKey(3), (128,))
  _, gn = jax.jit(lambda t: gradient_norm.run(loss, t, 30))(start)
  _, dn = jax.jit(lambda t: damped_newton.run(loss, t, 6, maxiter=50))(start)
  for infos in (gn, dn):
    g2 = np.asarray(infos.grad_norm_sq)
    assert np.all(np.diff(g2) <= 0) and g2[-1] < 1e-2 * g2[0]
  assert float(dn.grad_norm_sq_new[-1]) < 1e-10   # damped Newton converges quickly here
  i = subsets.index((0, 1, 2, 3))   # the four smallest eigenvalues: a high-index saddle
  theta = jnp.asarray(thetas[i])
  dense = diagnostics.diagnose(loss, theta, method='dense')
  approx = diagnostics.diagnose(loss, theta, method='lanczos', num_probes=6, lanczos_steps=60)
  assert float(dense.index) > 0.2
  assert abs(float(approx.index) - float(dense.index)) < 0.1
