"""Simulator frames -> network input: z-score, min-max, block pooling, channels.

`to_network_input` runs one of two orders of the same steps (`NORMS`, config.data.movie_norm):

  'per_retina'  each retina (row of a batch) on its own at lattice resolution: per-pixel
                z-score over its frames, min-max of that retina to [0, 1], then block
                mean-pooling (frames stay inside [0, 1] but no longer span it).
  'paper'       the paper's: block mean-pooling first, then one per-pixel z-score over every
                frame of the movie (population std, a constant pixel maps to 0), then one
                min-max over the whole movie, so the movie spans exactly [0, 1].

Then channel replication. Pure jax.numpy, so it runs inside the jitted train step. The steps
are exposed one by one for rwjax.waves.dataset, which applies them to recordings in chunks.
"""

import jax
import jax.numpy as jnp

from rwjax.errors import InputError

_EPS = 1e-6
NORMS = ('per_retina', 'paper')


def check_norm(norm: str, key: str = 'config.data.movie_norm') -> None:
  """InputError unless `norm` is one of NORMS (`key`: the config key that set it)."""
  if norm not in NORMS:
    raise InputError(f'{key}={norm!r} is unknown; use one of {NORMS} (the paper: \'paper\')')


def to_network_input(frames: jax.Array, out_size: int, channels: int = 1,
                     norm: str = 'per_retina') -> jax.Array:
  """Turns wave movies into network input.

  Args:
    frames: f32[..., T, H, W] simulator frames (any units), H and W multiples of out_size.
    out_size: side of the output frames; H // out_size x W // out_size blocks are averaged.
    channels: 1, or 3 to replicate the grey frames for an RGB network.
    norm: 'per_retina' (each [T, H, W] movie on its own, pooled last) or 'paper' (pooled
      first, then one z-score per pixel and one min-max over all of `frames`); see the module
      docstring.
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
  check_norm(norm, 'norm')
  x = frames.astype(jnp.float32)
  if norm == 'paper':
    x = block_pool(x, out_size)
    frame_axes = tuple(range(x.ndim - 2))  # every frame of every retina: one movie
    z = zscore(x, x.mean(axis=frame_axes), x.std(axis=frame_axes))
    x = unit_range(z, z.min(), z.max())
  else:
    z = zscore(x, x.mean(axis=-3, keepdims=True), x.std(axis=-3, keepdims=True))
    x = block_pool(unit_range(z, z.min(axis=(-3, -2, -1), keepdims=True),
                              z.max(axis=(-3, -2, -1), keepdims=True)), out_size)
  return jnp.repeat(x[..., None], channels, axis=-1)


def zscore(x: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
  """(x - mean) / std per pixel; pixels of ~zero std (constant) become 0."""
  return (x - mean) / jnp.maximum(std, _EPS)


def unit_range(x: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
  """Min-max (x - lo) / (hi - lo) to [0, 1]; all 0 where hi - lo is ~zero."""
  span = hi - lo
  return jnp.where(span > _EPS, (x - lo) / jnp.maximum(span, _EPS), 0.0)


def rotated_copies(x: jax.Array, degrees: tuple[int, ...]) -> jax.Array:
  """x f32[B, T, H, W] followed by its copies rotated counter-clockwise by each angle
  (multiples of 90; the paper's np.rot90 over the frame axes): f32[B * (1 + n), T, H, W].

  Square frames keep their shape; 90 and 270 degrees swap H and W, so they need H == W.
  """
  bad = [d for d in degrees if d % 90 or not 0 < d < 360]
  if bad:
    raise InputError(f'rotations {bad} are not 90, 180 or 270 degrees')
  if any(d % 180 for d in degrees) and x.shape[-1] != x.shape[-2]:
    raise InputError(f'frames of {x.shape[-2]}x{x.shape[-1]} cannot be rotated by 90 or 270 '
                     'degrees into the same batch; use square frames or rotations=(180,)')
  return jnp.concatenate([x] + [jnp.rot90(x, d // 90, axes=(-2, -1)) for d in degrees])


def block_pool(x: jax.Array, out_size: int) -> jax.Array:
  """Block mean-pooling f32[..., H, W] -> f32[..., out_size, out_size] (H, W multiples)."""
  h, w = x.shape[-2:]
  bh, bw = h // out_size, w // out_size
  return x.reshape(*x.shape[:-2], out_size, bh, out_size, bw).mean(axis=(-3, -1))
