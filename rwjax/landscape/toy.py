"""Two-parameter test functions with known critical and gradient-flat points (Frye et al. 2021).

`toy`: f(x, y) = x^4/4 - 3x^2 + 9x + 0.9y^4 + 5y^2 + 40 has one critical point, (-3, 0), a
minimum, and strict gradient-flat points at (+-sqrt 2, 0): there the Hessian diag(3x^2 - 6,
10.8y^2 + 10) = diag(0, 10) annihilates the gradient (9 -+ 4 sqrt 2, 0); ||grad||^2 is about
11.2 at (sqrt 2, 0).
`linear_flat`: f(x, y) = x + y^2 has no critical point; every point with y = 0 is
gradient-flat (gradient (1, 0), Hessian diag(0, 2)).
Both take theta: f[2].
"""

import jax

CRITICAL_POINT = (-3.0, 0.0)
GRADIENT_FLAT_POINTS = ((2.0**0.5, 0.0), (-(2.0**0.5), 0.0))


def toy(theta: jax.Array) -> jax.Array:
  x, y = theta[0], theta[1]
  return x**4 / 4 - 3 * x**2 + 9 * x + 0.9 * y**4 + 5 * y**2 + 40


def linear_flat(theta: jax.Array) -> jax.Array:
  return theta[0] + theta[1]**2
