"""The shared image preprocessing: range, resolution, channels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rwjax.data.preprocess import channel_stats, to_network_input
from rwjax.errors import InputError


def test_uint8_scales_to_unit_range_grey_to_rgb_replicates_and_rgb_to_grey_takes_luminance():
  images = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3) * 2
  x = to_network_input(images, 4, 3)
  assert x.dtype == jnp.float32 and x.shape == (2, 4, 4, 3)
  np.testing.assert_allclose(x, images / 255.0, rtol=1e-6)
  grey = np.random.default_rng(0).integers(0, 256, (3, 5, 5, 1), dtype=np.uint8)
  rgb = to_network_input(grey, 5, 3)
  np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])
  np.testing.assert_allclose(rgb[..., 1], grey[..., 0] / 255.0, rtol=1e-6)
  # Luminance weights sum to 1: a grey RGB image keeps its level.
  np.testing.assert_allclose(to_network_input(rgb, 5, 1)[..., 0], grey[..., 0] / 255.0,
                             atol=1e-6)
  red = np.zeros((1, 2, 2, 3), np.float32)
  red[..., 0] = 1.0
  np.testing.assert_allclose(to_network_input(red, 2, 1), 0.299, rtol=1e-6)


def test_resize_keeps_the_mean_pad_keeps_small_images_and_bad_input_raises():
  flat = np.full((1, 8, 8, 1), 0.25, np.float32)
  np.testing.assert_allclose(to_network_input(flat, 32, 1), 0.25, rtol=1e-6)
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, 16, 16, 3))
  small = jax.jit(to_network_input, static_argnums=(1, 2))(x, 8, 3)
  assert small.shape == (2, 8, 8, 3)
  # Antialiased 2x bilinear downsampling averages 2x2 blocks (up to the border).
  np.testing.assert_allclose(small.mean(axis=(1, 2)), x.mean(axis=(1, 2)), atol=0.02)
  assert 0.0 <= float(small.min()) and float(small.max()) <= 1.0
  digits = np.random.default_rng(0).integers(0, 256, (2, 28, 28, 1), dtype=np.uint8)
  x = np.asarray(to_network_input(digits, 32, 3, fit='pad'))  # the paper's MNIST
  assert x.shape == (2, 32, 32, 3)
  np.testing.assert_allclose(x[:, 2:30, 2:30, 1], digits[..., 0] / 255.0, rtol=1e-6)
  assert not x[:, :2].any() and not x[:, 30:].any() and not x[:, :, :2].any()
  big = np.zeros((1, 40, 40, 1), np.uint8)
  assert to_network_input(big, 32, 1, fit='pad').shape == (1, 32, 32, 1)  # larger: resized
  with pytest.raises(InputError, match='fit'):
    to_network_input(digits, 32, 1, fit='crop')
  for shape, channels in (((2, 4, 4), 3), ((2, 4, 4, 2), 3), ((2, 4, 4, 3), 2)):
    with pytest.raises(InputError):
      to_network_input(np.zeros(shape, np.uint8), 4, channels)


def test_channel_stats_are_each_channels_mean_and_population_std():
  x = np.random.default_rng(1).random((5, 4, 3, 3), np.float32) * [1.0, 0.5, 2.0]
  mean, std = channel_stats(x)
  np.testing.assert_allclose(mean, x.reshape(-1, 3).mean(0), rtol=1e-5)
  np.testing.assert_allclose(std, x.reshape(-1, 3).std(0), rtol=1e-5)
