"""The iteration driver shared by the critical-point finders."""

from typing import Any, Callable

import jax
import jax.numpy as jnp


def scan_steps(step_fn: Callable[[Any], tuple[Any, Any]], state0: Any,
               num_steps: int) -> tuple[Any, Any]:
  """Applies step_fn: state -> (state, info) num_steps (static) times under lax.scan.

  state has a f[D] field `theta` and a bool field `done`, info a bool field `accepted`. Once a
  step sets done (its line search failed or nothing improved), the state is frozen and later
  iterations repeat that step's info with accepted=False. Returns (final theta f[D], infos
  stacked on a [num_steps] axis).
  """
  info_shapes = jax.eval_shape(step_fn, state0)[1]
  info0 = jax.tree.map(lambda sd: jnp.zeros(sd.shape, sd.dtype), info_shapes)

  def frozen(carry):
    state, last = carry
    return state, last._replace(accepted=jnp.zeros((), bool))

  def body(carry, _):
    new = jax.lax.cond(carry[0].done, frozen, lambda c: step_fn(c[0]), carry)
    return new, new[1]

  (state, _), infos = jax.lax.scan(body, (state0, info0), None, length=num_steps)
  return state.theta, infos
