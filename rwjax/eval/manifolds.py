"""The manifolds whose geometry the evaluation measures in every layer.

A manifold is a set of M images that one linear readout should treat as one object; P of them
are analysed together (rwjax.eval.geometry). Kinds:
  - exemplar ('translate', 'rotate', 'color'): P source images drawn from a pool, each with M
    random transforms of itself (rwjax.eval.transforms, either style);
  - class: P classes, M test images of each, chosen by `selection`: 'random' (P classes with
    >= M images, M of their images, at random); 'first' (all classes when P is the class
    count, else a random P, sorted; the first M images of each in source order); 'ranked'
    (those classes, the M images the paper's SimCLR classifier was most confident about:
    rwjax/data/ranked/, matched by original position, TFDS only); 'confidence' (those
    classes, the M images a logistic probe on a chosen network gives the highest
    probability of their own class);
  - waves: each wave of a movie one manifold, its frames the points (`wave_index`), labelled
    as the trainer labels them unless a label file is given.
"""

import functools
import importlib.resources
import json
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rwjax.errors import InputError
from rwjax.eval import transforms

SELECTIONS = ('random', 'first', 'ranked', 'confidence')
RANKED_FILES = {'cifar10': 'ranked_instances_cifar10_simclr.json',
                'cifar100': 'ranked_instances_cifar100_simclr.json'}


@functools.partial(jax.jit, static_argnames=('m', 't'))
def _transformed(key, sources, m, t):
  p = sources.shape[0]
  tiled = jnp.repeat(sources, m, axis=0)  # [P * M, H, W, C], manifold-major
  return transforms.random_transform(key, tiled, t).reshape(p, m, *sources.shape[1:])


def exemplar(key_images: jax.Array, key_transforms: jax.Array, pool: jax.Array, *, p: int,
             m: int, t: transforms.Transform) -> jax.Array:
  """M random transforms `t` of each of P images drawn (without replacement, key_images)
  from pool f32[N, H, W, C]: f32[P, M, H, W, C], point (p, j) transform j of image p."""
  chosen = jax.random.choice(key_images, len(pool), (p,), replace=False)
  return _transformed(key_transforms, jnp.asarray(pool)[chosen], m, t)


def random_classes(key: jax.Array, labels: np.ndarray, *, p: int, m: int,
                   what: str) -> np.ndarray:
  """'random': i64[P, M] indices of M distinct images of each of P distinct classes drawn
  among those with >= M images (host-side draws from the key); InputError naming `what`
  (the class set's config key) when fewer classes have M images."""
  labels = np.asarray(labels)
  classes, counts = np.unique(labels, return_counts=True)
  eligible = classes[counts >= m]
  if p > len(eligible):
    raise InputError(f'{what}: {p} class manifolds of m={m} images need {p} classes with '
                     f'>= {m} images; {len(eligible)} of the {len(classes)} classes have '
                     'them: lower p or m, or load more images (max_examples)')
  rng = np.random.default_rng(np.asarray(key, np.uint32))
  chosen = rng.choice(eligible, p, replace=False)
  return np.stack([rng.choice(np.flatnonzero(labels == k), m, replace=False) for k in chosen])


def draw_classes(key: jax.Array, num_classes: int, p: int) -> np.ndarray:
  """i64[P]: all classes in order when P = num_classes (CIFAR-10), else P drawn at random
  without replacement (the paper's random.sample for CIFAR-100), sorted."""
  if p == num_classes:
    return np.arange(p)
  return np.sort(np.asarray(jax.random.choice(key, num_classes, (p,), replace=False)))


def ranked_indices(dataset: str) -> dict[int, list[int]]:
  """The paper's ranked original test indices per class label of 'cifar10' / 'cifar100'."""
  text = importlib.resources.files('rwjax.data').joinpath('ranked', RANKED_FILES[dataset])
  return {int(k): list(v) for k, v in json.loads(text.read_text()).items()}


def class_index(labels: np.ndarray, classes: Sequence[int], m: int, *, selection: str,
                what: str, ranked: Optional[dict] = None,
                original: Optional[np.ndarray] = None,
                scores: Optional[np.ndarray] = None) -> np.ndarray:
  """i64[P, M] indices into the loaded test images of each class manifold ('first',
  'ranked' or 'confidence'; module docstring); InputError naming `what` (the class set's
  config key) when a class has too few images or the ranked images are not loaded.

  Args:
    labels: i32[N] test labels (the loaded order).
    classes: the P class labels.
    m: images per manifold.
    ranked: class -> original test indices, most confident first ('ranked').
    original: i64[N] original position of each loaded image ('ranked').
    scores: f32[N] the probe's probability of each image's own class ('confidence').
  """
  labels = np.asarray(labels)
  where = {int(o): i for i, o in enumerate(original)} if selection == 'ranked' else {}
  out = []
  for c in classes:
    if selection == 'ranked':
      listed = ranked.get(int(c), [])[:m]
      picked = [where.get(o) for o in listed]
      if len(listed) < m or None in picked:
        raise InputError(f'{what}: the paper ranked images of class {c} that are not among '
                         f'the {len(labels)} loaded test images (or fewer than m={m}); load '
                         'the whole test split of the dataset the paper ranked')
      if any(labels[i] != c for i in picked):
        raise InputError(f'{what}: ranked images of class {c} carry other labels here: the '
                         'dataset is not the one the paper ranked (CIFAR-10 / CIFAR-100 test)')
    else:
      found = np.flatnonzero(labels == c)
      if len(found) < m:
        raise InputError(f'{what}: class {c} has {len(found)} test images, a manifold needs '
                         f'm={m}; lower m or load more test images')
      if selection == 'confidence':
        found = found[np.argsort(-np.asarray(scores)[found], kind='stable')]
      picked = found[:m]
    out.append(np.asarray(picked, np.int64))
  return np.stack(out)


def wave_index(labels: np.ndarray, *, count: int, min_frames: int, max_frames: int,
               what: str = 'waves') -> list[np.ndarray]:
  """Frame indices of the wave manifolds: the first `count` waves (by onset) lasting
  min_frames..max_frames frames.

  Args:
    labels: i32[T] or i32[B, T] per-frame wave ids (-1 = no wave; ids unique over the batch,
      as rwjax.waves.stats.frame_labels writes them).

  Returns:
    A list of i64[M_i] indices into the flattened frames [B * T] (one array per wave).

  Raises:
    InputError naming `what` (the config section): fewer than 2 waves qualify.
  """
  flat = np.asarray(labels).reshape(-1)
  ids, first, sizes = np.unique(flat[flat >= 0], return_index=True, return_counts=True)
  onset = np.flatnonzero(flat >= 0)[first]
  keep = [(o, i) for o, i, s in zip(onset, ids, sizes) if min_frames <= s <= max_frames]
  keep = [i for _, i in sorted(keep)][:count]
  if len(keep) < 2:
    raise InputError(f'{len(keep)} of the {len(ids)} waves of the movie last {min_frames} to '
                     f'{max_frames} frames; wave manifolds need at least 2: use a longer movie '
                     f'or change {what}.frames')
  return [np.flatnonzero(flat == i) for i in keep]


def pad_features(points: np.ndarray, width: int) -> np.ndarray:
  """Zero-pads manifold points f32[P, M, N] to f32[P, M, width] when M <= N < width.

  The capacity analysis sees the points only through their Gram matrices and the reduced
  dimension D = min(N, M), so this changes no result while N >= M, and lets layers of
  different widths share one compiled analysis.
  """
  _, m, n = points.shape
  if n < m or n >= width:
    return points
  return np.pad(points, ((0, 0), (0, 0), (0, width - n)))
