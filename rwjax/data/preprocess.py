"""The one function that brings natural images to the network's input format.

Network input (shared with wave frames): f32[N, size, size, channels] in [0, 1].
"""

import jax
import jax.numpy as jnp

from rwjax.errors import InputError

FITS = ('resize', 'pad')
# Per-channel mean and std the paper normalised each dataset with after its transforms (its
# src/data.py: transforms.Normalize), by dataset name.
CHANNEL_STATS = {'cifar10': ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
                 'cifar100': ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
                 'mnist': ((0.1307,), (0.3081,))}


def channel_stats(images) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """(mean, std) per channel of network-input images f32[N, H, W, C] (population std)."""
  x = jnp.asarray(images, jnp.float32)
  return (tuple(float(v) for v in x.mean(axis=(0, 1, 2))),
          tuple(float(v) for v in x.std(axis=(0, 1, 2))))


def to_network_input(images: jax.Array, size: int, channels: int,
                     fit: str = 'resize') -> jax.Array:
  """Scales, resizes and converts the channels of images for the network.

  Args:
    images: u8[N, H, W, C] in 0..255, or float[N, H, W, C] already in [0, 1]; C is 1 or 3.
    size: output height and width (static under jit). Resizing is bilinear with
      antialiasing (jax.image.resize); square inputs keep their aspect ratio.
    channels: output channels, 1 or 3 (static). Grey -> RGB replicates the grey level;
      RGB -> grey takes the BT.601 luminance.
    fit: 'resize' (above), or 'pad' (static): images no larger than size are centred on a
      black (0) size x size canvas, pixels unchanged (MNIST 28 -> 32: the digits keep their
      scale and stroke width, and the border is the digits' own black background; the
      paper fed MNIST's 28 x 28 unchanged); larger images are resized.

  Returns:
    f32[N, size, size, channels] in [0, 1].
  """
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise InputError(f'images must be [N, H, W, C] with C = 1 or 3, got shape {images.shape}; '
                     'decode grey or RGB images')
  if channels not in (1, 3):
    raise InputError(f'channels must be 1 or 3, got {channels}')
  if size < 1:
    raise InputError(f'size must be >= 1, got {size}')
  if fit not in FITS:
    raise InputError(f'fit={fit!r} is unknown; use one of {FITS}')
  x = jnp.asarray(images, jnp.float32)
  if jnp.issubdtype(images.dtype, jnp.integer):
    x = x / 255.0
  if x.shape[-1] == 3 and channels == 1:  # ITU-R BT.601 luma
    x = x @ jnp.asarray((0.299, 0.587, 0.114), jnp.float32)[:, None]
  n, h, w, _ = x.shape
  if fit == 'pad' and h <= size and w <= size:
    top, left = (size - h) // 2, (size - w) // 2
    x = jnp.pad(x, ((0, 0), (top, size - h - top), (left, size - w - left), (0, 0)))
  elif (h, w) != (size, size):
    x = jax.image.resize(x, (n, size, size, x.shape[-1]), method='linear', antialias=True)
  if x.shape[-1] == 1 and channels == 3:
    x = jnp.broadcast_to(x, (n, size, size, 3))
  return jnp.clip(x, 0.0, 1.0)
