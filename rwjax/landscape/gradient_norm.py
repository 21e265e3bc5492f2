"""Gradient-norm minimisation: gradient descent on phi(theta) = 1/2 ||grad L(theta)||^2.

grad phi = H g is one Hessian-vector product; the step along d = -H g comes from a bisection
search for the weak Wolfe conditions (Lewis & Overton 2013, constants c1, c2). If no step
passes within max_trials, the largest one that decreases phi is taken; if none does, the run
stops. The search and why the method stalls at gradient-flat points: docs/landscape.md.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rwjax.landscape import hvp as hvp_lib
from rwjax.landscape import loop


class State(NamedTuple):
  theta: jax.Array   # f[D]
  alpha: jax.Array   # First trial step of the next search.
  done: jax.Array    # bool


class StepInfo(NamedTuple):
  """Per-iterate record at the theta the step started from (scalars)."""
  loss: jax.Array
  grad_norm_sq: jax.Array
  alpha: jax.Array         # Accepted step size, 0 when none.
  accepted: jax.Array      # bool
  grad_norm_sq_new: jax.Array
  trials: jax.Array        # Line-search evaluations.


def init(theta: jax.Array, alpha0: float = 0.1) -> State:
  return State(theta=theta, alpha=jnp.asarray(alpha0, theta.dtype), done=jnp.zeros((), bool))


def step(loss_fn: hvp_lib.LossFn, state: State, *, c1: float = 1e-4, c2: float = 0.9,
         max_trials: int = 40) -> tuple[State, StepInfo]:
  """One gradient-norm-minimisation iteration."""
  theta = state.theta
  g, matvec = jax.linearize(jax.grad(loss_fn), theta)
  d = -matvec(g)
  phi0 = 0.5 * jnp.vdot(g, g)
  slope = -jnp.vdot(d, d)

  def evaluate(a):
    g_a, matvec_a = jax.linearize(jax.grad(loss_fn), theta + a * d)
    hg_a = matvec_a(g_a)
    return 0.5 * jnp.vdot(g_a, g_a), jnp.vdot(hg_a, d)

  inf = jnp.array(jnp.inf, theta.dtype)
  zero = jnp.zeros((), theta.dtype)

  def cond(c):
    return ~c['ok'] & (c['n'] < max_trials)

  def body(c):
    a = c['a']
    phi_a, dphi_a = evaluate(a)
    decrease = phi_a <= phi0 + c1 * a * slope
    curvature = dphi_a >= c2 * slope
    lo = jnp.where(decrease & ~curvature, a, c['lo'])
    hi = jnp.where(decrease, c['hi'], a)
    best = jnp.where(decrease & (a > c['best']), a, c['best'])
    best_phi = jnp.where(decrease & (a > c['best']), phi_a, c['best_phi'])
    next_a = jnp.where(jnp.isinf(hi), 2 * lo, 0.5 * (lo + hi))
    return dict(a=jnp.where(decrease & curvature, a, next_a), lo=lo, hi=hi, best=best,
                best_phi=best_phi, phi=phi_a, n=c['n'] + 1, ok=decrease & curvature)

  c = jax.lax.while_loop(cond, body, dict(
      a=state.alpha, lo=zero, hi=inf, best=zero, best_phi=phi0, phi=phi0,
      n=jnp.zeros((), jnp.int32), ok=jnp.zeros((), bool)))
  alpha = jnp.where(c['ok'], c['a'], c['best'])
  accepted = alpha > 0
  phi_new = jnp.where(c['ok'], c['phi'], c['best_phi'])
  new_state = State(theta=jnp.where(accepted, theta + alpha * d, theta),
                    alpha=jnp.where(accepted, alpha, state.alpha), done=~accepted)
  info = StepInfo(loss=loss_fn(theta), grad_norm_sq=2 * phi0, alpha=alpha, accepted=accepted,
                  grad_norm_sq_new=2 * phi_new, trials=c['n'])
  return new_state, info


def run(loss_fn: hvp_lib.LossFn, theta0: jax.Array, num_steps: int, alpha0: float = 0.1,
        **step_kwargs) -> tuple[jax.Array, StepInfo]:
  """num_steps (static) iterations from theta0: f[D]; returns (theta, stacked StepInfo)."""
  return loop.scan_steps(lambda s: step(loss_fn, s, **step_kwargs), init(theta0, alpha0),
                         num_steps)
