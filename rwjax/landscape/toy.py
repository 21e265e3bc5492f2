"""Two-parameter test functions with known critical and gradient-flat points (Frye et al. 2021).

`toy`: one minimum, CRITICAL_POINT, and strict gradient-flat points GRADIENT_FLAT_POINTS
(+-sqrt 2, 0). `linear_flat`: no critical point, gradient-flat wherever y = 0. Both take
theta: f[2]. The derivations: docs/landscape.md, 'Test problems'.
"""

import jax

CRITICAL_POINT = (-3.0, 0.0)
GRADIENT_FLAT_POINTS = ((2.0**0.5, 0.0), (-(2.0**0.5), 0.0))


def toy(theta: jax.Array) -> jax.Array:
  x, y = theta[0], theta[1]
  return x**4 / 4 - 3 * x**2 + 9 * x + 0.9 * y**4 + 5 * y**2 + 40


def linear_flat(theta: jax.Array) -> jax.Array:
  return theta[0] + theta[1]**2
