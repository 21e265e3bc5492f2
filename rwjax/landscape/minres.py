"""MINRES for symmetric, possibly singular and indefinite, systems (Paige & Saunders 1975).

Solves (A + shift I) x = b, or min ||b - (A + shift I) x|| when b is not in the range, from
products with A only; the notation is Choi, Paige & Saunders (2011), Sec. 2. The stopping
tests (flags below) and why ill-conditioned iterates are rejected (the maxxnorm guard at
gradient-flat points): docs/landscape.md, 'MINRES'. The returned residual norms are recomputed
from x (two extra products), not estimates.
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

# Values of MinresResult.flag.
ZERO_RHS = 0       # b == 0, so x = 0.
COMPATIBLE = 1     # Relative residual below rtol.
INCOMPATIBLE = 2   # Relative ||A r|| below rtol with a residual that does not vanish.
MAXITER = 3        # Neither test passed within maxiter iterations.
ILL_CONDITIONED = 4  # Condition estimate > acondlim or ||x|| > maxxnorm; x is the iterate before.


class MinresResult(NamedTuple):
  """Output of `minres`; `x: f[D]`, the rest scalars."""
  x: jax.Array
  residual_norm: jax.Array   # ||b - (A + shift I) x||, recomputed.
  ar_norm: jax.Array         # ||(A + shift I) r||, recomputed.
  a_norm: jax.Array          # Lanczos estimate of ||A + shift I|| (a lower bound).
  iterations: jax.Array      # i32
  flag: jax.Array            # i32: ZERO_RHS, COMPATIBLE, INCOMPATIBLE, MAXITER, ILL_CONDITIONED.


class _State(NamedTuple):
  k: jax.Array
  v_prev: jax.Array
  v: jax.Array
  beta: jax.Array       # beta_k, the norm that normalised v_k.
  c: jax.Array          # Previous reflection (c_{k-1}, s_{k-1}).
  s: jax.Array
  delta1: jax.Array     # delta_k^(1)
  eps1: jax.Array       # epsilon_k^(1)
  phi: jax.Array        # phi_{k-1} = ||r_{k-1}||
  d_prev: jax.Array     # d_{k-1}
  d_prev2: jax.Array    # d_{k-2}
  x: jax.Array
  a_norm: jax.Array
  gamma_min: jax.Array
  gamma_max: jax.Array
  flag: jax.Array
  done: jax.Array


def minres(matvec: Callable[[jax.Array], jax.Array], b: jax.Array, *,
           shift: float | jax.Array = 0.0, rtol: float = 1e-10,
           maxiter: int = 100, acondlim: float = 1e7,
           maxxnorm: float = 1e4) -> MinresResult:
  """Solves (A + shift I) x = b (or its least-squares problem) for symmetric A.

  Args:
    matvec: v -> A v for symmetric A (e.g. a Hessian-vector product); f[D] -> f[D].
    b: right-hand side, f[D].
    shift: scalar added to the diagonal (damped Newton uses shift = gamma).
    rtol: relative tolerance of both stopping tests.
    maxiter: most Lanczos steps (static).
    acondlim: largest condition estimate of the projected system before stopping.
    maxxnorm: largest solution norm before stopping (1e4 and 1e7 are autocrit's defaults).

  Returns:
    MinresResult. jit- and vmap-compatible.
  """
  dtype = b.dtype
  op = lambda v: matvec(v) + shift * v
  beta1 = jnp.linalg.norm(b)
  tiny = jnp.finfo(dtype).tiny
  zeros = jnp.zeros_like(b)
  one = jnp.ones((), dtype)
  zero = jnp.zeros((), dtype)
  init = _State(
      k=jnp.zeros((), jnp.int32), v_prev=zeros, v=b / jnp.maximum(beta1, tiny), beta=beta1,
      c=-one, s=zero, delta1=zero, eps1=zero, phi=beta1, d_prev=zeros, d_prev2=zeros,
      x=zeros, a_norm=zero, gamma_min=jnp.array(jnp.inf, dtype), gamma_max=zero,
      flag=jnp.where(beta1 > 0, MAXITER, ZERO_RHS).astype(jnp.int32), done=beta1 <= 0)

  def cond(st: _State) -> jax.Array:
    return jnp.logical_and(~st.done, st.k < maxiter)

  def body(st: _State) -> _State:
    # Lanczos step: beta_{k+1} v_{k+1} = A v_k - alpha_k v_k - beta_k v_{k-1}.
    p = op(st.v) - st.beta * st.v_prev
    alpha = jnp.vdot(st.v, p)
    p = p - alpha * st.v
    beta_next = jnp.linalg.norm(p)
    v_next = p / jnp.maximum(beta_next, tiny)
    # Apply the previous reflection to the new column (beta_k, alpha_k, beta_{k+1}) of T.
    delta2 = st.c * st.delta1 + st.s * alpha
    gamma1 = st.s * st.delta1 - st.c * alpha
    eps1_next = st.s * beta_next
    delta1_next = -st.c * beta_next
    # ||A r_{k-1}|| for the previous iterate (Choi et al. 2011, eq. 3.3).
    psi_prev = st.phi * jnp.hypot(gamma1, delta1_next)
    # New reflection annihilating beta_{k+1}. gamma2 == 0 only when the Krylov space is
    # exhausted on a singular T: then nothing changes (c=0, s=1 keeps phi).
    gamma2 = jnp.hypot(gamma1, beta_next)
    ok = gamma2 > 0
    safe_gamma2 = jnp.where(ok, gamma2, one)
    c = jnp.where(ok, gamma1 / safe_gamma2, zero)
    s = jnp.where(ok, beta_next / safe_gamma2, one)
    d = jnp.where(ok, (st.v - delta2 * st.d_prev - st.eps1 * st.d_prev2) / safe_gamma2, zeros)
    # Norm of column k of the tridiagonal T (beta_1 belongs to b, not to T).
    beta_k = jnp.where(st.k > 0, st.beta, 0.0)
    a_norm = jnp.maximum(st.a_norm, jnp.sqrt(beta_k**2 + alpha**2 + beta_next**2))
    gamma_max = jnp.where(ok, jnp.maximum(st.gamma_max, gamma2), st.gamma_max)
    gamma_min = jnp.where(ok, jnp.minimum(st.gamma_min, gamma2), st.gamma_min)
    # Tests that reject this step and keep x_{k-1}.
    incompatible = jnp.logical_and(st.k > 0, psi_prev <= rtol * a_norm * st.phi)
    x_new = st.x + (c * st.phi) * d
    ill = (gamma_max > acondlim * gamma_min) | (jnp.linalg.norm(x_new) > maxxnorm)
    keep = incompatible | ill
    phi = jnp.where(keep, st.phi, s * st.phi)
    x = jnp.where(keep, st.x, x_new)
    # Tests on the new iterate.
    compatible = ~keep & (phi <= rtol * (a_norm * jnp.linalg.norm(x) + beta1))
    exhausted = ~keep & (beta_next <= jnp.finfo(dtype).eps * a_norm)
    flag = jnp.select([compatible, incompatible | exhausted, ill],
                      [COMPATIBLE, INCOMPATIBLE, ILL_CONDITIONED], MAXITER)
    done = compatible | keep | exhausted
    return _State(k=st.k + 1, v_prev=st.v, v=v_next, beta=beta_next, c=c, s=s,
                  delta1=delta1_next, eps1=eps1_next, phi=phi, d_prev=d, d_prev2=st.d_prev,
                  x=x, a_norm=a_norm, gamma_min=gamma_min, gamma_max=gamma_max,
                  flag=flag.astype(jnp.int32), done=done)

  st = jax.lax.while_loop(cond, body, init)
  r = b - op(st.x)
  return MinresResult(x=st.x, residual_norm=jnp.linalg.norm(r), ar_norm=jnp.linalg.norm(op(r)),
                      a_norm=st.a_norm, iterations=st.k, flag=st.flag)
