"""Linear probes: perfect on separable data, sensible on real digits from raw pixels."""

import jax
import numpy as np
import pytest

from rwjax.data import load_images, to_network_input
from rwjax.errors import InputError
from rwjax.eval.probes import linear_probe


def test_probe_is_perfect_on_linearly_separable_data():
  rng = np.random.default_rng(0)
  classes, dim = 5, 12
  centres = rng.normal(size=(classes, dim)) * 4

  def sample(n):
    labels = rng.integers(0, classes, n)
    return (centres[labels] + 0.3 * rng.normal(size=(n, dim))).astype(np.float32), labels

  (x_train, y_train), (x_test, y_test) = sample(300), sample(200)
  result = linear_probe(jax.random.PRNGKey(0), x_train, y_train, x_test, y_test,
                        num_classes=classes)
  assert result.test_accuracy == 1.0 and result.train_accuracy == 1.0
  assert len(result.val_accuracies) == 6 and result.l2 in (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def test_probe_on_raw_digit_pixels_reaches_sensible_accuracy():
  images, labels, names = load_images('digits', 'train')
  test_images, test_labels, _ = load_images('digits', 'test')
  # The shared preprocessing, then raw pixels as features.
  flat = lambda x: np.asarray(to_network_input(x, 8, 1)).reshape(len(x), -1)
  result = linear_probe(jax.random.PRNGKey(0), flat(images), labels, flat(test_images),
                        test_labels, num_classes=len(names))
  assert result.test_accuracy > 0.9
  assert result.val_accuracy == max(result.val_accuracies)


def test_probe_rejects_bad_shapes_and_split():
  x, y = np.zeros((10, 3), np.float32), np.zeros(10, np.int32)
  with pytest.raises(InputError, match='same D'):
    linear_probe(jax.random.PRNGKey(0), x, y, x[:, :2], y, num_classes=2)
  with pytest.raises(InputError, match='val_fraction'):
    linear_probe(jax.random.PRNGKey(0), x, y, x, y, num_classes=2, val_fraction=0.0)
