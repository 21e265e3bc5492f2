"""Random image transforms: translation, rotation and colour jitter, in two styles.

Every function is pure and jit-compatible with its settings static, takes f32[N, H, W, C]
network input in [0, 1] and explicit raw PRNG keys. Pixels a translation or rotation uncovers
get `fill`: a number (0.0, black, as torchvision) or 'mean' (each image's mean colour).

`style` decides the semantics and the parameter draws (`Transform`, `random_transform`):
'rwjax' (integer shifts, bilinear rotations, `yiq_jitter` in a fixed order) or 'torchvision'
(the paper's RandomAffine and ColorJitter, typed from torchvision's documented semantics:
`affine_params`, `jitter_params`, `apply_jitter`). Each style's draws in full:
docs/evaluation.md, 'The paper's code and this one'.
"""

from typing import NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from rwjax.errors import InputError

Fill = Union[float, str]
KINDS = ('translate', 'rotate', 'color', 'none')
STYLES = ('rwjax', 'torchvision')


class Transform(NamedTuple):
  """One kind of random transform, with its style's settings (hashable: a static argument)."""
  kind: str  # KINDS
  style: str = 'rwjax'  # STYLES
  translate: float = 0.5  # largest shift, a fraction of the side
  degrees: float = 180.0  # largest rotation
  jitter: tuple = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue
  fill: Fill = 0.0


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


def yiq_jitter(key: jax.Array, images: jax.Array, jitter: tuple) -> jax.Array:
  """Random brightness, contrast, saturation and hue per image (in that order), clipped.

  Grey images (C = 1) get brightness and contrast only.

  Args:
    key: raw PRNG key u32[2].
    images: f32[N, H, W, C] in [0, 1].
    jitter: (brightness, contrast, saturation, hue) strengths: factors uniform in
      [1 - s, 1 + s], the hue turned by a uniform fraction of a full turn in [-hue, hue].

  Returns:
    f32[N, H, W, C] in [0, 1].
  """
  n, c = images.shape[0], images.shape[-1]
  kb, kc, ks, kh = jax.random.split(key, 4)
  factor = lambda k, s: jax.random.uniform(k, (n, 1, 1, 1), minval=1 - s, maxval=1 + s)
  grey = lambda x: x.mean(-1, keepdims=True) if c == 1 else x @ _YIQ[0][:, None]
  x = jnp.clip(images * factor(kb, jitter[0]), 0, 1)
  mean = grey(x).mean(axis=(1, 2, 3), keepdims=True)
  x = jnp.clip((x - mean) * factor(kc, jitter[1]) + mean, 0, 1)
  if c == 3:
    g = grey(x)
    x = jnp.clip((x - g) * factor(ks, jitter[2]) + g, 0, 1)
    # Hue: turn the chroma plane (I, Q) of YIQ.
    turn = 2 * jnp.pi * jax.random.uniform(kh, (n,), minval=-jitter[3], maxval=jitter[3])
    cos, sin = jnp.cos(turn), jnp.sin(turn)
    one, zero = jnp.ones_like(cos), jnp.zeros_like(cos)
    spin = jnp.stack([jnp.stack([one, zero, zero], -1),
                      jnp.stack([zero, cos, -sin], -1),
                      jnp.stack([zero, sin, cos], -1)], -2)  # [N, 3, 3]
    mix = jnp.einsum('ij,njk,kl->nil', _YIQ_INV, spin, _YIQ)  # [N, 3, 3] RGB -> RGB.
    x = jnp.clip(jnp.einsum('nij,nhwj->nhwi', mix, x), 0, 1)
  return x


def affine_params(key: jax.Array, n: int, height: int, width: int,
                  degrees: float, translate: float) -> tuple[jax.Array, jax.Array]:
  """Draws RandomAffine parameters for n images.

  Returns:
    (angles f32[N] degrees, shifts i32[N, 2] as (dy, dx) whole pixels).
  """
  k_angle, k_x, k_y = jax.random.split(key, 3)
  angles = jax.random.uniform(k_angle, (n,), minval=-degrees, maxval=degrees)
  max_dx, max_dy = translate * width, translate * height
  dx = jnp.round(jax.random.uniform(k_x, (n,), minval=-max_dx, maxval=max_dx))
  dy = jnp.round(jax.random.uniform(k_y, (n,), minval=-max_dy, maxval=max_dy))
  return angles, jnp.stack([dy, dx], -1).astype(jnp.int32)


def jitter_params(key: jax.Array, n: int, jitter: tuple) -> tuple[jax.Array, jax.Array]:
  """Draws ColorJitter parameters for n images.

  Returns:
    (order i32[N, 4]: a permutation of (0 brightness, 1 contrast, 2 saturation, 3 hue) per
    image; factors f32[N, 4]: brightness, contrast, saturation factors and the hue shift).
  """
  k_order, k_b, k_c, k_s, k_h = jax.random.split(key, 5)
  order = jax.vmap(lambda k: jax.random.permutation(k, 4))(jax.random.split(k_order, n))
  factor = lambda k, s: jax.random.uniform(k, (n,), minval=max(0.0, 1.0 - s), maxval=1.0 + s)
  hue = jax.random.uniform(k_h, (n,), minval=-jitter[3], maxval=jitter[3])
  factors = jnp.stack([factor(k_b, jitter[0]), factor(k_c, jitter[1]),
                       factor(k_s, jitter[2]), hue], -1)
  return order.astype(jnp.int32), factors


def grey(x: jax.Array) -> jax.Array:
  """torchvision's rgb_to_grayscale (ITU-R 601-2 luma, as torchvision rounds its weights):
  f32[..., 3] -> f32[..., 1] (grey images pass)."""
  return x if x.shape[-1] == 1 else x @ jnp.asarray((0.2989, 0.587, 0.114), x.dtype)[:, None]


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


def random_transform(key: jax.Array, images: jax.Array, t: Transform) -> jax.Array:
  """One random draw of transform `t` per image: f32[N, H, W, C] -> f32[N, H, W, C]."""
  n, h, w, _ = images.shape
  if t.kind == 'none':
    return images
  if t.style == 'rwjax':
    if t.kind == 'translate':
      k = int(t.translate * min(h, w))
      return translate(images, jax.random.randint(key, (n, 2), -k, k + 1, jnp.int32), t.fill)
    if t.kind == 'rotate':
      return rotate(images, jax.random.uniform(key, (n,), minval=-t.degrees,
                                               maxval=t.degrees), t.fill)
    return yiq_jitter(key, images, t.jitter)
  if t.kind == 'color':
    return apply_jitter(images, *jitter_params(key, n, t.jitter))
  if t.kind == 'translate':  # RandomAffine(0, translate=(t, t))
    return translate(images, affine_params(key, n, h, w, 0.0, t.translate)[1], t.fill)
  # RandomAffine(degrees): about the centre, nearest pixel.
  return rotate(images, affine_params(key, n, h, w, t.degrees, 0.0)[0], t.fill, order=0)
