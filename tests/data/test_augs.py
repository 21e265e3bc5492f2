"""The paper's torchvision transforms against NumPy references typed from their definitions:
the shift distribution of RandomAffine(0, translate), exact rotations by known angles, and
ColorJitter's factors and adjustments (hue through Python's colorsys)."""

import colorsys

import jax
import numpy as np
import pytest

from rwjax.data import augs
from rwjax.errors import InputError

KEY = jax.random.PRNGKey(0)


def shift_reference(image, dy, dx, fill=0.0):
  """out[y, x] = image[y - dy, x - dx] where that exists, else fill."""
  h, w = image.shape[:2]
  out = np.full_like(image, fill)
  out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = (
      image[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)])
  return out


def test_translate_shifts_are_rounded_uniform_in_half_the_side_and_exact():
  n, h, w = 40_000, 32, 24
  angles, shifts = augs.affine_params(KEY, n, h, w, augs.Affine(0.0, 0.5))
  angles, shifts = np.asarray(angles), np.asarray(shifts)
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
  images = np.asarray(jax.random.uniform(KEY, (5, h, w, 3)))
  moved = np.asarray(augs.random_transform(jax.random.PRNGKey(3), images,
                                           augs.Affine(0.0, 0.5)))
  _, shifts = augs.affine_params(jax.random.PRNGKey(3), 5, h, w, augs.Affine(0.0, 0.5))
  for i, (sy, sx) in enumerate(np.asarray(shifts)):
    np.testing.assert_array_equal(moved[i], shift_reference(images[i], sy, sx))


def test_rotation_by_a_known_angle_is_the_exact_quarter_turn_and_angles_are_uniform():
  image = np.asarray(jax.random.uniform(KEY, (1, 9, 9, 2)))
  for degrees, k in ((90.0, 1), (180.0, 2), (-90.0, 3)):
    turned = np.asarray(augs.affine(image, np.array([degrees]), np.zeros((1, 2), int)))
    # Counter-clockwise as displayed = np.rot90 over (rows, columns).
    np.testing.assert_array_equal(turned[0], np.rot90(image[0], k, axes=(0, 1)))
  angles, shifts = augs.affine_params(KEY, 40_000, 32, 32, augs.Affine(180.0, 0.0))
  angles = np.asarray(angles)
  assert not np.asarray(shifts).any()
  assert -180 <= angles.min() < -179 and 179 < angles.max() <= 180
  assert abs(angles.mean()) < 2.0 and abs(angles.std() - 180 / np.sqrt(3)) < 1.0
  # 45 degrees about the centre: a pixel at (dy, dx) from the centre lands at the nearest
  # pixel of its turned position, (dy, dx) -> (-dx, dy) for 90; uncovered corners are 0.
  one = np.zeros((1, 9, 9, 1), np.float32)
  one[0, 4, 8] = 1.0  # On the row through the centre, right edge.
  turned = np.asarray(augs.affine(one, np.array([45.0]), np.zeros((1, 2), int)))[0, ..., 0]
  r = 4 / np.sqrt(2)  # The point turned 45 degrees counter-clockwise: up and left.
  y, x = np.unravel_index(turned.argmax(), turned.shape)
  assert abs(y - (4 - r)) <= 0.5 and abs(x - (4 + r)) <= 0.5 and turned.sum() >= 1


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
      flat = x.reshape(-1, 3)
      hsv = [colorsys.rgb_to_hsv(*p) for p in flat]
      x = np.array([colorsys.hsv_to_rgb((h + f) % 1.0, s, v) for h, s, v in hsv]).reshape(
          x.shape)
  return x


@pytest.mark.parametrize('channels', [3, 1])
def test_colour_jitter_factors_are_in_bounds_and_adjustments_match_their_definition(channels):
  spec = augs.Jitter(0.5, 0.5, 0.5, 0.5)
  order, factors = map(np.asarray, augs.jitter_params(KEY, 5000, spec))
  assert (np.sort(order, 1) == np.arange(4)).all()  # a permutation per image
  assert len({tuple(o) for o in order}) == 24  # every order occurs
  assert factors[:, :3].min() >= 0.5 and factors[:, :3].max() <= 1.5
  assert factors[:, 3].min() >= -0.5 and factors[:, 3].max() <= 0.5
  assert abs(factors[:, 3].mean()) < 0.02 and abs(factors[:, 0].mean() - 1) < 0.02
  images = np.asarray(jax.random.uniform(jax.random.PRNGKey(1), (6, 5, 4, channels)))
  out = np.asarray(augs.apply_jitter(images, order[:6], factors[:6]))
  for i in range(6):
    np.testing.assert_allclose(out[i], jitter_reference(images[i], order[i], factors[i]),
                               atol=2e-5)
  # Order matters: brightness after contrast differs from before it.
  fixed = np.array([[1.4, 0.6, 1.0, 0.0]] * 2, np.float32)
  a, b = np.asarray(augs.apply_jitter(images[:2], np.array([[0, 1, 2, 3]] * 2), fixed)), \
      np.asarray(augs.apply_jitter(images[:2], np.array([[1, 0, 2, 3]] * 2), fixed))
  assert np.abs(a - b).max() > 1e-3


def test_hue_shift_of_a_pure_colour_and_bad_strengths():
  red = np.zeros((1, 2, 2, 3), np.float32)
  red[..., 0] = 1.0
  third = np.asarray(augs.apply_jitter(red, np.array([[3, 0, 1, 2]]),
                                       np.array([[1.0, 1.0, 1.0, 1 / 3]], np.float32)))
  np.testing.assert_allclose(third[0, 0, 0], [0, 1, 0], atol=1e-6)  # red + 120 deg = green
  with pytest.raises(InputError, match='hue'):
    augs.jitter_params(KEY, 2, augs.Jitter(hue=0.7))
