"""The paper's manifolds: exemplar, class (three ways to choose the images) and wave manifolds.

Following the paper's src/mftma_analysis.py, src/data.py and src/mftma/utils/
make_manifold_data.py (commit f39aa6d):
  - exemplar manifolds: P = 50 random CIFAR-100 test images, each with M = 20 random
    transforms of itself: 'translate' = RandomAffine(0, translate=(0.1, 0.1)), 'color' =
    ColorJitter(0.5, 0.5, 0.5, 0.5) (rwjax.data.augs.MANIFOLD_TRANSFORMS; torchvision's
    definitions). The paper's draw used Python's `random` and torch's generator; here a key.
  - class manifolds: CIFAR-10, all 10 classes x 100 test images; CIFAR-100, 50 classes drawn
    at random x 50 test images. The paper took, per class, the test images a classifier on
    a SimCLR network was most confident about, shipped as ranked test-set indices
    (rwjax/data/ranked/, see its README). Selections here:
      'ranked': the paper's lists; they index the dataset's original test order, recovered
        from TFDS's 'id' feature ('test_00042' = original index 42,
        rwjax.data.sources.original_positions).
        Image folders keep no original order: InputError.
      'confidence': the images a logistic probe (rwjax.eval.probes, on the pooled features of
        a network named in the config, trained on the train split) gives the highest
        probability of their own class.
      'first': the first M test images of each class in source order.
  - wave manifolds: the first 50 waves (in order of onset) that last 50 to 132 frames, each
    wave's frames one manifold (its `indices_of_selected_waves`); frames are the network
    input of the pre-training (rwjax.waves.frames.to_network_input).
"""

import functools
import importlib.resources
import json
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rwjax.data import augs
from rwjax.errors import InputError

SELECTIONS = ('ranked', 'confidence', 'first')
RANKED_FILES = {'cifar10': 'ranked_instances_cifar10_simclr.json',
                'cifar100': 'ranked_instances_cifar100_simclr.json'}
# The paper's wave-manifold choice.
WAVES, MIN_FRAMES, MAX_FRAMES = 50, 50, 132


def ranked_indices(dataset: str) -> dict[int, list[int]]:
  """The paper's ranked original test indices per class label of 'cifar10' / 'cifar100'."""
  if dataset not in RANKED_FILES:
    raise InputError(f'the paper ships ranked lists for {tuple(RANKED_FILES)}, not '
                     f'{dataset!r}; use selection confidence or first')
  text = importlib.resources.files('rwjax.data').joinpath('ranked', RANKED_FILES[dataset])
  return {int(k): list(v) for k, v in json.loads(text.read_text()).items()}


def draw_classes(key: jax.Array, num_classes: int, p: int) -> np.ndarray:
  """i64[P]: all classes in order when P = num_classes (CIFAR-10), else P drawn at random
  without replacement (the paper's random.sample for CIFAR-100), sorted."""
  if not 2 <= p <= num_classes:
    raise InputError(f'{p} class manifolds need 2 <= P <= the {num_classes} classes; set '
                     'config.paper_manifolds.class_p')
  if p == num_classes:
    return np.arange(p)
  return np.sort(np.asarray(jax.random.choice(key, num_classes, (p,), replace=False)))


def class_manifold_index(labels: np.ndarray, classes: Sequence[int], m: int, *,
                         selection: str, ranked: Optional[dict] = None,
                         original: Optional[np.ndarray] = None,
                         scores: Optional[np.ndarray] = None) -> np.ndarray:
  """Which test images make each class manifold.

  Args:
    labels: i32[N] test labels (the loaded order).
    classes: the P class labels.
    m: images per manifold.
    selection: 'ranked' (needs `ranked` and `original`), 'confidence' (needs `scores`) or
      'first'.
    ranked: class -> original test indices, most confident first (`ranked_indices`).
    original: i64[N] original position of each loaded image
      (rwjax.data.sources.original_positions).
    scores: f32[N] the probe's probability of each image's own class.

  Returns:
    i64[P, M] indices into the loaded test images.

  Raises:
    InputError: an unknown selection, a missing input, or a class with fewer than M images.
  """
  if selection not in SELECTIONS:
    raise InputError(f'class manifold selection {selection!r} is unknown; use one of '
                     f'{SELECTIONS}')
  labels = np.asarray(labels)
  where = {}
  if selection == 'ranked':
    if ranked is None or original is None:
      raise InputError('the ranked selection needs the dataset\'s original test order (TFDS '
                       "ids such as 'test_00042'); image folders keep none: use "
                       "config.paper_manifolds.class_selection='confidence' or 'first'")
    where = {int(o): i for i, o in enumerate(original)}
  out = []
  for c in classes:
    if selection == 'ranked':
      listed = ranked.get(int(c), [])
      if len(listed) < m:
        raise InputError(f'the paper ranked {len(listed)} images of class {c}; a manifold '
                         f'of M={m} needs more: lower config.paper_manifolds.class_m')
      missing = [o for o in listed[:m] if o not in where]
      if missing:
        raise InputError(f'{len(missing)} ranked images of class {c} (e.g. original index '
                         f'{missing[0]}) are not among the loaded test images; load the whole '
                         'test split (no max_test)')
      picked = [where[o] for o in listed[:m]]
      if any(labels[i] != c for i in picked):
        raise InputError(f'ranked images of class {c} carry other labels here: the dataset '
                         'is not the one the paper ranked (CIFAR-10 / CIFAR-100 test set)')
    else:
      found = np.flatnonzero(labels == c)
      if len(found) < m:
        raise InputError(f'class {c} has {len(found)} test images; a manifold of M={m} needs '
                         'more: lower config.paper_manifolds.class_m or load more test images')
      if selection == 'confidence':
        if scores is None:
          raise InputError('the confidence selection needs probe scores')
        found = found[np.argsort(-np.asarray(scores)[found], kind='stable')]
      picked = found[:m]
    out.append(np.asarray(picked, np.int64))
  return np.stack(out)


@functools.partial(jax.jit, static_argnames=('m', 'spec', 'fill'))
def _transforms(key, sources, *, m, spec, fill):
  p = sources.shape[0]
  tiled = jnp.repeat(sources, m, axis=0)  # [P * M, H, W, C], manifold-major
  return augs.random_transform(key, tiled, spec, fill).reshape(p, m, *sources.shape[1:])


def exemplar_manifolds(key: jax.Array, pool: jax.Array, *, p: int, m: int,
                       spec: augs.Transform, fill: float = 0.0) -> jax.Array:
  """M random transforms of each of P images drawn from `pool` f32[N, H, W, C].

  Returns:
    f32[P, M, H, W, C]; fold_in(key, 0) draws the images, fold_in(key, 1) the transforms.
  """
  if p > len(pool):
    raise InputError(f'{p} exemplar manifolds need {p} source images; the pool has '
                     f'{len(pool)}: lower config.paper_manifolds.exemplar_p')
  if m < 1:
    raise InputError(f'exemplar manifolds need M >= 1 transforms, got {m}')
  chosen = jax.random.choice(jax.random.fold_in(key, 0), len(pool), (p,), replace=False)
  return _transforms(jax.random.fold_in(key, 1), jnp.asarray(pool)[chosen], m=m, spec=spec,
                     fill=fill)


def wave_manifolds(labels: np.ndarray, *, count: int = WAVES, min_frames: int = MIN_FRAMES,
                   max_frames: int = MAX_FRAMES) -> list[np.ndarray]:
  """Frame indices of the wave manifolds: the first `count` waves (by onset) lasting
  min_frames..max_frames frames.

  Args:
    labels: i32[T] or i32[B, T] per-frame wave ids (-1 = no wave; ids unique over the batch,
      as rwjax.waves.stats.frame_labels writes them).

  Returns:
    A list of i64[M_i] indices into the flattened frames [B * T] (one array per wave).

  Raises:
    InputError: fewer than 2 waves qualify.
  """
  flat = np.asarray(labels).reshape(-1)
  ids, first, sizes = np.unique(flat[flat >= 0], return_index=True, return_counts=True)
  onset = np.flatnonzero(flat >= 0)[first]
  keep = [(o, i) for o, i, s in zip(onset, ids, sizes) if min_frames <= s <= max_frames]
  keep = [i for _, i in sorted(keep)][:count]
  if len(keep) < 2:
    raise InputError(f'{len(keep)} of the {len(ids)} waves of the movie last {min_frames} to '
                     f'{max_frames} frames; wave manifolds need at least 2: use a longer movie '
                     'or change config.paper_manifolds.wave_frames')
  return [np.flatnonzero(flat == i) for i in keep]
