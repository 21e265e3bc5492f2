"""The image manifolds that the manifold-capacity analysis measures in each network layer.

A manifold is a set of M images that one linear readout should treat as one object; P of
them are analysed together (rwjax.eval.capacity). As in the paper (arXiv:2312.02791):
  - exemplar manifolds: P source images, each with M random transforms of itself:
    'translate' (integer shifts of up to `max_shift` of the image size in y and x, drawn
    with replacement; the paper's main case), 'rotate' (uniform angles in
    [-max_degrees, max_degrees]) and 'color' (colour jitter), sharing the transform code of
    the exemplar probe tasks (rwjax.data.tasks);
  - class manifolds ('class'): P classes, M images of each.
Manifold images are f32[P, M, H, W, C] network input; point (p, j) of an exemplar manifold
is transform j of image p, with the transforms drawn by `random_shifts` / `random_angles`
from the builder's key (so they can be reproduced).
"""

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rwjax.data import tasks
from rwjax.errors import InputError

EXEMPLAR_KINDS = ('translate', 'rotate', 'color')
KINDS = EXEMPLAR_KINDS + ('class',)


def random_shifts(key: jax.Array, p: int, m: int, max_px: int) -> jax.Array:
  """i32[P, M, 2]: (dy, dx) uniform on [-max_px, max_px]^2, independently per point."""
  return jax.random.randint(key, (p, m, 2), -max_px, max_px + 1, jnp.int32)


def random_angles(key: jax.Array, p: int, m: int, max_degrees: float) -> jax.Array:
  """f32[P, M]: angles uniform on [-max_degrees, max_degrees]."""
  return jax.random.uniform(key, (p, m), minval=-max_degrees, maxval=max_degrees)


def exemplar_manifolds(key: jax.Array, images: jax.Array, *, kind: str, m: int,
                       max_shift: float = 0.5, max_degrees: float = 180.0,
                       jitter: tasks.ColorJitter = tasks.ColorJitter(),
                       fill: tasks.Fill = 0.0) -> jax.Array:
  """M random transforms of each of P images (jit-compatible; all but key and images static).

  Args:
    key: raw PRNG key u32[2].
    images: f32[P, H, W, C] in [0, 1]; image p is the source of manifold p.
    kind: 'translate', 'rotate' or 'color' (see the module docstring).
    m: points per manifold.
    max_shift: largest shift as a fraction of min(H, W) ('translate').
    max_degrees: largest rotation ('rotate').
    jitter: colour-jitter strengths ('color').
    fill: value of pixels a translation or rotation uncovers (a number or 'mean').

  Returns:
    f32[P, M, H, W, C]; for 'translate' point (p, j) is images[p] shifted by
    random_shifts(key, P, M, int(max_shift * min(H, W)))[p, j], for 'rotate' rotated by
    random_angles(key, P, M, max_degrees)[p, j].
  """
  if kind not in EXEMPLAR_KINDS:
    raise InputError(f'unknown exemplar manifold kind {kind!r}; use one of {EXEMPLAR_KINDS}')
  if m < 1:
    raise InputError(f'manifolds need m >= 1 points, got {m}')
  p, h, w, c = images.shape
  tiled = jnp.repeat(images, m, axis=0)  # [P * M, H, W, C], manifold-major.
  if kind == 'translate':
    shifts = random_shifts(key, p, m, int(max_shift * min(h, w)))
    points = tasks.translate(tiled, shifts.reshape(p * m, 2), fill)
  elif kind == 'rotate':
    points = tasks.rotate(tiled, random_angles(key, p, m, max_degrees).reshape(-1), fill)
  else:
    points = tasks.color_jitter(key, tiled, jitter)
  return points.reshape(p, m, h, w, c)


def class_manifolds(key: jax.Array, images: np.ndarray, labels: np.ndarray, *, p: int,
                    m: int) -> tuple[np.ndarray, np.ndarray]:
  """M distinct images of each of P distinct classes, drawn at random.

  The classes are drawn among those with at least M images (the draw is host-side).

  Args:
    key: raw PRNG key u32[2].
    images: f32[N, H, W, C] (numpy or jax); labels: i32[N].
    p: classes (manifolds); m: images per class.

  Returns:
    (f32[P, M, H, W, C] images, the array type of `images`; i32[P] the class of each
    manifold).
  """
  labels = np.asarray(labels)
  classes, counts = np.unique(labels, return_counts=True)
  eligible = classes[counts >= m]
  if p > len(eligible):
    raise InputError(f'{p} class manifolds of M={m} images need {p} classes with >= {m} '
                     f'images; {len(eligible)} of the {len(classes)} classes have them; lower '
                     'capacity.P or capacity.M, or use more test images (data.max_test)')
  rng = np.random.default_rng(np.asarray(key, np.uint32))
  chosen = rng.choice(eligible, p, replace=False)
  index = np.stack([rng.choice(np.flatnonzero(labels == k), m, replace=False) for k in chosen])
  return images[index], chosen.astype(np.int32)


def build(key: jax.Array, kinds: Sequence[str], *, exemplar_pool: Optional[jax.Array],
          class_images: jax.Array, class_labels: np.ndarray, p: int, m: int,
          max_shift: float = 0.5, max_degrees: float = 180.0,
          fill: tasks.Fill = 0.0) -> jax.Array:
  """Every requested kind of manifold for one draw, stacked: f32[len(kinds), P, M, H, W, C].

  The exemplar kinds share the same P source images, drawn from `exemplar_pool`
  (f32[N, H, W, C]; may be None without exemplar kinds); the class manifolds come from `class_images` / `class_labels`. Each
  kind's draw depends on the key and the kind only, not on the other kinds requested.
  """
  unknown = [k for k in kinds if k not in KINDS]
  if unknown or not kinds:
    raise InputError(f'manifold kinds {tuple(kinds)!r}: choose from {KINDS}')
  k_source, k_class, k_transform = jax.random.split(key, 3)
  sources = None
  if any(k in EXEMPLAR_KINDS for k in kinds):
    if p > len(exemplar_pool):
      raise InputError(f'{p} exemplar manifolds need {p} source images, the pool has '
                       f'{len(exemplar_pool)}; lower capacity.P')
    sources = jnp.asarray(exemplar_pool)[
        jax.random.choice(k_source, len(exemplar_pool), (p,), replace=False)]
  out = []
  for kind in kinds:
    if kind == 'class':
      out.append(jnp.asarray(class_manifolds(k_class, class_images, class_labels, p=p,
                                             m=m)[0]))
    else:
      out.append(_exemplar_jit(jax.random.fold_in(k_transform, KINDS.index(kind)), sources,
                               kind=kind, m=m, max_shift=max_shift, max_degrees=max_degrees,
                               fill=fill))
  return jnp.stack(out)


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


_exemplar_jit = jax.jit(exemplar_manifolds, static_argnames=(
    'kind', 'm', 'max_shift', 'max_degrees', 'jitter', 'fill'))
