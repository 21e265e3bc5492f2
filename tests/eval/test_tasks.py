"""Probe tasks: classification, exemplar and the paper's invariance tasks."""

import jax
import numpy as np
import pytest

from rwjax import defaults
from rwjax.errors import InputError
from rwjax.eval import evals
from rwjax.eval import tasks
from rwjax.eval.transforms import Transform


def _images(n, size=8, c=3, seed=0):
  return np.asarray(jax.random.uniform(jax.random.PRNGKey(seed), (n, size, size, c)))


def test_classification_shifted_test_sets_and_classes_chosen_by_name_and_relabelled(shift):
  x, y = _images(4), np.arange(4)
  task = tasks.classification('digits', x, y, x[:3], y[:3], 4, shifts=(0, 2, 3))
  assert list(task.tests) == ['digits', 'digits_shift2', 'digits_shift3']
  np.testing.assert_array_equal(task.tests['digits'][0], x[:3])
  for k in (2, 3):
    moved, labels = task.tests[f'digits_shift{k}']
    np.testing.assert_array_equal(labels, y[:3])
    for i in range(3):
      np.testing.assert_array_equal(moved[i], shift(x[i], 0, k))
  names = ['cat', 'dog', 'frog', 'ship']
  labels = np.array([3, 0, 1, 3, 1, 3, 0, 2])
  index, new = tasks.select_classes(labels, names, ['ship', 'dog'], 2, 'c')
  np.testing.assert_array_equal(index, [0, 3, 2, 4])  # first two ships, first two dogs
  np.testing.assert_array_equal(new, [0, 0, 1, 1])
  index, new = tasks.select_classes(labels, names, ['ship', 'cat'], 0, 'c')
  np.testing.assert_array_equal(index, [0, 3, 5, 1, 6])
  what = 'config.evals.p.invariance.classes'
  with pytest.raises(InputError, match=rf"{what}: unknown class name.*'horse'.*cat, dog, frog"):
    tasks.select_classes(labels, names, ['cat', 'horse'], 0, what)
  with pytest.raises(InputError, match=rf"{what}: class 'dog' has 2 images.*per_class=3"):
    tasks.select_classes(labels, names, ['dog'], 3, what)


def test_exemplar_translation_holds_out_test_shifts_and_the_invariance_split_and_draws(
    found_shift):
  p, n_train, n_test = 3, 5, 4
  base = _images(p, c=1)
  task = tasks.exemplar('exemplar_translate', jax.random.PRNGKey(0), base,
                        Transform('translate', 'rwjax', translate=0.5),
                        n_train=n_train, n_test=n_test)
  x_test, y_test = task.tests['exemplar_translate']
  assert task.num_classes == p and x_test.shape == (p * n_test, 8, 8, 1)
  np.testing.assert_array_equal(task.y_train, np.tile(np.arange(p), n_train))
  np.testing.assert_array_equal(y_test, np.tile(np.arange(p), n_test))
  for label in range(p):
    # Shifts of up to int(0.5 * 8) = 4 pixels, distinct within the image's samples.
    train = [found_shift(s, base[label], 4)
             for s in np.asarray(task.x_train)[task.y_train == label]]
    test = [found_shift(s, base[label], 4) for s in np.asarray(x_test)[y_test == label]]
    assert None not in train + test
    assert len(set(train)) == n_train and len(set(test)) == n_test and not set(train) & set(test)
  with pytest.raises(InputError, match='distinct shifts'):  # (2 * 2 + 1)^2 = 25 < 30
    tasks.exemplar('e', jax.random.PRNGKey(0), base, Transform('translate', translate=0.25),
                   n_train=20, n_test=10)
  for t in (Transform('rotate'), Transform('color', 'torchvision')):
    task = tasks.exemplar('e', jax.random.PRNGKey(0), _images(3), t, n_train=2, n_test=2)
    assert task.x_train.shape == (6, 8, 8, 3) and task.tests['e'][0].shape == (6, 8, 8, 3)
    assert not np.allclose(task.x_train[:3], task.x_train[3:])
  index = np.arange(600, dtype=np.float32).reshape(600, 1, 1, 1)  # value = index
  split = lambda key: tasks.invariance('i', jax.random.PRNGKey(key), index, np.zeros(600),
                                       Transform('none'), 1)
  task = split(4)
  train = np.asarray(task.x_train).ravel().astype(int)
  test = np.asarray(task.tests['i'][0]).ravel().astype(int)
  assert len(train) == 500 and len(test) == 100  # the paper's 600 * 5 // 6
  assert sorted(np.concatenate([train, test])) == list(range(600))
  np.testing.assert_array_equal(np.asarray(split(4).x_train).ravel(), train)
  assert set(np.asarray(split(5).x_train).ravel().astype(int)) != set(train)
  images, labels = _images(12), np.arange(12) % 3
  key = jax.random.PRNGKey(7)
  plain = tasks.invariance('none', key, images, labels, Transform('none'), 3)
  moved = tasks.invariance('t', key, images, labels,
                           Transform('translate', 'torchvision', translate=0.5), 3, draws=3)
  # Which source image each train row is: the rows of 'none' are the images themselves.
  rows = [next(i for i in range(12) if np.array_equal(images[i], r)) for r in plain.x_train]
  assert len(set(rows)) == 10 and len(plain.tests['none'][1]) == 2 and not plain.redraws
  np.testing.assert_array_equal(plain.y_train, labels[rows])
  np.testing.assert_array_equal(moved.y_train, plain.y_train)
  # round(U(-4, 4)) pixels each way, zero fill; per draw (one per epoch of the probe) a new
  # shift of the same images in the same order, test images too.
  assert len(moved.redraws) == 2
  draws = [(moved.x_train, moved.tests)] + list(moved.redraws)
  shifts = [[found_shift(s, images[i], 4) for s, i in zip(np.asarray(x), rows)]
            for x, _ in draws]
  assert all(None not in s and len(set(s)) > 3 for s in shifts)
  assert shifts[0] != shifts[1] != shifts[2]
  for _, tests in draws[1:]:
    np.testing.assert_array_equal(tests['t'][1], moved.tests['t'][1])
    assert not np.array_equal(tests['t'][0], moved.tests['t'][0])


def test_normalize_dataset_standardises_every_task_image_and_manifold_after_transforms(
    eval_context):
  config = defaults.config_file('evaluate', 'paper_digits').evals.paper_probes
  stats = lambda spec: (np.full(1, 0.5, np.float32), np.full(1, 0.25, np.float32))
  ctx = eval_context()._replace(stats=stats)
  plain = evals.build('p', config, ctx).tasks(0)
  config.normalize = 'dataset'
  normed = evals.build('p', config, ctx).tasks(0)
  assert [t.name for t in normed] == ['invariance_translate', 'invariance_none', 'digits']
  for a, b in zip(plain, normed):
    np.testing.assert_allclose(b.x_train, (np.asarray(a.x_train) - 0.5) / 0.25, atol=1e-6)
    for name, (x, y) in a.tests.items():
      np.testing.assert_allclose(b.tests[name][0], (np.asarray(x) - 0.5) / 0.25, atol=1e-6)
  c = evals.new('manifolds')
  c.kinds = ('translate', 'class_test')
  for section in (c.exemplar, c.classes['class_test']):
    section.update({'source': 'digits', 'p': 2, 'm': 3})
  evals.validate('m', c)
  plain = evals.build('m', c, ctx).manifolds(0)
  c.normalize = 'dataset'
  for kind, (images, sizes) in evals.build('m', c, ctx).manifolds(0).items():
    assert sizes == plain[kind][1] == [3, 3]
    np.testing.assert_allclose(images, (np.asarray(plain[kind][0]) - 0.5) / 0.25, atol=1e-6)
