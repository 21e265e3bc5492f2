"""Random transforms and their parameter draws against NumPy references typed from their
definitions (torchvision's ColorJitter with hue through Python's colorsys)."""

import colorsys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rwjax.eval import transforms as T

KEY = jax.random.PRNGKey(0)
translate = jax.jit(T.translate, static_argnames='fill')
rotate = jax.jit(T.rotate, static_argnames=('fill', 'order'))
apply_jitter = jax.jit(T.apply_jitter)
random_transform = jax.jit(T.random_transform, static_argnames='t')


@pytest.mark.parametrize('dy, dx', [(0, 0), (2, 3), (-1, 4), (3, -5), (-6, -2), (7, 0), (0, -9)])
def test_translation_shifts_exactly(dy, dx, shift):
  x = np.asarray(jax.random.uniform(KEY, (3, 7, 9, 2)))
  out = np.asarray(translate(x, jnp.array([dy, dx]), fill=-1.0))
  for i in range(3):
    np.testing.assert_array_equal(out[i], shift(x[i], dy, dx, -1.0))


def test_rotation_by_quarter_turns_is_exact_and_fills_the_corners():
  x = np.asarray(jax.random.uniform(KEY, (3, 6, 6, 2)))
  np.testing.assert_allclose(rotate(x, 0.0), x, atol=1e-6)
  # Counter-clockwise by 90 degrees (as displayed, row 0 on top) = np.rot90 over (rows, cols).
  for degrees, k in ((90.0, 1), (180.0, 2), (-90.0, 3)):
    np.testing.assert_allclose(rotate(x, degrees), np.rot90(x, k, axes=(1, 2)), atol=1e-5)
    # torchvision style: nearest pixel, exact.
    np.testing.assert_array_equal(rotate(x, degrees, order=0), np.rot90(x, k, axes=(1, 2)))
  turned = rotate(jnp.ones_like(x), 45.0, fill=0.5)
  assert float(turned[0, 0, 0, 0]) == pytest.approx(0.5)  # Uncovered corner.
  assert float(turned[0, 3, 3, 0]) == pytest.approx(1.0)  # Centre stays covered.
  # 45 degrees, nearest pixel: a point on the row through the centre, at the right edge,
  # lands at the pixel nearest its turned position (up and to the left).
  one = np.zeros((1, 9, 9, 1), np.float32)
  one[0, 4, 8] = 1.0
  turned = np.asarray(rotate(one, 45.0, order=0))[0, ..., 0]
  r = 4 / np.sqrt(2)
  y, x = np.unravel_index(turned.argmax(), turned.shape)
  assert abs(y - (4 - r)) <= 0.5 and abs(x - (4 + r)) <= 0.5


def test_affine_draws_rounded_uniform_shifts_and_uniform_angles_and_translations_shift(
    shift, found_shift):
  n, h, w = 40_000, 32, 24
  angles, shifts = map(np.asarray, T.affine_params(KEY, n, h, w, 0.0, 0.5))
  assert not angles.any()
  dy, dx = shifts[:, 0], shifts[:, 1]
  # round(U(-16, 16)) for y (0.5 * 32) and round(U(-12, 12)) for x (0.5 * 24).
  assert dy.min() == -16 and dy.max() == 16 and dx.min() == -12 and dx.max() == 12
  assert abs(dy.mean()) < 0.15 and abs(dx.mean()) < 0.1
  # Interior values have probability 1 / 32, the two ends half of that.
  freq = np.bincount(dy + 16, minlength=33) / n
  np.testing.assert_allclose(freq[1:-1], 1 / 32, atol=0.004)
  np.testing.assert_allclose(freq[[0, -1]], 0.5 / 32, atol=0.003)
  assert abs(np.corrcoef(dy, dx)[0, 1]) < 0.02  # x and y drawn independently
  angles, shifts = map(np.asarray, T.affine_params(KEY, n, 32, 32, 180.0, 0.0))
  assert not shifts.any()
  assert -180 <= angles.min() < -179 and 179 < angles.max() <= 180
  assert abs(angles.mean()) < 2.0 and abs(angles.std() - 180 / np.sqrt(3)) < 1.0
  # A random translation is the drawn shift, exactly, with black fill.
  images = np.asarray(jax.random.uniform(KEY, (5, h, w, 3)))
  moved = np.asarray(random_transform(jax.random.PRNGKey(3), images,
                                      T.Transform('translate', 'torchvision', translate=0.5)))
  _, shifts = T.affine_params(jax.random.PRNGKey(3), 5, h, w, 0.0, 0.5)
  for i, (sy, sx) in enumerate(np.asarray(shifts)):
    np.testing.assert_array_equal(moved[i], shift(images[i], sy, sx))
  # rwjax style: integer shifts of up to int(0.3 * 8) = 2 pixels, mean fill.
  x = np.asarray(jax.random.uniform(KEY, (12, 8, 10, 2)))
  t = T.Transform('translate', 'rwjax', translate=0.3, fill='mean')
  out = np.asarray(random_transform(jax.random.PRNGKey(1), x, t))
  shifts = [found_shift(out[i], x[i], 2, x[i].mean((0, 1)), atol=1e-6) for i in range(12)]
  assert None not in shifts and len(set(shifts)) > 5


def jitter_reference(image, order, factors):
  """ColorJitter on one image f[H, W, C], typed from torchvision's documentation."""
  x = image.astype(np.float64)
  grey = lambda x: x if x.shape[-1] == 1 else (x @ np.array([0.2989, 0.587, 0.114]))[..., None]
  for op in order:
    f = factors[op]
    if op == 0:
      x = np.clip(f * x, 0, 1)
    elif op == 1:
      x = np.clip(f * x + (1 - f) * grey(x).mean(), 0, 1)
    elif x.shape[-1] == 1:
      continue
    elif op == 2:
      x = np.clip(f * x + (1 - f) * grey(x), 0, 1)
    else:
      hsv = [colorsys.rgb_to_hsv(*p) for p in x.reshape(-1, 3)]
      x = np.array([colorsys.hsv_to_rgb((h + f) % 1.0, s, v) for h, s, v in hsv]).reshape(
          x.shape)
  return x


@pytest.mark.parametrize('channels', [3, 1])
def test_colour_jitter_factors_are_in_bounds_and_adjustments_match_their_definition(channels):
  order, factors = map(np.asarray, T.jitter_params(KEY, 5000, (0.5, 0.5, 0.5, 0.5)))
  assert (np.sort(order, 1) == np.arange(4)).all()  # a permutation per image
  assert len({tuple(o) for o in order}) == 24  # every order occurs
  assert factors[:, :3].min() >= 0.5 and factors[:, :3].max() <= 1.5
  assert factors[:, 3].min() >= -0.5 and factors[:, 3].max() <= 0.5
  assert abs(factors[:, 3].mean()) < 0.02 and abs(factors[:, 0].mean() - 1) < 0.02
  images = np.asarray(jax.random.uniform(jax.random.PRNGKey(1), (6, 5, 4, channels)))
  out = np.asarray(apply_jitter(images, order[:6], factors[:6]))
  for i in range(6):
    np.testing.assert_allclose(out[i], jitter_reference(images[i], order[i], factors[i]),
                               atol=2e-5)
  # Order matters: brightness after contrast differs from before it.
  fixed = np.array([[1.4, 0.6, 1.0, 0.0]] * 2, np.float32)
  a = np.asarray(apply_jitter(images[:2], np.array([[0, 1, 2, 3]] * 2), fixed))
  b = np.asarray(apply_jitter(images[:2], np.array([[1, 0, 2, 3]] * 2), fixed))
  assert np.abs(a - b).max() > 1e-3
  red = np.zeros((1, 2, 2, 3), np.float32)
  red[..., 0] = 1.0
  third = np.asarray(apply_jitter(red, np.array([[3, 0, 1, 2]]),
                                  np.array([[1.0, 1.0, 1.0, 1 / 3]], np.float32)))
  np.testing.assert_allclose(third[0, 0, 0], [0, 1, 0], atol=1e-6)  # red + 120 deg = green


def test_rwjax_colour_jitter_stays_in_range_and_zero_strength_is_identity():
  x = jax.random.uniform(KEY, (3, 7, 9, 3))
  jitter = jax.jit(T.yiq_jitter, static_argnums=2)
  np.testing.assert_allclose(jitter(jax.random.PRNGKey(1), x, (0.0,) * 4), x, atol=1e-5)
  y = jitter(jax.random.PRNGKey(1), x, (0.4, 0.4, 0.4, 0.1))
  assert y.shape == x.shape and 0.0 <= float(y.min()) and float(y.max()) <= 1.0
  assert float(jnp.abs(y - x).mean()) > 0.01
  # Grey images (no clipping here): brightness and contrast only, affine in each image.
  grey = np.asarray(0.4 + 0.2 * x[..., :1])
  g = np.asarray(jitter(jax.random.PRNGKey(1), grey, (0.4, 0.4, 0.4, 0.1)))
  for i in range(3):
    fit = np.polyfit(grey[i].ravel(), g[i].ravel(), 1)
    np.testing.assert_allclose(np.polyval(fit, grey[i].ravel()), g[i].ravel(), atol=1e-5)
  np.testing.assert_array_equal(random_transform(KEY, x, T.Transform('none')), x)
