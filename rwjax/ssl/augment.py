"""Optional on-device image augmentations of views f32[N, H, W, C]; all off by default.

Each is a pure function of (key, views), drawing independent parameters per view. The paper
trained on raw wave frames, so `augment` with its defaults returns the views unchanged.
"""

import jax
import jax.numpy as jnp

from rwjax.errors import InputError


def random_translate(key: jax.Array, views: jax.Array, max_shift: int) -> jax.Array:
  """Shifts each view by (dy, dx), uniform integers in [-max_shift, max_shift], zero fill.

  Equivalent to a random crop of the zero-padded image: out[y, x] = in[y - dy, x - dx].
  """
  n, h, w = views.shape[:3]
  padded = jnp.pad(views, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
  shifts = jax.random.randint(key, (n, 2), -max_shift, max_shift + 1)
  crop = lambda img, s: jax.lax.dynamic_slice(
      img, (max_shift - s[0], max_shift - s[1], 0), (h, w, img.shape[-1]))
  return jax.vmap(crop)(padded, shifts)


def random_flip(key: jax.Array, views: jax.Array) -> jax.Array:
  """Mirrors each view left-right with probability 1/2."""
  flip = jax.random.bernoulli(key, 0.5, (views.shape[0], 1, 1, 1))
  return jnp.where(flip, views[:, :, ::-1], views)


def gaussian_noise(key: jax.Array, views: jax.Array, std: float) -> jax.Array:
  """Adds i.i.d. N(0, std^2) noise to every pixel (no clipping)."""
  return views + std * jax.random.normal(key, views.shape, views.dtype)


def augment(key: jax.Array, views: jax.Array, *, max_shift: int = 0, flip: bool = False,
            noise_std: float = 0.0) -> jax.Array:
  """views f32[N, H, W, C] translated by up to max_shift pixels (if > 0), flipped (if flip) and
  with noise of std noise_std (if > 0), under key u32[2]; `views` itself when everything is off."""
  if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
    raise InputError(f'augmentation max_shift {max_shift!r} must be an integer >= 0')
  if not noise_std >= 0:
    raise InputError(f'augmentation noise_std {noise_std!r} must be >= 0')
  k_shift, k_flip, k_noise = jax.random.split(key, 3)
  if max_shift > 0:
    views = random_translate(k_shift, views, max_shift)
  if flip:
    views = random_flip(k_flip, views)
  if noise_std > 0:
    views = gaussian_noise(k_noise, views, noise_std)
  return views
