"""The paper's invariance tasks: class selection by name, the seeded 5/6 : 1/6 split, one
transform draw per image, MNIST padding, and the bad-input messages."""

import jax
import numpy as np
import pytest

from rwjax.data import augs, paper_tasks
from rwjax.data.preprocess import to_network_input
from rwjax.errors import InputError

NAMES = ['cat', 'dog', 'frog', 'ship']


def test_classes_are_chosen_by_name_first_images_first_and_relabelled_in_list_order():
  labels = np.array([3, 0, 1, 3, 1, 3, 0, 2])
  index, new = paper_tasks.select_classes(labels, NAMES, ['ship', 'dog'], per_class=2)
  np.testing.assert_array_equal(index, [0, 3, 2, 4])  # first two ships, first two dogs
  np.testing.assert_array_equal(new, [0, 0, 1, 1])
  index, new = paper_tasks.select_classes(labels, NAMES, ['ship', 'cat'], per_class=0)
  np.testing.assert_array_equal(index, [0, 3, 5, 1, 6])


def test_unknown_class_name_and_too_few_images_are_one_clear_error_each():
  labels = np.array([0, 1, 1, 2])
  with pytest.raises(InputError, match=r"unknown class name.*'horse'.*cat, dog, frog, ship"):
    paper_tasks.select_classes(labels, NAMES, ['cat', 'horse'])
  with pytest.raises(InputError, match=r"class 'cat' has 1 images.*per_class=2"):
    paper_tasks.select_classes(labels, NAMES, ['dog', 'cat'], per_class=2)


def test_split_is_five_sixths_disjoint_complete_and_seeded():
  train, test = paper_tasks.split(jax.random.PRNGKey(4), 600)
  assert len(train) == 500 and len(test) == 100  # the paper's 600 * 5 // 6
  assert sorted(np.concatenate([train, test])) == list(range(600))
  again, _ = paper_tasks.split(jax.random.PRNGKey(4), 600)
  other, _ = paper_tasks.split(jax.random.PRNGKey(5), 600)
  np.testing.assert_array_equal(train, again)
  assert set(train) != set(other)


def test_each_image_is_transformed_once_with_the_paper_translation():
  images = np.asarray(jax.random.uniform(jax.random.PRNGKey(0), (12, 8, 8, 3)))
  labels = np.arange(12) % 3
  key = jax.random.PRNGKey(7)
  plain = paper_tasks.invariance_task(key, images, labels, 'none')
  moved = paper_tasks.invariance_task(key, images, labels, 'translate')
  train, test = paper_tasks.split(jax.random.fold_in(key, 0), 12)
  np.testing.assert_array_equal(np.asarray(plain.x_train), images[train])
  np.testing.assert_array_equal(plain.y_test, labels[test])
  np.testing.assert_array_equal(moved.y_train, plain.y_train)  # same split for each transform
  _, shifts = augs.affine_params(jax.random.fold_in(key, 1), 12, 8, 8, augs.Affine(0.0, 0.5))
  shifts = np.asarray(shifts)
  assert np.abs(shifts).max() <= 4 and np.abs(shifts).sum() > 0
  for row, i in enumerate(train):
    dy, dx = shifts[i]
    expected = np.zeros_like(images[i])
    expected[max(dy, 0):8 + min(dy, 0), max(dx, 0):8 + min(dx, 0)] = (
        images[i, max(-dy, 0):8 + min(-dy, 0), max(-dx, 0):8 + min(-dx, 0)])
    np.testing.assert_array_equal(np.asarray(moved.x_train[row]), expected)
  with pytest.raises(InputError, match='scale'):
    paper_tasks.invariance_task(key, images, labels, 'scale')


def test_mnist_is_padded_to_the_network_input_with_unchanged_pixels():
  digits = np.random.default_rng(0).integers(0, 256, (2, 28, 28, 1), dtype=np.uint8)
  x = np.asarray(to_network_input(digits, 32, 3, fit='pad'))
  assert x.shape == (2, 32, 32, 3)
  np.testing.assert_allclose(x[:, 2:30, 2:30, 1], digits[..., 0] / 255.0, rtol=1e-6)
  assert not x[:, :2].any() and not x[:, 30:].any() and not x[:, :, :2].any()
  big = np.zeros((1, 40, 40, 1), np.uint8)
  assert to_network_input(big, 32, 1, fit='pad').shape == (1, 32, 32, 1)  # larger: resized
  with pytest.raises(InputError, match='fit'):
    to_network_input(digits, 32, 1, fit='crop')
