"""Gradients and Hessian-vector products of a scalar loss of a flat parameter vector.

Every routine in `rwjax.landscape` works on `loss_fn(theta: f[D]) -> f[]`; `flatten_loss`
adapts a loss of a pytree (Flax params, a probe's weights).
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

LossFn = Callable[[jax.Array], jax.Array]


def flatten_loss(loss_fn: Callable[[Any], jax.Array],
                 params: Any) -> tuple[LossFn, jax.Array, Callable[[jax.Array], Any]]:
  """Turns `loss_fn(params_pytree)` into a loss of one flat vector.

  Returns (flat_loss, theta0: f[D], unravel) with flat_loss(theta0) == loss_fn(params) and
  unravel(theta) the pytree for a flat vector.
  """
  theta0, unravel = ravel_pytree(params)
  return lambda theta: loss_fn(unravel(theta)), theta0, unravel


def hvp(loss_fn: LossFn, theta: jax.Array, v: jax.Array) -> jax.Array:
  """H(theta) v: f[D], forward-over-reverse (a JVP of the gradient), no Hessian formed."""
  return jax.jvp(jax.grad(loss_fn), (theta,), (v,))[1]


def hvp_operator(loss_fn: LossFn, theta: jax.Array) -> Callable[[jax.Array], jax.Array]:
  """v -> H(theta) v, linearised once at theta so repeated products skip the primal pass."""
  _, matvec = jax.linearize(jax.grad(loss_fn), theta)
  return matvec


def dense_hessian(loss_fn: LossFn, theta: jax.Array) -> jax.Array:
  """The full Hessian f[D, D] (forward-over-reverse, D HVPs); for small D only."""
  return jax.jacfwd(jax.grad(loss_fn))(theta)


def grad_norm_sq(loss_fn: LossFn, theta: jax.Array) -> jax.Array:
  """||grad L(theta)||^2: f[]."""
  g = jax.grad(loss_fn)(theta)
  return jnp.vdot(g, g)
