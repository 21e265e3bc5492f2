"""Simulated (direct numerical) manifold capacity: the checks of the mean-field theory.

A trial projects the P manifolds to n random dimensions, gives every manifold a balanced
random +-1 label and asks whether a hyperplane with a bias separates all points. The points
z_i = y_i [x_i; 1] are separable iff the origin is outside their convex hull, i.e. iff

  a* = argmin_{a >= 0} |S a - e|^2,  S = [z_1 .. z_K; 1 .. 1],  e = (0, .., 0, 1)

leaves a residual v = e - S a* != 0; then u = -v_{1:n+1} (weights and bias) gives every
point the margin z_i . u >= |v|^2 > 0, a certificate checked exactly. All trials run as one
batch of the solver of `rwjax.eval.capacity`. N_c is the smallest n whose separable fraction
is >= 0.5 (scan by doubling, then bisection); the simulated capacity is alpha_c = P / N_c.
"""

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rwjax.errors import InputError
from rwjax.eval.capacity import default_tol, pad_manifolds, solve_nnls

_HI = jax.lax.Precision.HIGHEST


def _power_lipschitz(s: jax.Array, key: jax.Array, iters: int = 50) -> jax.Array:
  """Upper estimate of the largest eigenvalue of S^T S (power iteration, 10% margin)."""
  x = jax.random.normal(key, s.shape[-1:], s.dtype)

  def body(_, x):
    y = jnp.dot(s.T, jnp.dot(s, x, precision=_HI), precision=_HI)
    return y / jnp.linalg.norm(y)
  x = jax.lax.fori_loop(0, iters, body, x)
  return 1.1 * jnp.linalg.norm(jnp.dot(s, x, precision=_HI))**2


def _is_separable(points, mask, labels, proj, key, tol, max_iter):
  """One trial. points f[K, N]; mask bool[K]; labels f[K] (+-1); proj f[N, n_max]."""
  x = jnp.dot(points, proj, precision=_HI)
  # Unit RMS norm, so that the bias and e coordinates are on the data's scale.
  fm = mask.astype(x.dtype)
  x = x / jnp.sqrt(jnp.sum(jnp.sum(x**2, -1) * fm) / jnp.sum(fm))
  z = (labels * fm)[:, None] * jnp.concatenate([x, jnp.ones_like(x[:, :1])], axis=1)
  s = jnp.concatenate([z, fm[:, None]], axis=1).T  # [n_max + 2, K]
  lip = _power_lipschitz(s, key)
  a, _, _ = solve_nnls(
      lambda a: jnp.dot(jnp.dot(a, s.T, precision=_HI), s, precision=_HI), fm, lip,
      tol=tol, max_iter=max_iter)
  u = -(jnp.zeros(s.shape[0], s.dtype).at[-1].set(1) - jnp.dot(s, a, precision=_HI))[:-1]
  margins = jnp.where(mask, jnp.dot(z, u, precision=_HI), jnp.inf)
  # Margins within rounding of zero do not count as a certificate.
  floor = 10 * jnp.finfo(s.dtype).eps * jnp.linalg.norm(u) * jnp.max(jnp.abs(z))
  return jnp.min(margins) > floor


@functools.partial(jax.jit, static_argnames=('n_trials', 'n_max', 'max_iter'))
def separable_fraction(
    points: jax.Array,
    mask: jax.Array,
    n: jax.Array,
    key: jax.Array,
    *,
    n_trials: int,
    n_max: int,
    tol: float | None = None,
    max_iter: int = 5000,
) -> jax.Array:
  """Fraction of `n_trials` random projections + labelings that are separable.

  Args:
    points: f[P, M, N] manifolds (global mean subtracted); mask: bool[P, M] real points.
    n: i32[] projection dimension, 1 <= n <= n_max (dimensions >= n are zeroed, so one
      compilation serves every n up to n_max).
    key: PRNG key; n_trials, n_max, tol, max_iter: see `simulated_capacity`.

  Returns:
    f[] separable fraction.
  """
  p, m, big_n = points.shape
  tol = default_tol(points.dtype) if tol is None else tol
  flat, flat_mask = points.reshape(p * m, big_n), mask.reshape(p * m)
  base = jnp.where(jnp.arange(p) < (p + 1) // 2, 1.0, -1.0).astype(points.dtype)

  def trial(key):
    k_proj, k_lab, k_pow = jax.random.split(key, 3)
    proj = jax.random.normal(k_proj, (big_n, n_max), points.dtype) / np.sqrt(big_n)
    proj = proj * (jnp.arange(n_max) < n)
    labels = jnp.repeat(jax.random.permutation(k_lab, base), m)
    return _is_separable(flat, flat_mask, labels, proj, k_pow, tol, max_iter)

  return jnp.mean(jax.vmap(trial)(jax.random.split(key, n_trials)).astype(jnp.float32))


def simulated_capacity(
    manifolds: Sequence[np.ndarray] | np.ndarray,
    *,
    key: jax.Array,
    n_trials: int = 50,
    n_min: int | None = None,
    n_max: int | None = None,
    tol: float | None = None,
    max_iter: int = 5000,
) -> dict:
  """Simulated capacity alpha_c = P / N_c of P manifolds.

  Args:
    manifolds: a list of P arrays [M_i, N] or one array [P, M, N] (P >= 2).
    key: PRNG key; the trials at dimension n use fold_in(key, n).
    n_trials: random projections and labelings per n.
    n_min: first n of the doubling scan (default max(1, P // 2 - 1): manifolds never
      beat the capacity 2 of points).
    n_max: largest n tried (default min(N, number of points)); if even n_max is
      separable in less than half of the trials, n_c and alpha_c are NaN.
    tol, max_iter: NNLS solver settings.

  Returns:
    dict: alpha_c (float), n_c (int or NaN), P (int), n_trials, curve {'n': [...],
    'fraction': [...]} of every evaluated n, sorted by n.
  """
  if int(n_trials) < 1:
    raise InputError(f'n_trials = {n_trials}; use at least one trial per dimension')
  points, mask = pad_manifolds(manifolds)
  p, _, big_n = points.shape
  n_max = int(min(big_n, mask.sum())) if n_max is None else int(n_max)
  n_min = max(1, p // 2 - 1) if n_min is None else int(n_min)
  if not 1 <= n_min <= n_max:
    raise InputError(f'n_min = {n_min}, n_max = {n_max}; need 1 <= n_min <= n_max')
  fm = mask[..., None]
  points = (points - (points * fm).sum((0, 1)) / fm.sum()) * fm
  points, mask_j = jnp.asarray(points), jnp.asarray(mask)
  curve = {}

  def fraction(n):
    if n not in curve:
      width = min(n_max, 1 << (n - 1).bit_length())  # few compilations, little padding
      curve[n] = float(separable_fraction(
          points, mask_j, jnp.int32(n), jax.random.fold_in(key, n), n_trials=int(n_trials),
          n_max=width, tol=tol, max_iter=max_iter))
    return curve[n]

  lo, hi = 0, n_min  # once found: fraction(lo) < 0.5 <= fraction(hi); n = 0 never is
  while fraction(hi) < 0.5 and hi < n_max:
    lo, hi = hi, min(2 * hi, n_max)
  found = fraction(hi) >= 0.5
  while found and hi - lo > 1:
    mid = (lo + hi) // 2
    lo, hi = (lo, mid) if fraction(mid) >= 0.5 else (mid, hi)
  n_c = hi if found else float('nan')
  ns = sorted(curve)
  return dict(alpha_c=p / n_c, n_c=n_c, P=p, n_trials=int(n_trials),
              curve={'n': ns, 'fraction': [curve[n] for n in ns]})
