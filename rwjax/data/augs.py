"""torchvision's random transforms as the paper drew them: RandomAffine and ColorJitter, in JAX.

The paper's invariance tasks and exemplar manifolds (its src/data.py, commit f39aa6d) apply
to CIFAR images in [0, 1]:
  - translate: `RandomAffine(0, translate=(t, t))`, t = 0.5 for the classification task,
    0.1 for the manifolds;
  - rotate: `RandomAffine(180)`;
  - color: `ColorJitter(0.5, 0.5, 0.5, 0.5)`;
then its channel normalisation (which rwjax leaves out: the network input is [0, 1]).

These functions follow torchvision's definitions (torchvision.transforms.RandomAffine /
ColorJitter and their functional kernels), typed from their documented semantics:
  - RandomAffine.get_params: angle ~ U(-degrees, degrees); max_dx = t * W, max_dy = t * H;
    shifts tx = round(U(-max_dx, max_dx)), ty = round(U(-max_dy, max_dy)) (whole pixels,
    positive = right / down). The image is rotated about its centre, counter-clockwise as
    displayed, with nearest-pixel sampling (RandomAffine's default interpolation), then
    shifted; pixels with no source get `fill` (0, black, as torchvision).
  - ColorJitter.get_params: a random order of the four adjustments (randperm(4)), then
    brightness, contrast and saturation factors ~ U(max(0, 1 - s), 1 + s) and a hue shift
    ~ U(-h, h) (h <= 0.5, a fraction of the hue circle). brightness: clip(f x); contrast:
    clip(f x + (1 - f) mean(grey(x))) with grey = 0.2989 R + 0.587 G + 0.114 B over the
    whole image; saturation: clip(f x + (1 - f) grey(x)) per pixel; hue: RGB -> HSV,
    h <- (h + shift) mod 1, HSV -> RGB. On grey images (C = 1) saturation and hue do
    nothing (as torchvision).

Where rwjax.data.tasks has its own transforms (integer shifts up to a fraction of the side,
bilinear rotations, a YIQ hue rotation in a fixed order), these are the paper's. Every
transform is pure and jit-compatible with its settings static; parameters are drawn from
explicit keys by `affine_params` / `jitter_params` and applied by `affine` / `apply_jitter`,
so tests and reports can see them.
"""

from typing import NamedTuple, Optional, Union

import jax
import jax.numpy as jnp

from rwjax.data import tasks
from rwjax.errors import InputError

# torchvision's rgb_to_grayscale weights (ITU-R 601-2 luma, as torchvision rounds them).
GREY = (0.2989, 0.587, 0.114)


class Affine(NamedTuple):
  """RandomAffine(degrees, translate=(translate, translate)): no scale, no shear."""
  degrees: float = 0.0  # Rotation angle ~ U(-degrees, degrees).
  translate: float = 0.0  # Largest shift as a fraction of the width (x) and height (y).


class Jitter(NamedTuple):
  """ColorJitter(brightness, contrast, saturation, hue)."""
  brightness: float = 0.0
  contrast: float = 0.0
  saturation: float = 0.0
  hue: float = 0.0


Transform = Optional[Union[Affine, Jitter]]  # None = the identity ('none').

# The paper's settings (its src/data.py).
TASK_TRANSFORMS = {  # CIFAR100_classify_augs: translation / rotation / color.
    'translate': Affine(0.0, 0.5),
    'rotate': Affine(180.0, 0.0),
    'color': Jitter(0.5, 0.5, 0.5, 0.5),
    'none': None,
}
MANIFOLD_TRANSFORMS = {  # CIFAR100_{Translation,Color}_Manifold_Transform.
    'translate': Affine(0.0, 0.1),
    'color': Jitter(0.5, 0.5, 0.5, 0.5),
}


def affine_params(key: jax.Array, n: int, height: int, width: int,
                  spec: Affine) -> tuple[jax.Array, jax.Array]:
  """Draws RandomAffine parameters for n images.

  Returns:
    (angles f32[N] degrees, shifts i32[N, 2] as (dy, dx) whole pixels).
  """
  k_angle, k_x, k_y = jax.random.split(key, 3)
  angles = jax.random.uniform(k_angle, (n,), minval=-spec.degrees, maxval=spec.degrees)
  max_dx, max_dy = spec.translate * width, spec.translate * height
  dx = jnp.round(jax.random.uniform(k_x, (n,), minval=-max_dx, maxval=max_dx))
  dy = jnp.round(jax.random.uniform(k_y, (n,), minval=-max_dy, maxval=max_dy))
  return angles, jnp.stack([dy, dx], -1).astype(jnp.int32)


def affine(images: jax.Array, angles: jax.Array, shifts: jax.Array, fill: float = 0.0,
           rotate: bool = True) -> jax.Array:
  """Rotates (nearest pixel, about the centre, counter-clockwise) then shifts images.

  Args:
    images: f32[N, H, W, C].
    angles: f32[N] degrees; shifts: i32[N, 2] (dy, dx).
    fill: value of pixels with no source.
    rotate: False skips the rotation (static; for angles that are all 0).

  Returns:
    f32[N, H, W, C].
  """
  if rotate:
    images = tasks.rotate(images, angles, fill, order=0)
  return tasks.translate(images, shifts, fill)


def jitter_params(key: jax.Array, n: int, spec: Jitter) -> tuple[jax.Array, jax.Array]:
  """Draws ColorJitter parameters for n images.

  Returns:
    (order i32[N, 4]: a permutation of (0 brightness, 1 contrast, 2 saturation, 3 hue) per
    image; factors f32[N, 4]: brightness, contrast, saturation factors and the hue shift).
  """
  if not 0 <= spec.hue <= 0.5:
    raise InputError(f'colour-jitter hue={spec.hue} must be in [0, 0.5] (torchvision)')
  if min(spec.brightness, spec.contrast, spec.saturation) < 0:
    raise InputError(f'colour-jitter strengths {tuple(spec)} must be >= 0')
  k_order, k_b, k_c, k_s, k_h = jax.random.split(key, 5)
  order = jax.vmap(lambda k: jax.random.permutation(k, 4))(jax.random.split(k_order, n))
  factor = lambda k, s: jax.random.uniform(k, (n,), minval=max(0.0, 1.0 - s), maxval=1.0 + s)
  hue = jax.random.uniform(k_h, (n,), minval=-spec.hue, maxval=spec.hue)
  factors = jnp.stack([factor(k_b, spec.brightness), factor(k_c, spec.contrast),
                       factor(k_s, spec.saturation), hue], -1)
  return order.astype(jnp.int32), factors


def grey(x: jax.Array) -> jax.Array:
  """torchvision's rgb_to_grayscale: f32[..., 3] -> f32[..., 1] (grey images pass)."""
  if x.shape[-1] == 1:
    return x
  return x @ jnp.asarray(GREY, x.dtype)[:, None]


def _rgb_to_hsv(x: jax.Array) -> jax.Array:
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  maxc, minc = x.max(-1), x.min(-1)
  flat = maxc == minc
  span = maxc - minc
  s = span / jnp.where(flat, 1.0, maxc)
  div = jnp.where(flat, 1.0, span)
  rc, gc, bc = (maxc - r) / div, (maxc - g) / div, (maxc - b) / div
  h = jnp.where(maxc == r, bc - gc, jnp.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
  h = jnp.where(flat, 0.0, h)
  return jnp.stack([jnp.mod(h / 6.0 + 1.0, 1.0), s, maxc], -1)


def _hsv_to_rgb(x: jax.Array) -> jax.Array:
  h, s, v = x[..., 0], x[..., 1], x[..., 2]
  i = jnp.floor(h * 6.0)
  f = h * 6.0 - i
  i = i.astype(jnp.int32) % 6
  p = jnp.clip(v * (1.0 - s), 0.0, 1.0)
  q = jnp.clip(v * (1.0 - s * f), 0.0, 1.0)
  t = jnp.clip(v * (1.0 - s * (1.0 - f)), 0.0, 1.0)
  table = jnp.stack([jnp.stack(c, -1) for c in (  # [..., 6 sectors, 3 channels]
      (v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))], -2)
  return jnp.take_along_axis(table, i[..., None, None], -2)[..., 0, :]


def _adjust(x: jax.Array, op: int, f: jax.Array) -> jax.Array:
  """One adjustment of one image x: f32[H, W, C] with factor / shift f."""
  blend = lambda other: jnp.clip(f * x + (1.0 - f) * other, 0.0, 1.0)
  if op == 0:
    return jnp.clip(f * x, 0.0, 1.0)
  if op == 1:
    return blend(grey(x).mean())
  if x.shape[-1] == 1:  # Saturation and hue leave grey images alone.
    return x
  if op == 2:
    return blend(grey(x))
  hsv = _rgb_to_hsv(x)
  return _hsv_to_rgb(hsv.at[..., 0].set(jnp.mod(hsv[..., 0] + f, 1.0)))


def apply_jitter(images: jax.Array, order: jax.Array, factors: jax.Array) -> jax.Array:
  """Applies drawn ColorJitter parameters: images f32[N, H, W, C] in [0, 1] -> same."""
  branches = [lambda x, f, i=i: _adjust(x, i, f) for i in range(4)]

  def one(x, order, factors):
    for k in range(4):  # Step k applies adjustment order[k].
      x = jax.lax.switch(order[k], branches, x, factors[order[k]])
    return x
  return jax.vmap(one)(images, order, factors)


def random_transform(key: jax.Array, images: jax.Array, spec: Transform,
                     fill: float = 0.0) -> jax.Array:
  """One random draw of `spec` per image (jit-compatible with spec and fill static).

  Args:
    key: raw PRNG key u32[2].
    images: f32[N, H, W, C] in [0, 1].
    spec: Affine, Jitter or None (identity).
    fill: value of pixels an affine transform uncovers.

  Returns:
    f32[N, H, W, C].
  """
  n, h, w, _ = images.shape
  if spec is None:
    return images
  if isinstance(spec, Affine):
    angles, shifts = affine_params(key, n, h, w, spec)
    return affine(images, angles, shifts, fill, rotate=spec.degrees > 0)
  if isinstance(spec, Jitter):
    return apply_jitter(images, *jitter_params(key, n, spec))
  raise InputError(f'unknown transform {spec!r}; use augs.Affine, augs.Jitter or None')
