"""Invariance tasks on images: exemplar classification under translation, rotation, colour jitter.

(a) Exemplar tasks (the paper's translation-invariance test): each of P images is its own
class; its samples are random transforms of it. A probe is trained on some transforms and
tested on held-out ones. Translations are integer shifts of up to `max_shift` of the image
size in y and x (the paper's random affine shifts of up to 50%); a translation's test shifts
are distinct from its train shifts. Rotations (up to 180 degrees) and colour jitter are the
controls.

(b) Translated test sets: every image shifted by the same k pixels (`translate` with one shift).

Pixels that a transform uncovers are filled with a constant, `fill`: a number (default 0.0,
black, as torchvision's RandomAffine) or 'mean' (each image's mean colour, which adds no new
edge). All functions are pure, take f32[N, H, W, C] network input in [0, 1] and explicit raw
PRNG keys, and are jit-compatible with the transform's settings static.
"""

from typing import NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from rwjax.errors import InputError

Fill = Union[float, str]
TRANSFORMS = ('translate', 'rotate', 'color')


class ColorJitter(NamedTuple):
  """Colour-jitter strengths (SimCLR / torchvision ColorJitter semantics).

  Factors are drawn uniformly from [1 - s, 1 + s] (brightness, contrast, saturation); the
  hue turns by a uniform fraction of a full turn in [-hue, hue].
  """
  brightness: float = 0.4
  contrast: float = 0.4
  saturation: float = 0.4
  hue: float = 0.1


class ExemplarTask(NamedTuple):
  """Train and test samples of an exemplar task; label p is source image p."""
  x_train: jax.Array  # f32[P * n_train, H, W, C]
  y_train: jax.Array  # i32[P * n_train]
  x_test: jax.Array  # f32[P * n_test, H, W, C]
  y_test: jax.Array  # i32[P * n_test]


def _fill_value(images: jax.Array, fill: Fill) -> jax.Array:
  """The fill colour per image: f32[N, 1, 1, C]."""
  if isinstance(fill, str):
    if fill != 'mean':
      raise InputError(f"fill must be a number or 'mean', got {fill!r}")
    return images.mean(axis=(1, 2), keepdims=True)
  return jnp.full((images.shape[0], 1, 1, images.shape[-1]), fill, images.dtype)


def translate(images: jax.Array, shifts: jax.Array, fill: Fill = 0.0) -> jax.Array:
  """Shifts images by whole pixels: out[n, y, x] = images[n, y - dy, x - dx], else fill.

  Args:
    images: f32[N, H, W, C].
    shifts: i32[N, 2] per-image (dy, dx), or i32[2] for all images; positive moves the
      content down / right.
    fill: value of uncovered pixels (a number or 'mean').

  Returns:
    f32[N, H, W, C], exactly shifted (no interpolation).
  """
  n, h, w, _ = images.shape
  shifts = jnp.broadcast_to(jnp.asarray(shifts, jnp.int32), (n, 2))
  ys = jnp.arange(h)[None, :] - shifts[:, :1]  # [N, H] source rows.
  xs = jnp.arange(w)[None, :] - shifts[:, 1:]  # [N, W] source columns.
  rows = jnp.take_along_axis(images, jnp.clip(ys, 0, h - 1)[:, :, None, None], axis=1)
  moved = jnp.take_along_axis(rows, jnp.clip(xs, 0, w - 1)[:, None, :, None], axis=2)
  valid = (((ys >= 0) & (ys < h))[:, :, None] & ((xs >= 0) & (xs < w))[:, None, :])
  return jnp.where(valid[..., None], moved, _fill_value(images, fill))


def rotate(images: jax.Array, degrees: jax.Array, fill: Fill = 0.0,
           order: int = 1) -> jax.Array:
  """Rotates images about their centre (bilinear), counter-clockwise as displayed (row 0 on
  top; 90 degrees = np.rot90 over axes (1, 2)).

  Args:
    images: f32[N, H, W, C].
    degrees: f32[N] angles, or a scalar for all images.
    fill: value of uncovered pixels (a number or 'mean').
    order: interpolation, 1 = bilinear, 0 = nearest pixel (torchvision's RandomAffine
      default; static).

  Returns:
    f32[N, H, W, C].
  """
  n, h, w, _ = images.shape
  theta = jnp.deg2rad(jnp.broadcast_to(jnp.asarray(degrees, jnp.float32), (n,)))
  y, x = jnp.meshgrid(jnp.arange(h) - (h - 1) / 2, jnp.arange(w) - (w - 1) / 2, indexing='ij')
  fill_value = _fill_value(images, fill)

  def one(image, angle):
    # Inverse map: the source of output (y, x) is (y, x) turned back by the angle.
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    src_y = cos * y + sin * x + (h - 1) / 2
    src_x = -sin * y + cos * x + (w - 1) / 2
    sample = lambda channel: jax.scipy.ndimage.map_coordinates(
        channel, (src_y, src_x), order=order, mode='constant', cval=0.0)
    return jax.vmap(sample, in_axes=2, out_axes=2)(image)

  # Interpolating (image - fill) with zeros outside equals interpolating with fill outside.
  return jax.vmap(one)(images - fill_value, theta) + fill_value


_YIQ = np.asarray([[0.299, 0.587, 0.114],
                  [0.596, -0.274, -0.322],
                  [0.211, -0.523, 0.312]], np.float32)
_YIQ_INV = np.linalg.inv(_YIQ).astype(np.float32)


def color_jitter(key: jax.Array, images: jax.Array,
                 jitter: ColorJitter = ColorJitter()) -> jax.Array:
  """Random brightness, contrast, saturation and hue per image (in that order), clipped.

  Grey images (C = 1) get brightness and contrast only.

  Args:
    key: raw PRNG key u32[2].
    images: f32[N, H, W, C] in [0, 1].
    jitter: strengths.

  Returns:
    f32[N, H, W, C] in [0, 1].
  """
  n, c = images.shape[0], images.shape[-1]
  kb, kc, ks, kh = jax.random.split(key, 4)
  factor = lambda k, s: jax.random.uniform(k, (n, 1, 1, 1), minval=1 - s, maxval=1 + s)
  grey = lambda x: x.mean(-1, keepdims=True) if c == 1 else x @ _YIQ[0][:, None]
  x = jnp.clip(images * factor(kb, jitter.brightness), 0, 1)
  mean = grey(x).mean(axis=(1, 2, 3), keepdims=True)
  x = jnp.clip((x - mean) * factor(kc, jitter.contrast) + mean, 0, 1)
  if c == 3:
    g = grey(x)
    x = jnp.clip((x - g) * factor(ks, jitter.saturation) + g, 0, 1)
    # Hue: turn the chroma plane (I, Q) of YIQ.
    turn = 2 * jnp.pi * jax.random.uniform(kh, (n,), minval=-jitter.hue, maxval=jitter.hue)
    cos, sin = jnp.cos(turn), jnp.sin(turn)
    one, zero = jnp.ones_like(cos), jnp.zeros_like(cos)
    spin = jnp.stack([jnp.stack([one, zero, zero], -1),
                      jnp.stack([zero, cos, -sin], -1),
                      jnp.stack([zero, sin, cos], -1)], -2)  # [N, 3, 3]
    mix = jnp.einsum('ij,njk,kl->nil', _YIQ_INV, spin, _YIQ)  # [N, 3, 3] RGB -> RGB.
    x = jnp.clip(jnp.einsum('nij,nhwj->nhwi', mix, x), 0, 1)
  return x


def _distinct_shifts(key: jax.Array, p: int, count: int, max_px: int) -> jax.Array:
  """i32[P, count, 2]: per image, `count` distinct (dy, dx) in [-max_px, max_px]^2."""
  side = 2 * max_px + 1
  if count > side * side:
    raise InputError(f'{count} distinct shifts of up to {max_px} px do not exist '
                     f'({side * side} do); lower n_train + n_test or raise max_shift')
  pick = lambda k: jax.random.choice(k, side * side, (count,), replace=False)
  flat = jax.vmap(pick)(jax.random.split(key, p))
  return jnp.stack([flat // side, flat % side], -1) - max_px


def exemplar_task(key: jax.Array, images: jax.Array, *, transform: str, n_train: int,
                  n_test: int, max_shift: float = 0.5, max_degrees: float = 180.0,
                  jitter: ColorJitter = ColorJitter(), fill: Fill = 0.0) -> ExemplarTask:
  """Builds an exemplar classification task from P source images.

  Args:
    key: raw PRNG key u32[2].
    images: f32[P, H, W, C] in [0, 1]; image p is class p.
    transform: 'translate' (integer shifts up to max_shift * size in y and x; test shifts
      held out from train shifts), 'rotate' (uniform angles in [-max_degrees, max_degrees])
      or 'color' (colour jitter).
    n_train, n_test: samples per image in the train and test sets.
    max_shift: largest shift as a fraction of the image height / width.
    max_degrees: largest rotation.
    jitter: colour-jitter strengths.
    fill: value of uncovered pixels (a number or 'mean').

  Returns:
    ExemplarTask with samples ordered sample-major (all images, then the next sample).
  """
  if transform not in TRANSFORMS:
    raise InputError(f'unknown transform {transform!r}; use one of {TRANSFORMS}')
  if n_train < 1 or n_test < 1:
    raise InputError(f'n_train and n_test must be >= 1, got {n_train} and {n_test}')
  p, h, w, _ = images.shape
  count = n_train + n_test
  tiled = jnp.tile(images, (count, 1, 1, 1))  # [count * P, H, W, C], sample-major.
  if transform == 'translate':
    max_px = int(max_shift * min(h, w))
    shifts = _distinct_shifts(key, p, count, max_px)  # [P, count, 2]
    samples = translate(tiled, shifts.transpose(1, 0, 2).reshape(-1, 2), fill)
  elif transform == 'rotate':
    degrees = jax.random.uniform(key, (count * p,), minval=-max_degrees, maxval=max_degrees)
    samples = rotate(tiled, degrees, fill)
  else:
    samples = color_jitter(key, tiled, jitter)
  labels = jnp.tile(jnp.arange(p, dtype=jnp.int32), count)
  cut = n_train * p
  return ExemplarTask(samples[:cut], labels[:cut], samples[cut:], labels[cut:])
