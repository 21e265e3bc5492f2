"""Per-point diagnostics: loss, ||g||^2, Newton residuals r and r_H, gradient-flatness, index.

r and r_H are the residuals of the MINRES solution p of H p = -g (`newton_mr.StepInfo`); a
point is gradient-flat when r_H < R_H_MAX and r > R_MIN. The index is the fraction of Hessian
eigenvalues below -tol ||H||, dense or by stochastic Lanczos quadrature. Definitions and
thresholds: docs/landscape.md, 'Diagnostics'.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rwjax.errors import InputError
from rwjax.landscape import hvp as hvp_lib
from rwjax.landscape import lanczos
from rwjax.landscape import minres as minres_lib
from rwjax.landscape import newton_mr

R_H_MAX = 5e-4
R_MIN = 0.9


class Diagnostics(NamedTuple):
  """Scalars describing one point theta."""
  loss: jax.Array
  grad_norm_sq: jax.Array
  r: jax.Array
  r_h: jax.Array
  gradient_flat: jax.Array   # bool
  index: jax.Array
  h_norm: jax.Array          # ||H||_2 (exact for dense, Lanczos lower bound otherwise)
  minres_flag: jax.Array


def index_from_eigenvalues(eigenvalues: jax.Array, tol: float = 1e-4) -> jax.Array:
  """Fraction of eigenvalues below -tol * max|eigenvalue|."""
  h_norm = jnp.max(jnp.abs(eigenvalues))
  return jnp.mean((eigenvalues < -tol * h_norm).astype(eigenvalues.dtype))


def diagnose(loss_fn: hvp_lib.LossFn, theta: jax.Array, *, method: str = 'auto',
             index_tol: float = 1e-4, dense_max_dim: int = 2048, rtol: float = 1e-10,
             maxiter: int = 200, acondlim: float = 1e7, maxxnorm: float = 1e4,
             key: jax.Array | None = None, num_probes: int = 8,
             lanczos_steps: int = 80) -> Diagnostics:
  """Diagnostics at theta: f[D]; the index by method 'dense', 'lanczos' or 'auto'.

  'auto' is dense if D <= dense_max_dim. Static arguments: method, dense_max_dim, maxiter,
  num_probes, lanczos_steps.
  """
  dim = theta.shape[0]
  if method == 'auto':
    method = 'dense' if dim <= dense_max_dim else 'lanczos'
  g, matvec = jax.linearize(jax.grad(loss_fn), theta)
  if method == 'dense':
    eigenvalues = jnp.linalg.eigvalsh(jax.vmap(matvec)(jnp.eye(dim, dtype=theta.dtype)))
    h_norm = jnp.max(jnp.abs(eigenvalues))
    index = index_from_eigenvalues(eigenvalues, index_tol)
  elif method == 'lanczos':
    key = jax.random.PRNGKey(0) if key is None else key
    index, h_norm = lanczos.slq_index(matvec, dim, theta.dtype, key, index_tol, num_probes,
                                      lanczos_steps)
  else:
    raise InputError(f"unknown index method {method!r}; use 'auto', 'dense' or 'lanczos'")
  sol = minres_lib.minres(matvec, -g, rtol=rtol, maxiter=maxiter, acondlim=acondlim,
                          maxxnorm=maxxnorm)
  h_norm = jnp.maximum(h_norm, sol.a_norm)
  r, r_h, _ = newton_mr.newton_residuals(matvec, g, sol.x, h_norm)
  return Diagnostics(loss=loss_fn(theta), grad_norm_sq=jnp.vdot(g, g), r=r, r_h=r_h,
                     gradient_flat=(r_h < R_H_MAX) & (r > R_MIN), index=index, h_norm=h_norm,
                     minres_flag=sol.flag)
