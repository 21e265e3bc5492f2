"""Mean-field manifold analysis against values from theory (Chung, Lee & Sompolinsky 2018)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, optimize, special, stats

from rwjax.errors import InputError
from rwjax.eval import capacity as cap


def _ball_field_sq(t: np.ndarray, radius: float, kappa: float) -> np.ndarray:
  """Exact |v - t|^2 of each draw t: [..., D+1] for the L2 ball of `radius`, center 1."""
  r = np.linalg.norm(t[..., :-1], axis=-1)
  h = t[..., -1] + kappa
  touch = (h > -radius * r) & (h <= r / radius)
  return np.where(touch, (radius * r + h)**2 / (1 + radius**2),
                  np.where(h > r / radius, r**2 + h**2, 0.0))


def _chi_moment(dim: int, k: int, lo: float, hi: float) -> float:
  """E[r^k ; lo < r < hi] for r ~ chi_D, by the regularised incomplete gamma function."""
  a = (dim + k) / 2
  scale = 2**(k / 2) * np.exp(special.gammaln(a) - special.gammaln(dim / 2))
  return scale * (special.gammainc(a, hi**2 / 2) - special.gammainc(a, lo**2 / 2))


def _ball_capacity(dim: int, radius: float, kappa: float = 0.0) -> float:
  """alpha_Ball(kappa, R, D) by quadrature over t_0 ~ N(0, 1) (|t_{1:D}| ~ chi_D exact)."""
  def field(t0):
    h = t0 + kappa
    lo = max(0.0, -h / radius, h * radius)  # touching regime: r > lo
    touch = (radius**2 * _chi_moment(dim, 2, lo, np.inf)
             + 2 * radius * h * _chi_moment(dim, 1, lo, np.inf)
             + h**2 * _chi_moment(dim, 0, lo, np.inf)) / (1 + radius**2)
    embed = 0.0
    if h > 0:  # fully embedded: r < h R
      embed = _chi_moment(dim, 2, 0, h * radius) + h**2 * _chi_moment(dim, 0, 0, h * radius)
    return stats.norm.pdf(t0) * (touch + embed)
  return 1.0 / integrate.quad(field, -np.inf, np.inf, limit=200, epsabs=1e-12)[0]


def _geometry(s, t, kappa, dims, mask=None):
  anchors, res = cap.anchor_points(jnp.asarray(s), jnp.asarray(t), kappa,
                                   None if mask is None else jnp.asarray(mask))
  out = cap.manifold_geometry(jnp.asarray(t), anchors, kappa, jnp.asarray(dims))
  return [np.asarray(o) for o in out] + [float(jnp.max(res))]


def _alpha0(kappa):
  return 1 / ((1 + kappa**2) * stats.norm.cdf(kappa) + kappa * stats.norm.pdf(kappa))


def test_ball_quadrature_reproduces_known_values():
  for dim in (1, 2, 5, 10):
    assert _ball_capacity(dim, 1.0) == pytest.approx(2 / (dim + 1), rel=1e-6)
  for radius, alpha in [(0.1, 1.7748), (0.3, 1.4587), (0.6, 1.1848)]:
    assert _ball_capacity(1, radius) == pytest.approx(alpha, abs=1e-4)
  assert _ball_capacity(3, 1e-6, kappa=1.0) == pytest.approx(_alpha0(1.0), rel=1e-5)
  # The per-draw closed form used below averages to the quadrature.
  t = np.random.default_rng(0).standard_normal((400_000, 4))
  for radius, kappa in [(0.5, 0.0), (2.0, 0.5)]:
    mc = 1 / _ball_field_sq(t, radius, kappa).mean()
    assert mc == pytest.approx(_ball_capacity(3, radius, kappa), rel=0.01)


@pytest.mark.parametrize('kappa, alpha', [(0.0, 2.0), (1.0, 0.519572)])
def test_single_points(kappa, alpha):
  assert _alpha0(kappa) == pytest.approx(alpha, rel=1e-5)
  t = stats.norm.ppf((np.arange(4000) + 0.5) / 4000)[None, :, None]
  a, r, d, res = _geometry(np.ones((1, 1, 1)), t, kappa, [0])
  assert a[0] == pytest.approx(alpha, rel=1e-3)
  assert r[0] == 0 and d[0] == 0 and res <= 1e-5


def test_segments_capacity_and_dimension_in_float32_and_float64():
  # Deterministic 2-D 'draws' for kappa = 0, where every field is homogeneous of degree 2
  # in t: E f(t) = E|t|^2 mean_theta f(unit(theta)), so n equally spaced directions of norm
  # sqrt(2) give the Gaussian mean up to the midpoint rule's error.
  theta = 2 * np.pi * (np.arange(20000) + 0.5) / 20000
  t = np.broadcast_to(np.sqrt(2) * np.stack([np.cos(theta), np.sin(theta)], -1), (4, 20000, 2))
  segments = lambda radii: np.stack([[[r, -r], [1.0, 1.0]] for r in radii])  # [R, D+1, M=2]
  a, _, d, res = _geometry(segments([0.1, 0.3, 0.6, 1.0]), t, 0.0, [1] * 4)
  np.testing.assert_allclose(a, [1.7748, 1.4587, 1.1848, 1.0], rtol=1e-3)
  np.testing.assert_allclose(d, 1.0, rtol=1e-6)
  assert res <= 1e-5
  radii = [0.1, 1.0]
  s = segments(radii)
  t = np.random.default_rng(8).standard_normal((2, 5000, 2))
  with jax.enable_x64(True):
    anchors, res = cap.anchor_points(jnp.asarray(s), jnp.asarray(t), 0.5)
    assert anchors.dtype == jnp.float64 and float(jnp.max(res)) <= 1e-10
    a64 = np.asarray(cap.manifold_geometry(jnp.asarray(t), anchors, 0.5, jnp.ones(2))[0])
  a32 = _geometry(s.astype(np.float32), t.astype(np.float32), 0.5, [1, 1])[0]
  exact = [1 / _ball_field_sq(t[i], r, 0.5).mean() for i, r in enumerate(radii)]
  np.testing.assert_allclose(a64, exact, rtol=1e-9)
  np.testing.assert_allclose(a32, a64, rtol=1e-4)


def test_sampled_circles_approach_two_thirds_from_above_and_points_in_a_ball_exceed_it():
  # Regular polygons with 4, 8, ..., 64 vertices are nested, and every size sees the
  # same draws, so capacities decrease exactly and stay above the disk's.
  sizes = [4, 8, 16, 32, 64]
  s = np.zeros((len(sizes), 3, max(sizes)))
  mask = np.zeros((len(sizes), max(sizes)), bool)
  for i, m in enumerate(sizes):
    phi = 2 * np.pi * np.arange(m) / m
    s[i, :, :m] = [np.cos(phi), np.sin(phi), np.ones(m)]
    mask[i, :m] = True
  t = np.random.default_rng(1).standard_normal((1000, 3))
  a, _, _, res = _geometry(s, np.broadcast_to(t, (len(sizes),) + t.shape), 0.0,
                           [2] * len(sizes), mask)
  disk = 1 / _ball_field_sq(t, 1.0, 0.0).mean()
  assert np.all(np.diff(a) < 0) and np.all(a > disk * (1 - 1e-4))
  assert a[-1] == pytest.approx(disk, rel=5e-3)
  assert res <= 1e-5
  dim, m, radius = 8, 40, 1.5
  rng = np.random.default_rng(3)
  u = rng.standard_normal((dim, m))
  pts = radius * u / np.linalg.norm(u, axis=0) * rng.uniform(0.3, 1.0, m)
  s = np.concatenate([pts, np.ones((1, m))])[None]
  t = rng.standard_normal((1, 800, dim + 1))
  a = _geometry(s, t, 0.0, [dim])[0]
  assert a[0] >= 1 / _ball_field_sq(t[0], radius, 0.0).mean()


@pytest.mark.parametrize('kappa', [0.0, 0.5])
def test_sampled_balls_match_ball_capacity(kappa):
  # A dense Fibonacci sampling of the 2-sphere spans nearly the whole 3-ball.
  m = 120
  z = 1 - 2 * (np.arange(m) + 0.5) / m
  phi = np.pi * (3 - np.sqrt(5)) * np.arange(m)
  sphere = np.stack([np.sqrt(1 - z**2) * np.cos(phi), np.sqrt(1 - z**2) * np.sin(phi), z])
  radii = [0.5, 2.0]
  s = np.stack([np.concatenate([r * sphere, np.ones((1, m))]) for r in radii])
  t = np.random.default_rng(2).standard_normal((500, 4))
  a, _, _, res = _geometry(s, np.broadcast_to(t, (2,) + t.shape), kappa, [3, 3])
  for alpha, radius in zip(a, radii):
    ball = 1 / _ball_field_sq(t, radius, kappa).mean()
    assert ball * (1 - 1e-4) < alpha < ball * 1.04
  assert res <= 1e-5


def test_solver_matches_scipy_nnls_loop_and_center_subspace_finds_a_shared_direction():
  rng = np.random.default_rng(4)
  x = rng.standard_normal((6, 12, 200)).astype(np.float32)
  x -= x.mean((0, 1))
  mask = jnp.ones((6, 12), bool)
  s, row_mask, dims = cap.reduce_manifolds(jnp.asarray(x), mask, jnp.zeros((200, 1)))
  t = jax.random.normal(jax.random.PRNGKey(0), (6, 100, s.shape[1])) * row_mask[:, None]
  kappa = 0.2
  ours = _geometry(s, t, kappa, dims)[:3]
  s64, t64 = np.asarray(s, np.float64), np.asarray(t, np.float64)
  anchors = np.zeros_like(t64)
  for p in range(6):
    for i in range(100):
      proj = t64[p, i] @ s64[p]
      if proj.max() + kappa < 0:
        anchors[p, i] = s64[p][:, proj.argmax()]
      else:
        target = t64[p, i] + kappa * np.eye(s64.shape[1])[-1]
        a = optimize.nnls(s64[p], target)[0]
        anchors[p, i] = s64[p] @ a / a.sum()
  ref = cap.manifold_geometry(jnp.asarray(t), jnp.asarray(anchors, jnp.float32), kappa, dims)
  for o, r in zip(ours, ref):
    np.testing.assert_allclose(o, np.asarray(r), rtol=1e-3)
  rng = np.random.default_rng(7)
  shared = rng.standard_normal(60)
  shared /= np.linalg.norm(shared)
  centers = rng.standard_normal((12, 60)) + 20 * rng.standard_normal((12, 1)) * shared
  centers -= centers.mean(0)
  v, k, rho = cap.center_subspace(jnp.asarray(centers, jnp.float32), jax.random.PRNGKey(0))
  v = np.asarray(v)[:, :int(k)]
  np.testing.assert_allclose(v.T @ v, np.eye(int(k)), atol=1e-4)
  assert np.linalg.norm(v.T @ shared) > 0.95
  resid = centers - centers @ v @ v.T
  unit = resid / np.linalg.norm(resid, axis=1, keepdims=True)
  assert np.abs(unit @ unit.T)[~np.eye(12, dtype=bool)].mean() < 0.5 * float(rho)


def test_random_gaussian_manifolds_single_points_and_unequal_sizes():
  # P=100, N=5000, M=50: alpha ~ 0.04 (MC error 2.24/sqrt(P n_t) = 1.6%), R ~ 1.47, D ~ 36.
  x = np.random.default_rng(5).standard_normal((100, 50, 5000)).astype(np.float32)
  out = cap.manifold_analysis(x, kappa=0.0, n_t=200, key=jax.random.PRNGKey(0))
  assert out['alpha'] == pytest.approx(0.04, rel=0.05)
  assert out['radius'] == pytest.approx(1.47, rel=0.02)
  assert out['dimension'] == pytest.approx(36, rel=0.03)
  assert out['alpha_M'].shape == (100,) and out['K'] >= 1
  assert out['solver_residual'] <= 1e-5
  rng = np.random.default_rng(6)
  points = [rng.standard_normal((1, 30)) for _ in range(40)]
  out = cap.manifold_analysis(points, n_t=200, key=jax.random.PRNGKey(1))
  assert out['alpha'] == pytest.approx(2.0, rel=0.08)  # 3 sigma of MC over 8000 draws
  np.testing.assert_array_equal(out['radius_M'], 0)
  np.testing.assert_array_equal(out['dimension_M'], 0)
  mixed = [rng.standard_normal((m, 30)) + 3 * rng.standard_normal(30) for m in (1, 3, 7, 7)]
  out = cap.manifold_analysis(mixed, n_t=50, key=jax.random.PRNGKey(2))
  assert all(np.all(np.isfinite(out[k])) for k in ('alpha_M', 'radius_M', 'dimension_M'))
  assert out['dimension_M'][0] == 0 and out['dimension_M'][3] > 0


@pytest.mark.parametrize('manifolds, kwargs', [
    (np.zeros((3, 4)), {}),
    ([np.zeros((4, 5))], {}),
    ([np.zeros((4, 5)), np.zeros((0, 5))], {}),
    ([np.zeros((4, 5)), np.zeros((4, 6))], {}),
    ([np.ones((4, 5)), np.full((4, 5), np.nan)], {}),
    (np.ones((2, 4, 5)), {'kappa': -1.0}),
])
def test_bad_input_raises(manifolds, kwargs):
  with pytest.raises(InputError):
    cap.manifold_analysis(manifolds, key=jax.random.PRNGKey(0), **kwargs)
