"""Whole-representation dimensionality: participation ratio and principal components for 90%.

For K points x_i f[N] of a layer (every manifold's points pooled), with the global mean
removed, let lambda_1 >= lambda_2 >= ... be the eigenvalues of their covariance. Then
  participation ratio PR = (sum_i lambda_i)^2 / sum_i lambda_i^2,
  pcs(f) = the smallest k with (lambda_1 + .. + lambda_k) / sum_i lambda_i >= f (f = 0.9).
The eigenvalues come from the smaller Gram matrix (K x K or N x N) on the device, in float32
at the highest matmul precision. How the paper's MFTMA package differs: docs/evaluation.md,
'The paper's code and this one'.
"""

import jax
import jax.numpy as jnp
import numpy as np

from rwjax.errors import InputError

VARIANCE = 0.9  # The paper's perc.


@jax.jit
def spectrum(points: jax.Array) -> jax.Array:
  """Covariance eigenvalues f32[min(K, N)] (descending, clipped at 0) of points f32[K, N]."""
  x = points - points.mean(0)
  a = x if x.shape[0] <= x.shape[1] else x.T  # the smaller Gram matrix
  gram = jnp.dot(a, a.T, precision=jax.lax.Precision.HIGHEST)
  return jnp.clip(jnp.linalg.eigvalsh(gram)[::-1], 0.0) / x.shape[0]


def participation_ratio(eigenvalues: np.ndarray) -> float:
  """(sum lambda)^2 / sum lambda^2 (0 for an all-zero spectrum)."""
  lam = np.asarray(eigenvalues, np.float64)
  square = np.sum(lam ** 2)
  return float(np.sum(lam) ** 2 / square) if square > 0 else 0.0


def pcs_for_variance(eigenvalues: np.ndarray, fraction: float = VARIANCE) -> int:
  """The smallest k whose k largest eigenvalues hold `fraction` of the sum (0 if all 0)."""
  if not 0 < fraction <= 1:
    raise InputError(f'variance fraction {fraction} must be in (0, 1]')
  lam = np.sort(np.asarray(eigenvalues, np.float64))[::-1]
  total = lam.sum()
  if total <= 0:
    return 0
  share = np.cumsum(lam) / total
  return int(np.searchsorted(share, fraction - 1e-9) + 1)  # tolerance for rounding at f


def dimensionality(points, fraction: float = VARIANCE) -> dict:
  """{'participation_ratio', 'pcs_90' (components for `fraction`), 'points', 'dims'} of
  points f[K, N] or manifolds f[P, M, N] / a list of [M_i, N] (pooled)."""
  if isinstance(points, (list, tuple)):
    points = np.concatenate([np.asarray(p) for p in points])
  points = np.asarray(points, np.float32)
  points = points.reshape(-1, points.shape[-1])
  if len(points) < 2:
    raise InputError(f'dimensionality needs >= 2 points, got {len(points)}')
  lam = np.asarray(spectrum(jnp.asarray(points)))
  return {'participation_ratio': participation_ratio(lam),
          'pcs_90': pcs_for_variance(lam, fraction), 'points': int(points.shape[0]),
          'dims': int(points.shape[1])}
