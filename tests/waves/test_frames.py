"""frames.to_network_input: z-score per pixel, [0, 1] range, pooling, channels, jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rwjax.errors import InputError
from rwjax.waves.frames import to_network_input


def test_range_shape_channels_per_retina_norm_zscore_pooling_and_bad_input():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 8, 8)) * 10 - 70
  y = jax.jit(to_network_input, static_argnums=(1, 2))(x, 4, 3)
  assert y.shape == (2, 5, 4, 4, 3) and y.dtype == jnp.float32
  assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
  np.testing.assert_array_equal(y[..., 0], y[..., 2])
  per_retina = np.asarray(to_network_input(x, 4))  # the default norm
  np.testing.assert_array_equal(per_retina, to_network_input(x, 4, 1, 'per_retina'))
  # Per retina: each retina's full-resolution z-scores min-maxed, then pooled, so the pooled
  # frames stay inside [0, 1] without reaching both ends.
  assert per_retina.min() > 0.0 and per_retina.max() < 1.0
  assert not np.allclose(per_retina, to_network_input(x, 4, 1, 'paper'))
  with pytest.raises(InputError, match='norm'):
    to_network_input(x, 4, 1, 'global')
  one = to_network_input(x[0], 8, 1)                       # no batch axis, no pooling
  assert one.shape == (5, 8, 8, 1)
  assert float(one.min()) == 0.0 and float(one.max()) == pytest.approx(1.0)
  with pytest.raises(InputError, match='block-pooled'):
    to_network_input(jnp.zeros((2, 6, 6)), 4)
  with pytest.raises(InputError, match='channels'):
    to_network_input(jnp.zeros((2, 4, 4)), 2, 2)
  with pytest.raises(InputError, match=r'\[..., T, H, W\]'):
    to_network_input(jnp.zeros((4, 4)), 2)
  t = jax.random.normal(jax.random.PRNGKey(1), (6, 1, 1))
  base = jnp.arange(16.0).reshape(1, 4, 4)
  gain = 1.0 + jnp.arange(16.0).reshape(1, 4, 4)
  y = to_network_input(base + gain * t, 4)[..., 0]
  np.testing.assert_allclose(y, jnp.broadcast_to(y[:, :1, :1], y.shape), atol=1e-5)
  x = jax.random.uniform(jax.random.PRNGKey(2), (3, 4, 4))
  full = to_network_input(x, 4)
  pooled = to_network_input(x, 2)
  np.testing.assert_allclose(pooled[:, 0, 1], full[:, :2, 2:].mean(axis=(1, 2)), atol=1e-6)
  np.testing.assert_array_equal(to_network_input(jnp.full((3, 4, 4), -70.0), 2), 0.0)


def _paper_numpy(movie_32: np.ndarray) -> np.ndarray:
  """The paper's src/data.py on a [T, 32, 32] movie, typed from its equations: sklearn's
  StandardScaler on [T, pixels] (mean and population std per pixel; a constant pixel keeps
  scale 1), then (x - min) / (max - min) over the whole array. float64 throughout."""
  t = movie_32.shape[0]
  x = movie_32.reshape(t, -1).astype(np.float64)
  mean = x.sum(0) / t
  std = np.sqrt(((x - mean) ** 2).sum(0) / t)
  std[std == 0] = 1.0
  z = (x - mean) / std
  return ((z - z.min()) / (z.max() - z.min())).reshape(movie_32.shape)


def test_paper_norm_against_the_papers_equations():
  rng = np.random.default_rng(0)
  t = np.arange(40)[:, None, None]
  # Pixels of different baselines and gains, a travelling bump and one constant pixel.
  raw = (-70 + 5 * rng.random((1, 8, 8)) + (1 + rng.random((1, 8, 8)))
         * (20 * np.exp(-((np.arange(8)[None, None, :] - t / 5) ** 2))
            + rng.normal(size=(40, 8, 8))))
  raw[:, 0, :2] = -70.0  # one pooled pixel (0, 0) constant
  got = np.asarray(to_network_input(jnp.asarray(raw, jnp.float32), 4, 1, 'paper'))[..., 0]
  pooled = raw.reshape(40, 4, 2, 4, 2).mean(axis=(2, 4))  # the paper's 32x32: pooled first
  np.testing.assert_allclose(got, _paper_numpy(pooled), atol=2e-5)
  assert got.min() == 0.0 and got.max() == pytest.approx(1.0)  # spans [0, 1] exactly
  # Several retinas are one movie: the z-score and min-max run over all of their frames.
  two = np.stack([raw, raw[::-1] * 1.5 + 30])
  got2 = np.asarray(to_network_input(jnp.asarray(two, jnp.float32), 4, 1, 'paper'))[..., 0]
  joined = _paper_numpy(two.reshape(80, 4, 2, 4, 2).mean(axis=(2, 4)))
  np.testing.assert_allclose(got2.reshape(80, 4, 4), joined, atol=2e-5)
