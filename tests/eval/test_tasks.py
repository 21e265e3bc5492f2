"""Invariance tasks: exact translations, rotations, colour jitter, exemplar task layout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rwjax.data import tasks
from rwjax.data.tasks import ColorJitter
from rwjax.errors import InputError

# Jitted once per shape (eager dispatch of many small ops is slow); numeric fills, angles and
# jitter strengths are traced, so they share one compiled program.
translate = jax.jit(lambda x, shifts, fill=0.0: tasks.translate(x, shifts, fill))
rotate = jax.jit(lambda x, degrees, fill=0.0: tasks.rotate(x, jnp.float32(degrees), fill))
color_jitter = jax.jit(tasks.color_jitter)
exemplar_task = jax.jit(tasks.exemplar_task, static_argnames=(
    'transform', 'n_train', 'n_test', 'max_shift', 'fill'))


def _images(n=3, h=7, w=9, c=2, seed=0):
  return jax.random.uniform(jax.random.PRNGKey(seed), (n, h, w, c))


@pytest.mark.parametrize('dy, dx', [(0, 0), (2, 3), (-1, 4), (3, -5), (-6, -2), (7, 0), (0, -9)])
def test_translation_shifts_exactly(dy, dx):
  x = np.asarray(_images())
  out = np.asarray(translate(x, jnp.array([dy, dx]), fill=-1.0))
  expected = np.full_like(x, -1.0)
  h, w = x.shape[1:3]
  expected[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = (
      x[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)])
  np.testing.assert_array_equal(out, expected)


def test_per_image_shifts_and_mean_fill():
  x = _images()
  shifts = jnp.array([[1, 0], [0, -2], [-3, 3]])
  out = jax.jit(tasks.translate, static_argnames='fill')(x, shifts, fill='mean')
  for i in range(3):
    alone = translate(x[i:i + 1], shifts[i])
    covered = translate(jnp.ones_like(x[i:i + 1]), shifts[i]) == 1
    np.testing.assert_array_equal(out[i][covered[0]], alone[0][covered[0]])
    uncovered = np.asarray(out[i])[~np.asarray(covered[0])].reshape(-1, 2)
    np.testing.assert_allclose(uncovered, np.broadcast_to(x[i].mean((0, 1)), uncovered.shape),
                               rtol=1e-6)


def test_rotation_by_quarter_turns_is_exact_and_fills_the_corners():
  x = _images(h=6, w=6)
  np.testing.assert_allclose(rotate(x, 0.0), x, atol=1e-6)
  # Counter-clockwise by 90 degrees = np.rot90 in the (row, column) plane.
  np.testing.assert_allclose(rotate(x, 90.0), np.rot90(x, 1, axes=(1, 2)), atol=1e-5)
  np.testing.assert_allclose(rotate(x, 180.0), x[:, ::-1, ::-1], atol=1e-5)
  turned = rotate(jnp.ones_like(x), 45.0, fill=0.5)
  assert float(turned[0, 0, 0, 0]) == pytest.approx(0.5)  # Uncovered corner.
  assert float(turned[0, 3, 3, 0]) == pytest.approx(1.0)  # Centre stays covered.


def test_colour_jitter_stays_in_range_and_zero_strength_is_identity():
  x = _images(c=3)
  none = ColorJitter(0.0, 0.0, 0.0, 0.0)
  np.testing.assert_allclose(color_jitter(jax.random.PRNGKey(1), x, none), x, atol=1e-5)
  y = color_jitter(jax.random.PRNGKey(1), x)
  assert y.shape == x.shape and 0.0 <= float(y.min()) and float(y.max()) <= 1.0
  assert float(jnp.abs(y - x).mean()) > 0.01
  # Grey images: brightness and contrast only, still grey.
  g = color_jitter(jax.random.PRNGKey(1), x[..., :1])
  assert g.shape == (3, 7, 9, 1)


def test_exemplar_translation_task_holds_out_test_shifts():
  p, n_train, n_test = 3, 5, 4
  # Images with all-distinct positive pixels, so a sample determines its shift.
  base = jnp.arange(1, 1 + p * 8 * 8, dtype=jnp.float32).reshape(p, 8, 8, 1) / 1000
  task = exemplar_task(jax.random.PRNGKey(0), base, transform='translate', n_train=n_train,
                       n_test=n_test, max_shift=0.5)
  assert task.x_train.shape == (p * n_train, 8, 8, 1) and task.x_test.shape == (p * n_test, 8, 8, 1)
  np.testing.assert_array_equal(task.y_train, np.tile(np.arange(p), n_train))
  np.testing.assert_array_equal(task.y_test, np.tile(np.arange(p), n_test))

  def shift_of(sample, label):
    # The exemplar's top-left visible pixel locates the shift; the whole sample must match.
    y, x = np.argwhere(np.asarray(sample)[..., 0] > 0)[0]
    source = np.argwhere(np.asarray(base[label]) == sample[y, x])[0]
    dy, dx = int(y - source[0]), int(x - source[1])
    assert -4 <= dy <= 4 and -4 <= dx <= 4
    np.testing.assert_array_equal(translate(base[label:label + 1], jnp.array([dy, dx]))[0],
                                  sample)
    return dy, dx

  for label in range(p):
    train = {shift_of(s, label) for s in task.x_train[task.y_train == label]}
    test = {shift_of(s, label) for s in task.x_test[task.y_test == label]}
    assert len(train) == n_train and len(test) == n_test and not train & test


def test_exemplar_controls_and_errors():
  x = _images(c=3, h=8, w=8)
  for transform in ('rotate', 'color'):
    task = exemplar_task(jax.random.PRNGKey(0), x, transform=transform, n_train=2, n_test=2)
    assert task.x_train.shape == (6, 8, 8, 3) and task.x_test.shape == (6, 8, 8, 3)
    assert not np.allclose(task.x_train[:3], task.x_train[3:])
  with pytest.raises(InputError, match='unknown transform'):
    exemplar_task(jax.random.PRNGKey(0), x, transform='shear', n_train=2, n_test=2)
  with pytest.raises(InputError, match='distinct shifts'):
    exemplar_task(jax.random.PRNGKey(0), x, transform='translate', n_train=20, n_test=10,
                  max_shift=0.25)
