"""Mean-field theoretic manifold analysis (MFTMA), batched on the accelerator.

Capacity, radius and dimension of P point-cloud manifolds (Chung, Lee & Sompolinsky,
PRX 2018; Cohen, Chung, Lee & Sompolinsky, Nat. Commun. 2020). Every Gaussian draw of every
manifold is one non-negative least-squares (NNLS) problem of a single batched solver:

  min_v |v - t|^2  s.t.  s_mu . v <= -kappa   <=>   a* = argmin_{a >= 0} |S a - (t + kappa e)|^2,

v = t - S a*, anchor point s~ = S a* / sum(a*), where S: [D+1, M] holds a manifold's points
in its own D-dimensional span plus a constant center coordinate (e = that axis, last).

Pipeline (`manifold_analysis`): global mean subtraction; removal of a low-rank structure
shared by the manifold centers (Stiefel optimisation, `center_subspace`); reduction to S
(`reduce_manifolds`); `anchor_points`; capacity, radius and dimension (`manifold_geometry`).
Every step is pure and jit-compatible; `analyze` chains them for padded arrays.
"""

import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rwjax.errors import InputError

_HI = jax.lax.Precision.HIGHEST  # TF32 matmuls on GPUs would cap the accuracy at ~1e-3.


def _einsum(spec: str, *xs: jax.Array) -> jax.Array:
  return jnp.einsum(spec, *xs, precision=_HI)


def default_tol(dtype) -> float:
  """Relative KKT tolerance of the NNLS solver: 1e-5 in float32, 1e-10 in float64."""
  return 1e-10 if jnp.dtype(dtype) == jnp.float64 else 1e-5


# --------------------------------------------------------------------------- NNLS


def solve_nnls(
    gram_matvec: Callable[[jax.Array], jax.Array],
    b: jax.Array,
    lipschitz: jax.Array,
    *,
    tol: float,
    max_iter: int = 20000,
    check_every: int = 16,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Batched NNLS, min_{a >= 0} a.G a / 2 - b.a, by FISTA with adaptive restart.

  With G = S^T S and b = S^T y this is argmin_{a >= 0} |S a - y|^2. Every problem of the
  batch iterates until the worst relative KKT residual
  max_i |min(L a_i, (G a - b)_i)| / max_i |b_i| is below `tol` (or `max_iter`).

  Args:
    gram_matvec: a: f[..., M] -> G a: f[..., M], batched like `b`.
    b: f[..., M] linear term; coordinates with b = 0 and a zero Gram row stay 0 (padding).
    lipschitz: f[...] (broadcastable to b.shape[:-1]) upper bound of the largest
      eigenvalue of G: the step is 1 / lipschitz.
    tol: relative KKT residual to reach.
    max_iter: iteration cap.
    check_every: iterations between residual checks.

  Returns:
    (a f[..., M], residual f[...] relative KKT residual per problem, iterations i32[]).
  """
  lip = jnp.broadcast_to(lipschitz, b.shape[:-1])[..., None]
  scale = jnp.max(jnp.abs(b), axis=-1) + jnp.finfo(b.dtype).tiny

  def residual(a):
    g = gram_matvec(a) - b
    return jnp.max(jnp.abs(jnp.minimum(lip * a, g)), axis=-1) / scale

  def step(_, carry):
    a, y, theta = carry
    a_new = jax.nn.relu(y - (gram_matvec(y) - b) / lip)
    theta_new = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * theta**2))
    y_new = a_new + ((theta - 1.0) / theta_new)[..., None] * (a_new - a)
    # O'Donoghue & Candes gradient restart: drop the momentum when it points uphill.
    restart = jnp.sum((y - a_new) * (a_new - a), axis=-1) > 0
    return (a_new, jnp.where(restart[..., None], a_new, y_new),
            jnp.where(restart, 1.0, theta_new).astype(theta.dtype))

  def body(state):
    a, y, theta, it, _ = state
    a, y, theta = jax.lax.fori_loop(0, check_every, step, (a, y, theta))
    return a, y, theta, it + check_every, residual(a)

  def cond(state):
    *_, it, res = state
    return (it < max_iter) & (jnp.max(res) > tol)

  a0 = jnp.zeros_like(b)
  a, _, _, it, res = jax.lax.while_loop(
      cond, body, (a0, a0, jnp.ones(b.shape[:-1], b.dtype), jnp.int32(0), residual(a0)))
  return a, res, it


# ------------------------------------------------------------------- anchor points


def anchor_points(
    s: jax.Array,
    t: jax.Array,
    kappa: float | jax.Array = 0.0,
    point_mask: jax.Array | None = None,
    *,
    tol: float | None = None,
    max_iter: int = 20000,
) -> tuple[jax.Array, jax.Array]:
  """Anchor points s~ of every Gaussian draw t of every manifold, all in one solve.

  If max_mu t.s_mu + kappa < 0 (exact test) the draw is interior: v = t, and the anchor
  is the point of largest projection (as in the reference). Otherwise
  a* = argmin_{a >= 0} |S a - (t + kappa e)|^2 and s~ = S a* / sum(a*).

  Args:
    s: f[P, D+1, M] manifolds; row D is the center coordinate (1 for every point).
    t: f[P, T, D+1] Gaussian draws (zero in padded dimensions).
    kappa: margin, >= 0.
    point_mask: bool[P, M], False for padded points (their columns of `s` must be 0).
    tol: relative KKT tolerance (default `default_tol(s.dtype)`).
    max_iter: iteration cap of the solver.

  Returns:
    (anchors f[P, T, D+1], kkt_residual f[P, T]).
  """
  if point_mask is None:
    point_mask = jnp.ones((s.shape[0], s.shape[2]), bool)
  tol = default_tol(s.dtype) if tol is None else tol
  kappa = jnp.asarray(kappa, s.dtype)
  gram = _einsum('pdm,pdn->pmn', s, s)
  proj = _einsum('ptd,pdm->ptm', t, s)
  # S^T e is 1 for real points and 0 for padding, so S^T (t + kappa e) = proj + kappa.
  b = proj + kappa * point_mask[:, None, :].astype(s.dtype)
  lip = jnp.linalg.eigvalsh(gram)[:, -1] * (1 + 1e-3) + jnp.finfo(s.dtype).tiny
  a, res, _ = solve_nnls(
      lambda a: _einsum('ptm,pmn->ptn', a, gram), b, lip[:, None],
      tol=tol, max_iter=max_iter)
  proj = jnp.where(point_mask[:, None, :], proj, -jnp.inf)
  interior = jnp.max(proj, axis=-1) + kappa < 0
  touching = jnp.take_along_axis(
      s, jnp.argmax(proj, axis=-1)[:, None, :], axis=2).transpose(0, 2, 1)
  total = jnp.sum(a, axis=-1)
  use_touching = interior | (total <= 0)
  solved = _einsum('pdm,ptm->ptd', s, a) / jnp.where(use_touching, 1, total)[..., None]
  return jnp.where(use_touching[..., None], touching, solved), res


def manifold_geometry(
    t: jax.Array,
    anchors: jax.Array,
    kappa: float | jax.Array,
    dims: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Capacity, radius and dimension of each manifold from its anchor points.

  alpha_M^-1 = mean_t [t.s~ + kappa]_+^2 / |s~|^2,
  R_M = sqrt(mean_t |(s~_{1:D} - mean_t s~_{1:D}) / s~_{D+1}|^2),
  D_M = D (mean_t t^.s^)^2 with t^, s^ the unit vectors of t_{1:D} and s~_{1:D}.

  Args:
    t: f[P, T, D+1] draws; anchors: f[P, T, D+1]; kappa: margin.
    dims: i[P] the dimension D of each manifold (padded rows are zero in t and anchors).

  Returns:
    (alpha_M f[P], radius_M f[P], dimension_M f[P]).
  """
  field = jnp.sum(t * anchors, axis=-1) + kappa
  inv_alpha = jnp.mean(jax.nn.relu(field)**2 / jnp.sum(anchors**2, axis=-1), axis=-1)
  s_d, s_c = anchors[..., :-1], anchors[..., -1:]
  ds = (s_d - jnp.mean(s_d, axis=1, keepdims=True)) / s_c
  radius = jnp.sqrt(jnp.mean(jnp.sum(ds**2, axis=-1), axis=-1))

  def unit(x):  # a zero vector (a manifold of one point) stays zero
    norm = jnp.linalg.norm(x, axis=-1, keepdims=True)
    return x / jnp.where(norm > 0, norm, 1)

  cos = jnp.sum(unit(t[..., :-1]) * unit(s_d), axis=-1)
  dimension = dims * jnp.mean(cos, axis=-1)**2
  return 1.0 / inv_alpha, radius, dimension


# ---------------------------------------------------------------- center subspace


def _mean_abs_offdiag_cos(x: jax.Array) -> jax.Array:
  """Mean |cos| over the off-diagonal pairs of the columns of x: f[d, P]."""
  xn = x / (jnp.linalg.norm(x, axis=0, keepdims=True) + jnp.finfo(x.dtype).tiny)
  cos = _einsum('dp,dq->pq', xn, xn)
  p = x.shape[1]
  return (jnp.sum(jnp.abs(cos)) - jnp.sum(jnp.abs(jnp.diag(cos)))) / (p * (p - 1))


def _residual(v: jax.Array, x: jax.Array) -> jax.Array:
  return x - _einsum('dk,kp->dp', v, _einsum('dk,dp->kp', v, x))


def _square_cos_cost(v: jax.Array, x: jax.Array) -> jax.Array:
  """Mean squared off-diagonal cosine of the residuals (I - V V^T) x_i."""
  x0 = _residual(v, x)
  sq = jnp.sum(x0**2, axis=0) + jnp.finfo(x.dtype).tiny
  cos2 = _einsum('dp,dq->pq', x0, x0)**2 / (sq[:, None] * sq[None, :])
  p = x.shape[1]
  return (jnp.sum(cos2) - jnp.sum(jnp.diag(cos2))) / (p * (p - 1))


def _polar(a: jax.Array, iters: int = 12) -> jax.Array:
  """Orthonormal polar factor of a: f[d, k] near the Stiefel manifold (Newton-Schulz).

  Only matmuls: linear solves and QR run slowly inside XLA loops on CPU. The input is
  scaled so that its largest singular value is <= 1, then every iteration
  x <- x (3 I - x^T x) / 2 pushes all singular values to 1; zero columns stay zero.
  """
  gram = _einsum('dk,dl->kl', a, a)
  bound = jnp.max(jnp.sum(jnp.abs(gram), axis=1))  # >= largest eigenvalue of the Gram
  x = a / jnp.sqrt(bound + jnp.finfo(a.dtype).tiny)

  def body(_, x):
    return 1.5 * x - 0.5 * _einsum('dk,kl->dl', x, _einsum('dk,dl->kl', x, x))
  return jax.lax.fori_loop(0, iters, body, x)


def _fit_stiefel(v0: jax.Array, x: jax.Array, steps: int) -> jax.Array:
  """Riemannian gradient descent on the Stiefel manifold with the polar retraction.

  Minimises `_square_cos_cost` over the nonzero columns of v0: f[d, k] (orthonormal;
  zero columns stay zero). Adaptive step: grow it after a decrease, halve it and reject
  after an increase.
  """
  cost = functools.partial(_square_cos_cost, x=x)

  def step(_, carry):
    v, f, lr = carry
    g = jax.grad(cost)(v)
    sym = _einsum('dk,dl->kl', v, g)
    rgrad = g - _einsum('dk,kl->dl', v, 0.5 * (sym + sym.T))
    v_new = _polar(v - lr * rgrad)
    f_new = cost(v_new)
    # A step so long that the polar iteration did not converge is rejected as well.
    gram = _einsum('dk,dl->kl', v_new, v_new)
    ortho_err = jnp.max(jnp.abs(gram - jnp.diag(jnp.round(jnp.diag(gram)))))
    better = (f_new < f) & (ortho_err < 1e-4)
    return (jnp.where(better, v_new, v), jnp.where(better, f_new, f),
            jnp.where(better, lr * 1.5, lr * 0.5))

  v, _, _ = jax.lax.fori_loop(
      0, steps, step, (v0, cost(v0), jnp.asarray(1.0, v0.dtype)))
  return _polar(v, iters=2)  # orthonormal to rounding


def center_subspace(
    centers: jax.Array,
    key: jax.Array,
    *,
    restarts: int = 5,
    steps: int = 100,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Low-rank structure shared by the manifold centers (Cohen et al. 2020).

  For K = 1, 2, ... an orthonormal V: [N, K] minimising the mean squared cosine between
  the residual centers (I - V V^T) c_i (warm start from the best V of K - 1 plus one
  random column, `restarts` random draws of that column, best final cost kept). K runs
  up to (number of center PCA components below 95% cumulative variance) + 10, capped at
  P - 2 and at the centers' rank - 1, and stops when the mean |off-diagonal cosine| of
  the residuals rose three times in a row. The K with the lowest such cost is returned.

  Args:
    centers: f[P, N] manifold centers (global mean already subtracted).
    key: PRNG key.
    restarts: random restarts per K.
    steps: optimisation steps per restart.

  Returns:
    (v f[N, P] whose first K columns span the removed subspace, the rest 0,
     K i32[], center_corr f[] mean |cos| between the mean-subtracted centers).
  """
  p, _ = centers.shape
  dtype = centers.dtype
  xb = centers - jnp.mean(centers, axis=0)  # [P, N]
  rho_c = _mean_abs_offdiag_cos(xb.T)
  # Work in the P-dimensional coordinates of the centers' span, from their Gram matrix:
  # x = Lambda^1/2 W^T has the same Gram, and every V below stays in its column span.
  lam, w = jnp.linalg.eigh(_einsum('pn,qn->pq', xb, xb))
  lam, w = jnp.maximum(lam[::-1], 0), w[:, ::-1]
  rank = jnp.sum(lam > lam[0] * jnp.finfo(dtype).eps * p)
  keep = jnp.arange(p) < rank
  x = jnp.where(keep, jnp.sqrt(lam), 0)[:, None] * w.T  # [P, P]
  var = jnp.cumsum(lam) / jnp.sum(lam)
  max_k = jnp.minimum(jnp.sum(var < 0.95) + 10, jnp.minimum(p - 2, rank - 1))
  cols = jnp.arange(p)

  def fit(k, v_prev, key):
    """Best V with k columns, warm-started from v_prev (k - 1 columns)."""
    def one(key):
      fresh = x @ jax.random.normal(key, (p,), dtype)  # in the span of the centers
      fresh = fresh - v_prev @ (v_prev.T @ fresh)
      fresh = fresh / jnp.linalg.norm(fresh)
      v0 = jnp.where(cols == k - 1, fresh[:, None], v_prev)
      return _fit_stiefel(v0, x, steps)
    vs = jax.vmap(one)(jax.random.split(key, restarts))
    best = vs[jnp.argmin(jax.vmap(lambda v: _square_cos_cost(v, x))(vs))]
    return best, _mean_abs_offdiag_cos(_residual(best, x))

  def cond(state):
    k, *_, rises = state
    return (k <= max_k) & (rises < 3)

  def body(state):
    k, v_prev, best_v, best_k, best_c, prev_c, rises = state
    v, c = fit(k, v_prev, jax.random.fold_in(key, k))
    better = c < best_c
    return (k + 1, v, jnp.where(better, v, best_v), jnp.where(better, k, best_k),
            jnp.minimum(c, best_c), c, jnp.where(c > prev_c, rises + 1, 0))

  v_init = jnp.zeros((p, p), dtype)
  inf = jnp.asarray(jnp.inf, dtype)
  _, _, best_v, best_k, *_ = jax.lax.while_loop(
      cond, body, (jnp.int32(1), v_init, v_init, jnp.int32(0), inf, inf, jnp.int32(0)))
  # Back to feature space: the span coordinates of x are xb^T W Lambda^-1/2.
  inv_sqrt = jnp.where(keep, 1 / jnp.sqrt(jnp.where(keep, lam, 1)), 0)
  basis = _einsum('pn,pq->nq', xb, w * inv_sqrt[None, :])  # [N, P] orthonormal columns
  return _einsum('nq,qk->nk', basis, best_v), best_k, rho_c


# ------------------------------------------------------------------ reduction


def reduce_manifolds(
    points: jax.Array,
    mask: jax.Array,
    v: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Per manifold: project off V, center, scale by |center|, reduce to its span.

  The reduced coordinates come from the eigendecomposition of each manifold's M x M
  Gram matrix (the analysis is invariant to rotations of the D coordinates).

  Args:
    points: f[P, M, N] (global mean subtracted); mask: bool[P, M] real points;
    v: f[N, K] orthonormal (or zero) columns to project off.

  Returns:
    (s f[P, D+1, M] with D = min(N, M) and row D the center coordinate (padded points
     are zero columns, padded dimensions zero rows), row_mask bool[P, D+1], dims i32[P]).
  """
  p, m, n = points.shape
  fm = mask.astype(points.dtype)[..., None]
  x = points - _einsum('pmk,nk->pmn', _einsum('pmn,nk->pmk', points, v), v)
  center = jnp.sum(x * fm, axis=1) / jnp.sum(fm, axis=1)
  norm = jnp.linalg.norm(center, axis=-1)
  y = (x - center[:, None, :]) * fm / norm[:, None, None]
  lam, u = jnp.linalg.eigh(_einsum('pmn,pkn->pmk', y, y))
  d = min(n, m)
  lam, u = lam[:, ::-1][:, :d], u[:, :, ::-1][:, :, :d]  # largest first
  dims = jnp.minimum(jnp.sum(mask, axis=1), n).astype(jnp.int32)
  row_mask = jnp.concatenate(
      [jnp.arange(d)[None, :] < dims[:, None], jnp.ones((p, 1), bool)], axis=1)
  r = jnp.sqrt(jnp.maximum(lam, 0))[..., None] * jnp.swapaxes(u, 1, 2)  # [P, D, M]
  s = jnp.concatenate([r, jnp.ones((p, 1, m), points.dtype)], axis=1)
  s = s * row_mask[..., None] * mask[:, None, :]
  return s, row_mask, dims


# ------------------------------------------------------------------ the analysis


@functools.partial(jax.jit, static_argnames=('n_t', 'center_restarts', 'center_steps',
                                              'max_iter'))
def analyze(
    points: jax.Array,
    mask: jax.Array,
    kappa: float | jax.Array,
    key: jax.Array,
    *,
    n_t: int = 200,
    tol: float | None = None,
    max_iter: int = 20000,
    center_restarts: int = 5,
    center_steps: int = 100,
) -> dict[str, jax.Array]:
  """`manifold_analysis` (its arguments and results, as jax arrays) on padded points
  f[P, M, N] with mask bool[P, M] (>= 1 real point per manifold), unvalidated (jitted)."""
  key_v, key_t = jax.random.split(key)
  fm = mask.astype(points.dtype)[..., None]
  origin = jnp.sum(points * fm, axis=(0, 1)) / jnp.sum(fm)
  points = (points - origin) * fm
  centers = jnp.sum(points, axis=1) / jnp.sum(fm, axis=1)
  v, k, rho_c = center_subspace(
      centers, key_v, restarts=center_restarts, steps=center_steps)
  s, row_mask, dims = reduce_manifolds(points, mask, v)
  t = jax.random.normal(key_t, (s.shape[0], n_t, s.shape[1]), s.dtype)
  t = t * row_mask[:, None, :]
  anchors, res = anchor_points(s, t, kappa, mask, tol=tol, max_iter=max_iter)
  alpha_m, radius_m, dim_m = manifold_geometry(t, anchors, kappa, dims)
  return dict(
      alpha_M=alpha_m, radius_M=radius_m, dimension_M=dim_m,
      alpha=1.0 / jnp.mean(1.0 / alpha_m), radius=jnp.mean(radius_m),
      dimension=jnp.mean(dim_m), center_corr=rho_c, K=k,
      solver_residual=jnp.max(res))


def pad_manifolds(
    manifolds: Sequence[np.ndarray] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
  """Validates manifolds and pads them into one array.

  Args:
    manifolds: a list of P arrays [M_i, N] or one array [P, M, N]; float values.

  Returns:
    (points f[P, max M_i, N] with zeros after each manifold's points, mask bool[P, M]).
  """
  if isinstance(manifolds, (list, tuple)):
    arrays = [np.asarray(m) for m in manifolds]
    for i, m in enumerate(arrays):
      if m.ndim != 2:
        raise InputError(f'manifold {i} has shape {m.shape}; each manifold must be a '
                         '2-D array [M_i points, N features]')
  else:
    arr = np.asarray(manifolds)
    if arr.ndim != 3:
      raise InputError(f'manifolds array has shape {arr.shape}; pass one array '
                       '[P, M, N] or a list of P arrays [M_i, N]')
    arrays = list(arr)
  if len(arrays) < 2:
    raise InputError(f'got {len(arrays)} manifold(s); the analysis needs P >= 2')
  widths = {m.shape[1] for m in arrays}
  if len(widths) != 1:
    raise InputError(f'manifolds have different feature sizes {sorted(widths)}; all '
                     'points must live in the same N-dimensional space')
  sizes = [m.shape[0] for m in arrays]
  if min(sizes) < 1:
    raise InputError('a manifold has no points (M_i = 0); every manifold needs M >= 1')
  for i, m in enumerate(arrays):
    if not np.issubdtype(m.dtype, np.number) or not np.all(np.isfinite(m)):
      raise InputError(f'manifold {i} has non-finite or non-numeric values; remove '
                       'NaN/inf features before the analysis')
  n, m_max = widths.pop(), max(sizes)
  dtype = np.result_type(*[m.dtype for m in arrays], np.float32)
  points = np.zeros((len(arrays), m_max, n), dtype)
  for i, m in enumerate(arrays):
    points[i, :len(m)] = m
  return points, np.arange(m_max) < np.asarray(sizes)[:, None]


def manifold_analysis(
    manifolds: Sequence[np.ndarray] | np.ndarray,
    *,
    kappa: float = 0.0,
    n_t: int = 200,
    key: jax.Array,
    tol: float | None = None,
    max_iter: int = 20000,
    center_restarts: int = 5,
    center_steps: int = 100,
) -> dict:
  """Mean-field manifold capacity, radius and dimension of P manifolds.

  Args:
    manifolds: a list of P arrays [M_i, N] or one array [P, M, N] (P >= 2, M_i >= 1,
      finite). float64 input is analysed in float64 when jax_enable_x64 is on.
    kappa: margin (>= 0).
    n_t: Gaussian draws per manifold (the Monte-Carlo error of alpha is about
      2.24 / sqrt(P n_t) relative).
    key: PRNG key (raw u32[2]).
    tol: relative KKT tolerance of the NNLS solver (default 1e-5 float32, 1e-10 float64).
    max_iter: iteration cap of the solver (check `solver_residual` against `tol`).
    center_restarts, center_steps: Stiefel optimisation of the center subspace.

  Returns:
    dict: alpha_M, radius_M, dimension_M (np.ndarray [P]); alpha (1 / mean(1 / alpha_M)),
    radius, dimension (means), center_corr (mean |cos| between centers), solver_residual
    (worst relative KKT residual): floats; K (removed center directions): int.
  """
  if not np.isfinite(kappa) or kappa < 0:
    raise InputError(f'kappa = {kappa}; the margin must be a finite number >= 0')
  if int(n_t) < 1:
    raise InputError(f'n_t = {n_t}; use at least one Gaussian draw per manifold')
  points, mask = pad_manifolds(manifolds)
  out = analyze(jnp.asarray(points), jnp.asarray(mask), kappa, key, n_t=int(n_t), tol=tol,
                max_iter=max_iter, center_restarts=center_restarts,
                center_steps=center_steps)
  out = jax.device_get(out)
  result = {k: np.asarray(out[k]) for k in ('alpha_M', 'radius_M', 'dimension_M')}
  result.update({k: float(out[k]) for k in ('alpha', 'radius', 'dimension', 'center_corr',
                                            'solver_residual')})
  result['K'] = int(out['K'])
  return result
