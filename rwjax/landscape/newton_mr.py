"""Newton-MR (Roosta, Liu, Xu & Mahoney): Newton steps from MINRES, line search on ||g||^2.

The step size a <= 1 comes from backtracking on ||g||^2 with the Armijo condition
    ||g(theta + a p)||^2 <= ||g(theta)||^2 + 2 rho a p^T H g(theta),
the full step tried first with rho_pure; a search that fails within max_backtracks stops the
run. The search in full: docs/landscape.md, 'The critical-point finders'.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rwjax.landscape import hvp as hvp_lib
from rwjax.landscape import lanczos
from rwjax.landscape import loop
from rwjax.landscape import minres as minres_lib


class State(NamedTuple):
  theta: jax.Array   # f[D]
  alpha: jax.Array   # Step size that starts the next backtracking search.
  done: jax.Array    # bool: a line search failed; theta is frozen.


class StepInfo(NamedTuple):
  """Per-iterate record, evaluated at the theta the step started from (scalars)."""
  loss: jax.Array
  grad_norm_sq: jax.Array
  r: jax.Array             # ||Hp + g|| / (||H|| ||p|| + ||g||)
  r_h: jax.Array           # ||H(Hp + g)|| / (||H|| ||Hp + g||)
  slope: jax.Array         # p^T H g
  alpha: jax.Array         # Accepted step size, 0 when none.
  accepted: jax.Array      # bool
  grad_norm_sq_new: jax.Array   # ||g||^2 at the accepted point (= grad_norm_sq if rejected).
  minres_iterations: jax.Array
  minres_flag: jax.Array


def newton_residuals(matvec, g: jax.Array, p: jax.Array,
                     h_norm: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(r, r_H, Hp) of a Newton direction p; see `StepInfo` for the definitions."""
  hp = matvec(p)
  res = hp + g
  res_norm = jnp.linalg.norm(res)
  tiny = jnp.finfo(g.dtype).tiny
  r = res_norm / jnp.maximum(h_norm * jnp.linalg.norm(p) + jnp.linalg.norm(g), tiny)
  r_h = jnp.linalg.norm(matvec(res)) / jnp.maximum(h_norm * res_norm, tiny)
  return r, r_h, hp


def init(theta: jax.Array) -> State:
  return State(theta=theta, alpha=jnp.ones((), theta.dtype), done=jnp.zeros((), bool))


def step(loss_fn: hvp_lib.LossFn, state: State, *, rtol: float = 1e-10, maxiter: int = 100,
         acondlim: float = 1e7, rho: float = 1e-4, rho_pure: float = 0.5, beta: float = 0.5,
         max_backtracks: int = 40, maxxnorm: float = 1e4,
         norm_steps: int = 20) -> tuple[State, StepInfo, jax.Array]:
  """One Newton-MR iteration; returns (new state, info, direction p: f[D]).

  rtol, maxiter, acondlim, maxxnorm go to `minres`. ||H|| in r and r_H also takes norm_steps
  Lanczos steps: MINRES alone sees only the Krylov space of g, at a gradient-flat point the
  flat direction.
  """
  theta = state.theta
  g, matvec = jax.linearize(jax.grad(loss_fn), theta)
  g2 = jnp.vdot(g, g)
  sol = minres_lib.minres(matvec, -g, rtol=rtol, maxiter=maxiter, acondlim=acondlim,
                          maxxnorm=maxxnorm)
  p = sol.x
  h_norm = sol.a_norm
  if norm_steps:
    h_norm = jnp.maximum(h_norm, lanczos.norm_estimate(matvec, g.shape[0], g.dtype, norm_steps))
  r, r_h, hp = newton_residuals(matvec, g, p, h_norm)
  slope = jnp.vdot(hp, g)
  gnorm_at = lambda a: hvp_lib.grad_norm_sq(loss_fn, theta + a * p)
  armijo = lambda a, new, c: new <= g2 + 2 * c * a * slope

  one = jnp.ones((), theta.dtype)
  g2_full = gnorm_at(one)
  pure_ok = armijo(one, g2_full, rho_pure)

  def search_cond(carry):
    a, new, n, ok = carry
    return ~ok & (n < max_backtracks)

  def search_body(carry):
    a, _, n, _ = carry
    a = a * beta
    new = gnorm_at(a)
    return a, new, n + 1, armijo(a, new, rho)

  # The first trial of the backtracking search is alpha itself (hence alpha / beta here).
  start = (state.alpha / beta, g2, jnp.zeros((), jnp.int32), jnp.zeros((), bool))
  a_bt, g2_bt, _, ok_bt = jax.lax.cond(
      pure_ok, lambda c: c, lambda c: jax.lax.while_loop(search_cond, search_body, c), start)
  alpha = jnp.where(pure_ok, one, a_bt)
  g2_new = jnp.where(pure_ok, g2_full, g2_bt)
  accepted = pure_ok | ok_bt
  new_state = State(
      theta=jnp.where(accepted, theta + alpha * p, theta),
      alpha=jnp.where(accepted, jnp.minimum(one, alpha / beta), state.alpha),
      done=~accepted)
  info = StepInfo(loss=loss_fn(theta), grad_norm_sq=g2, r=r, r_h=r_h, slope=slope,
                  alpha=jnp.where(accepted, alpha, 0.0), accepted=accepted,
                  grad_norm_sq_new=jnp.where(accepted, g2_new, g2),
                  minres_iterations=sol.iterations, minres_flag=sol.flag)
  return new_state, info, p


def run(loss_fn: hvp_lib.LossFn, theta0: jax.Array, num_steps: int,
        **step_kwargs) -> tuple[jax.Array, StepInfo]:
  """num_steps (static) Newton-MR iterations from theta0: f[D]; keyword args go to `step`.

  Returns (final theta f[D], StepInfo stacked on a [num_steps] axis); see `loop.scan_steps`.
  """
  return loop.scan_steps(lambda s: step(loss_fn, s, **step_kwargs)[:2], init(theta0), num_steps)
