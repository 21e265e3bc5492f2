"""The deep linear autoencoder benchmark of Frye et al. (2021) and its analytic critical points.

L(W1, W2) = mean((X - W2 W1 X)^2), W1: f[p, k], W2: f[k, p], zero-mean data X: f[k, n],
evaluated exactly through the k x k second moment S = X X^T / n.
theta = concat(W1.ravel(), W2.ravel()): f[2 p k]. The critical points (Baldi & Hornik 1989)
and the derivation: docs/landscape.md, 'Test problems'.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np


def make_data(key: jax.Array, k: int = 16, n: int = 10_000,
              max_variance: float = 16.0) -> jax.Array:
  """X: f[k, n], Gaussian with covariance diag(linspace(1, max_variance, k)), exactly zero-mean."""
  std = jnp.sqrt(jnp.linspace(1.0, max_variance, k))
  x = std[:, None] * jax.random.normal(key, (k, n), dtype=std.dtype)
  return x - x.mean(axis=1, keepdims=True)


def second_moment(x: jax.Array) -> jax.Array:
  """S = X X^T / n: f[k, k]."""
  return x @ x.T / x.shape[1]


def unpack(theta: jax.Array, k: int, p: int) -> tuple[jax.Array, jax.Array]:
  """theta f[2pk] -> (W1 f[p, k], W2 f[k, p])."""
  return theta[:p * k].reshape(p, k), theta[p * k:].reshape(k, p)


def loss(theta: jax.Array, s: jax.Array, p: int) -> jax.Array:
  """Mean squared reconstruction error through S (f[k, k]); equals `loss_from_data`."""
  k = s.shape[0]
  w1, w2 = unpack(theta, k, p)
  e = jnp.eye(k, dtype=s.dtype) - w2 @ w1
  return jnp.trace(e @ s @ e.T) / k


def loss_from_data(theta: jax.Array, x: jax.Array, p: int) -> jax.Array:
  """mean((X - W2 W1 X)^2) over all k * n entries, X: f[k, n]."""
  w1, w2 = unpack(theta, x.shape[0], p)
  return jnp.mean((x - w2 @ (w1 @ x))**2)


def make_loss(s: jax.Array, p: int):
  """theta -> loss(theta, s, p), the flat loss the landscape methods take."""
  return lambda theta: loss(theta, s, p)


def critical_points(s: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, ...]]]:
  """All Baldi-Hornik critical classes of the autoencoder with second moment S.

  Returns (thetas f64[C, 2pk] one representative each, losses f64[C], subsets) where subset
  J lists eigenvalue indices in ascending order of eigenvalue.
  """
  s = np.asarray(s, np.float64)
  k = s.shape[0]
  lam, u = np.linalg.eigh(s)
  subsets = [j for m in range(p + 1) for j in itertools.combinations(range(k), m)]
  thetas = np.zeros((len(subsets), 2 * p * k))
  losses = np.empty(len(subsets))
  for i, j in enumerate(subsets):
    w1 = np.zeros((p, k))
    w1[:len(j)] = u[:, list(j)].T
    thetas[i] = np.concatenate([w1.ravel(), w1.T.ravel()])
    losses[i] = (np.trace(s) - lam[list(j)].sum()) / k
  return thetas, losses, subsets
