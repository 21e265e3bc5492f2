"""Damped Newton: Newton steps on H + gamma I over a grid of gammas, keeping the best.

A step moves to the candidate with the smallest gradient norm if it beats the current one;
otherwise the run stops. See docs/landscape.md, 'The critical-point finders'.
"""

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from rwjax.landscape import hvp as hvp_lib
from rwjax.landscape import loop
from rwjax.landscape import minres as minres_lib

GAMMAS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


class State(NamedTuple):
  theta: jax.Array   # f[D]
  done: jax.Array    # bool


class StepInfo(NamedTuple):
  """Per-iterate record at the theta the step started from (scalars)."""
  loss: jax.Array
  grad_norm_sq: jax.Array
  gamma: jax.Array         # Chosen damping, 0 when no step was taken.
  accepted: jax.Array      # bool
  grad_norm_sq_new: jax.Array


def init(theta: jax.Array) -> State:
  return State(theta=theta, done=jnp.zeros((), bool))


def step(loss_fn: hvp_lib.LossFn, state: State, *, gammas: Sequence[float] = GAMMAS,
         rtol: float = 1e-10, maxiter: int = 100, acondlim: float = 1e7,
         maxxnorm: float = 1e4) -> tuple[State, StepInfo]:
  """One damped-Newton iteration; MINRES settings as in `minres.minres`."""
  theta = state.theta
  g, matvec = jax.linearize(jax.grad(loss_fn), theta)
  g2 = jnp.vdot(g, g)

  def candidate(gamma):
    p = minres_lib.minres(matvec, -g, shift=gamma, rtol=rtol, maxiter=maxiter,
                          acondlim=acondlim, maxxnorm=maxxnorm).x
    return p, hvp_lib.grad_norm_sq(loss_fn, theta + p)

  gammas = jnp.asarray(gammas, theta.dtype)
  ps, g2s = jax.lax.map(candidate, gammas)
  best = jnp.argmin(g2s)
  accepted = g2s[best] < g2
  new_state = State(theta=jnp.where(accepted, theta + ps[best], theta), done=~accepted)
  info = StepInfo(loss=loss_fn(theta), grad_norm_sq=g2,
                  gamma=jnp.where(accepted, gammas[best], 0.0), accepted=accepted,
                  grad_norm_sq_new=jnp.where(accepted, g2s[best], g2))
  return new_state, info


def run(loss_fn: hvp_lib.LossFn, theta0: jax.Array, num_steps: int,
        **step_kwargs) -> tuple[jax.Array, StepInfo]:
  """num_steps (static) iterations from theta0: f[D]; returns (theta, stacked StepInfo)."""
  return loop.scan_steps(lambda s: step(loss_fn, s, **step_kwargs), init(theta0), num_steps)
