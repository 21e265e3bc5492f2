"""frames.to_network_input: z-score per pixel, [0, 1] range, pooling, channels, jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rwjax.errors import InputError
from rwjax.waves.frames import to_network_input


def test_range_shape_and_channels():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 8, 8)) * 10 - 70
  y = jax.jit(to_network_input, static_argnums=(1, 2))(x, 4, 3)
  assert y.shape == (2, 5, 4, 4, 3) and y.dtype == jnp.float32
  assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
  np.testing.assert_array_equal(y[..., 0], y[..., 2])
  one = to_network_input(x[0], 8, 1)                       # no batch axis, no pooling
  assert one.shape == (5, 8, 8, 1)
  assert float(one.min()) == 0.0 and float(one.max()) == pytest.approx(1.0)


def test_per_pixel_zscore_removes_baseline_and_gain():
  t = jax.random.normal(jax.random.PRNGKey(1), (6, 1, 1))
  base = jnp.arange(16.0).reshape(1, 4, 4)
  gain = 1.0 + jnp.arange(16.0).reshape(1, 4, 4)
  y = to_network_input(base + gain * t, 4)[..., 0]
  # After the z-score every pixel carries the same normalised trace.
  np.testing.assert_allclose(y, jnp.broadcast_to(y[:, :1, :1], y.shape), atol=1e-5)


def test_block_mean_pooling_and_constant_movie():
  x = jax.random.uniform(jax.random.PRNGKey(2), (3, 4, 4))
  full = to_network_input(x, 4)
  pooled = to_network_input(x, 2)
  np.testing.assert_allclose(pooled[:, 0, 1], full[:, :2, 2:].mean(axis=(1, 2)), atol=1e-6)
  np.testing.assert_array_equal(to_network_input(jnp.full((3, 4, 4), -70.0), 2), 0.0)


def test_bad_input():
  with pytest.raises(InputError, match='block-pooled'):
    to_network_input(jnp.zeros((2, 6, 6)), 4)
  with pytest.raises(InputError, match='channels'):
    to_network_input(jnp.zeros((2, 4, 4)), 2, 2)
  with pytest.raises(InputError, match=r'\[..., T, H, W\]'):
    to_network_input(jnp.zeros((4, 4)), 2)
