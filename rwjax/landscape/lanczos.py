"""Lanczos tridiagonalisation: Hessian norm and spectral-density (index) estimates from HVPs.

For a network too large for a dense Hessian. `lanczos` stores m vectors of size D (full
reorthogonalisation); `norm_estimate` is a lower bound on ||H||; `slq_index` is stochastic
Lanczos quadrature (Ubaru, Chen & Saad 2017). See docs/landscape.md, 'Lanczos'.
"""

from typing import Callable

import jax
import jax.numpy as jnp

Matvec = Callable[[jax.Array], jax.Array]


def lanczos(matvec: Matvec, v0: jax.Array, num_steps: int) -> tuple[jax.Array, jax.Array]:
  """Returns (alphas f[m], betas f[m-1]) of T for m = min(num_steps, D) steps from v0: f[D].

  After an invariant subspace is found (beta ~ 0) the remaining coefficients are zero, which
  adds Ritz values 0 with zero weight on v0.
  """
  dim = v0.shape[0]
  m = min(num_steps, dim)
  v0 = v0 / jnp.linalg.norm(v0)
  basis = jnp.zeros((m, dim), v0.dtype).at[0].set(v0)
  eps = jnp.finfo(v0.dtype).eps

  def body(j, carry):
    basis, alphas, betas = carry
    v = basis[j]
    w = matvec(v)
    alpha = jnp.vdot(v, w)
    # Full reorthogonalisation against every stored vector (the unset rows are zero), twice.
    w = w - basis.T @ (basis @ w)
    w = w - basis.T @ (basis @ w)
    beta = jnp.linalg.norm(w)
    ok = beta > eps * jnp.maximum(jnp.abs(alpha), 1.0)
    v_next = jnp.where(ok, w / jnp.where(ok, beta, 1.0), 0.0)
    basis = jnp.where(j + 1 < m, basis.at[jnp.minimum(j + 1, m - 1)].set(v_next), basis)
    return basis, alphas.at[j].set(alpha), betas.at[j].set(jnp.where(ok, beta, 0.0))

  zeros = jnp.zeros((m,), v0.dtype)
  _, alphas, betas = jax.lax.fori_loop(0, m, body, (basis, zeros, zeros))
  return alphas, betas[:m - 1]


def ritz(alphas: jax.Array, betas: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(Ritz values f[m], weights f[m]: squared first eigenvector components, summing to 1)."""
  t = jnp.diag(alphas) + jnp.diag(betas, 1) + jnp.diag(betas, -1)
  values, vectors = jnp.linalg.eigh(t)
  return values, vectors[0]**2


def norm_estimate(matvec: Matvec, dim: int, dtype, num_steps: int = 20,
                  key: jax.Array | None = None) -> jax.Array:
  """max |Ritz value|: a lower bound on ||H||_2 from num_steps Lanczos steps (scalar)."""
  key = jax.random.PRNGKey(0) if key is None else key
  values, _ = ritz(*lanczos(matvec, jax.random.normal(key, (dim,), dtype), num_steps))
  return jnp.max(jnp.abs(values))


def slq_index(matvec: Matvec, dim: int, dtype, key: jax.Array, tol: float = 1e-4,
              num_probes: int = 8, num_steps: int = 80) -> tuple[jax.Array, jax.Array]:
  """(estimated index, ||H|| estimate): index = fraction of eigenvalues < -tol ||H||.

  Each probe uses its own largest |Ritz value| as ||H||; the norm returned is their maximum.
  """
  def probe(k):
    values, weights = ritz(*lanczos(matvec, jax.random.normal(k, (dim,), dtype), num_steps))
    h_norm = jnp.max(jnp.abs(values))
    return jnp.sum(jnp.where(values < -tol * h_norm, weights, 0.0)), h_norm
  fractions, norms = jax.lax.map(probe, jax.random.split(key, num_probes))
  return fractions.mean(), norms.max()
