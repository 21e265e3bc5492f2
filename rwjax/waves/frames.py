"""Simulator frames -> network input, as the paper prepared its wave movies.

Per-pixel z-score over time (removes each pixel's baseline and gain), global
min-max to [0, 1] per movie, block mean-pooling to the network's resolution and
channel replication. Pure jax.numpy, so it runs inside the jitted train step.
"""

import jax
import jax.numpy as jnp

from rwjax.errors import InputError

_EPS = 1e-6


def to_network_input(frames: jax.Array, out_size: int, channels: int = 1) -> jax.Array:
  """Turns wave movies into network input.

  Args:
    frames: f32[..., T, H, W] simulator frames (any units), H and W multiples of out_size.
    out_size: side of the output frames; H // out_size x W // out_size blocks are averaged.
    channels: 1, or 3 to replicate the grey frames for an RGB network.
  Returns:
    f32[..., T, out_size, out_size, channels] in [0, 1] (all 0 for a constant movie).
  """
  if frames.ndim < 3:
    raise InputError(f'frames must be [..., T, H, W], got shape {frames.shape}')
  t, h, w = frames.shape[-3:]
  if out_size < 1 or h % out_size or w % out_size:
    raise InputError(f'frames of {h}x{w} cannot be block-pooled to {out_size}x{out_size}; '
                     f'choose an out_size that divides both (e.g. {h // 2})')
  if channels not in (1, 3):
    raise InputError(f'channels={channels} must be 1 or 3')
  x = frames.astype(jnp.float32)
  mean = x.mean(axis=-3, keepdims=True)
  std = x.std(axis=-3, keepdims=True)
  z = (x - mean) / jnp.maximum(std, _EPS)   # constant pixels -> 0
  lo = z.min(axis=(-3, -2, -1), keepdims=True)
  hi = z.max(axis=(-3, -2, -1), keepdims=True)
  span = hi - lo
  x = jnp.where(span > _EPS, (z - lo) / jnp.maximum(span, _EPS), 0.0)
  return jnp.repeat(block_pool(x, out_size)[..., None], channels, axis=-1)


def block_pool(x: jax.Array, out_size: int) -> jax.Array:
  """Block mean-pooling f32[..., H, W] -> f32[..., out_size, out_size] (H, W multiples)."""
  h, w = x.shape[-2:]
  bh, bw = h // out_size, w // out_size
  return x.reshape(*x.shape[:-2], out_size, bh, out_size, bw).mean(axis=(-3, -1))
