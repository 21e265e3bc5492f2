"""Probe tasks on natural images: one `Task` type for every kind the evaluation runs.

  classification  a dataset's train split against its test split; optionally extra test sets
                  of the test images shifted right by k pixels (uncovered pixels 0), the probe
                  trained on centred images;
  exemplar        P source images, each its own class, its samples random transforms of it
                  (rwjax.eval.transforms): n_train per image to train on, n_test others to
                  test (rwjax-style translations: test shifts distinct from train shifts);
  invariance      the paper's CIFAR100_classify_augs: the images of a few named classes (all
                  of each class, train and test pooled), each transformed once, split 5/6 :
                  1/6 by a seeded permutation.

Any image source with class names stands in for CIFAR-100 (docs/evaluation.md; how the paper
built its task: 'The paper's code and this one').
"""

import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rwjax.errors import InputError
from rwjax.eval import transforms

# The ten lowest CIFAR-100 fine labels (0..9); the paper's ten are unknown (docs/evaluation.md).
CIFAR100_CLASSES = ('apple', 'aquarium_fish', 'baby', 'bear', 'beaver', 'bed', 'bee',
                    'beetle', 'bicycle', 'bottle')
TRAIN_SHARE = (5, 6)  # The paper's 5/6 : 1/6 split.


class Task(NamedTuple):
  """Train images and one or more test sets; label k is class k of `num_classes`."""
  name: str
  x_train: jax.Array  # f32[N, H, W, C]
  y_train: np.ndarray  # i32[N]
  tests: dict  # test set name -> (f32[M, H, W, C], i32[M]); the first is the task's own
  num_classes: int
  # Further draws of the transforms, one per later epoch of the Adam probe: (x_train, tests)
  # with the images and labels of the first draw in the same order ('epoch' redraws).
  redraws: tuple = ()


def classification(name: str, x_train, y_train, x_test, y_test, num_classes: int,
                   shifts: Sequence[int] = ()) -> Task:
  """A dataset's classification task; test set f'{name}_shift{k}' for each shift k > 0."""
  tests = {name: (x_test, np.asarray(y_test))}
  tests.update({f'{name}_shift{k}': (_shift_right(x_test, k), np.asarray(y_test))
                for k in shifts if k})
  return Task(name, x_train, np.asarray(y_train), tests, num_classes)


@functools.partial(jax.jit, static_argnums=1)
def _shift_right(images: jax.Array, k: int) -> jax.Array:
  return transforms.translate(images, jnp.array([0, k]))


def _distinct_shifts(key: jax.Array, p: int, count: int, max_px: int) -> jax.Array:
  """i32[P, count, 2]: per image, `count` distinct (dy, dx) in [-max_px, max_px]^2."""
  side = 2 * max_px + 1
  pick = lambda k: jax.random.choice(k, side * side, (count,), replace=False)
  flat = jax.vmap(pick)(jax.random.split(key, p))
  return jnp.stack([flat // side, flat % side], -1) - max_px


@functools.partial(jax.jit, static_argnames=('t', 'n_train', 'n_test'))
def _exemplar_samples(key, images, t, n_train, n_test):
  p, h, w, _ = images.shape
  count = n_train + n_test
  tiled = jnp.tile(images, (count, 1, 1, 1))  # [count * P, H, W, C], sample-major.
  if t.kind == 'translate' and t.style == 'rwjax':
    shifts = _distinct_shifts(key, p, count, int(t.translate * min(h, w)))
    return transforms.translate(tiled, shifts.transpose(1, 0, 2).reshape(-1, 2), t.fill)
  return transforms.random_transform(key, tiled, t)


def exemplar(name: str, key: jax.Array, images: jax.Array, t: transforms.Transform, *,
             n_train: int, n_test: int, what: str = 'exemplar') -> Task:
  """Image p of images f32[P, H, W, C] is class p; samples ordered sample-major; InputError
  naming `what` (the config section) when the shifts cannot be distinct."""
  p = len(images)
  if t.kind == 'translate' and t.style == 'rwjax':
    side = 2 * int(t.translate * min(images.shape[1:3])) + 1
    if n_train + n_test > side * side:
      raise InputError(f'{what}.n_train + n_test = {n_train + n_test} distinct shifts of up '
                       f'to {side // 2} px do not exist ({side * side} do); lower them or '
                       f'raise {what}.translate')
  samples = _exemplar_samples(key, images, t, n_train, n_test)
  labels = np.tile(np.arange(p, dtype=np.int32), n_train + n_test)
  cut = n_train * p
  return Task(name, samples[:cut], labels[:cut], {name: (samples[cut:], labels[cut:])}, p)


def select_classes(labels: np.ndarray, names: Sequence[str], classes: Sequence[str],
                   per_class: int, what: str) -> tuple[np.ndarray, np.ndarray]:
  """Indices of the first `per_class` images of each named class (0 = all), in source order,
  and their new labels (position in `classes`); InputError naming `what` (the config key)."""
  names = list(names)
  unknown = [c for c in classes if c not in names]
  if unknown:
    shown = ', '.join(names[:20]) + (', ...' if len(names) > 20 else '')
    raise InputError(f'{what}: unknown class name(s) {unknown}; the source has '
                     f'{len(names)} classes: {shown}')
  index, new = [], []
  for k, name in enumerate(classes):
    found = np.flatnonzero(np.asarray(labels) == names.index(name))
    if per_class and len(found) < per_class:
      raise InputError(f'{what}: class {name!r} has {len(found)} images, the task needs '
                       f'per_class={per_class}; lower it or load the whole dataset')
    found = found[:per_class] if per_class else found
    index.append(found)
    new.append(np.full(len(found), k, np.int32))
  return np.concatenate(index), np.concatenate(new)


_transform_jit = jax.jit(transforms.random_transform, static_argnames=('t',))


def invariance(name: str, key: jax.Array, images: jax.Array, labels: np.ndarray,
               t: transforms.Transform, num_classes: int, draws: int = 1) -> Task:
  """Transforms every image and splits the set 5/6 : 1/6.

  key: fold_in 0 draws the split (the same for every transform), fold_in 1 the transforms;
  draw d > 0 of them (`draws`: one per epoch of the probe) fold_in(fold_in(key, 1), d).
  """
  n = len(images)
  order = np.asarray(jax.random.permutation(jax.random.fold_in(key, 0), n))
  cut = n * TRAIN_SHARE[0] // TRAIN_SHARE[1]  # As the paper's len * 5 // 6.
  train, test = order[:cut], order[cut:]
  labels = np.asarray(labels, np.int32)
  out = []
  for d in range(draws):
    k = jax.random.fold_in(key, 1)
    moved = _transform_jit(jax.random.fold_in(k, d) if d else k, jnp.asarray(images), t)
    out.append((moved[train], {name: (moved[test], labels[test])}))
  return Task(name, out[0][0], labels[train], out[0][1], num_classes, tuple(out[1:]))
