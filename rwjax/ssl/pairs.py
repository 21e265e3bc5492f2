"""Positive pairs of wave frames, sampled in-jit from a per-device frame buffer; the controls.

A view at frame t of a wave is paired with the frame `separation` frames later of the same wave
(the paper's 'chop'). A wave is a label value (>= 0) within one buffer row (one retina). `shuffle`,
one of SHUFFLES (CONTROLS maps each control to its temporal and spatial part; ALIASES the short
names), destroys structure before pairing; the temporal permutations are drawn afresh every step
('temporal_global': over the whole buffer). The controls: docs/training.md, 'On the on-device
simulator'.

Wave id of a view: id_offset + r * T + t0, with r its buffer row, T the buffer length and t0 the
first frame of row r carrying the wave's label; unique within a buffer, and across devices with
id_offset = device_index * R * T. frame_idx is the view's position in the (shuffled) buffer, so
the loss's rule "same wave and |frame_idx difference| == separation" marks exactly the chopped
partners as positives.
"""

import jax
import jax.numpy as jnp

from rwjax.errors import InputError

# control -> (temporal part, spatial part); see the module docstring.
CONTROLS = {
    'none': (None, None),
    'temporal_global': ('global', None),
    'temporal_within_wave': ('within_wave', None),
    'spatial_per_frame': (None, 'per_frame'),
    'spatial_fixed': (None, 'fixed'),
    'spatiotemporal_global': ('global', 'per_frame'),
    'spatiotemporal_within_wave': ('within_wave', 'fixed'),
}
ALIASES = {'temporal': 'temporal_within_wave', 'spatial': 'spatial_fixed',
           'spatiotemporal': 'spatiotemporal_within_wave'}
SHUFFLES = tuple(CONTROLS) + tuple(ALIASES)


def control_parts(shuffle: str) -> tuple[str | None, str | None]:
  """(temporal part, spatial part) of a control name or alias; InputError if unknown."""
  if shuffle not in SHUFFLES:
    raise InputError(f'shuffle {shuffle!r} is unknown; use one of {SHUFFLES}')
  return CONTROLS[ALIASES.get(shuffle, shuffle)]


def make_pixel_perm(key: jax.Array, height: int, width: int) -> jax.Array:
  """A random permutation i32[height * width] of flattened pixel positions (spatial control)."""
  return jax.random.permutation(key, height * width).astype(jnp.int32)


def shuffle_pixels_per_frame(keys: jax.Array, views: jax.Array) -> jax.Array:
  """The paper's spatial control: views f32[N, H, W, C], each view and channel permuted by its
  own random pixel permutation drawn from keys u32[N, 2] (the same key, the same permutations)."""
  n, h, w, c = views.shape

  def one(key, view):  # view: f32[H, W, C]
    order = jnp.argsort(jax.random.uniform(key, (c, h * w)), axis=1)
    flat = view.reshape(h * w, c).T  # [C, H * W]
    return jnp.take_along_axis(flat, order, axis=1).T.reshape(h, w, c)

  return jax.vmap(one)(keys, views)


def _shuffled_order(key: jax.Array, labels: jax.Array, temporal: str) -> tuple[jax.Array, ...]:
  """(row i32[R, T], t i32[R, T]): the buffer frame shown at each position after permuting the
  wave frames of the whole buffer together ('global') or of each wave ('within_wave'); frames
  without a wave stay in place."""
  r, t = labels.shape
  if temporal == 'within_wave':  # group: the wave's first frame in the row
    first = jnp.argmax(labels[:, :, None] == labels[:, None, :], axis=2)
    shown = _order_within_groups(key, jnp.where(labels >= 0, first, t + jnp.arange(t)))
    return jnp.broadcast_to(jnp.arange(r)[:, None], (r, t)), shown
  group = jnp.where(labels.reshape(1, r * t) >= 0, 0, 1 + jnp.arange(r * t))
  source = _order_within_groups(key, group).reshape(r, t)
  return source // t, source % t


def _order_within_groups(key: jax.Array, group: jax.Array) -> jax.Array:
  """i32[R, T]: for each position, the position (same row) shown there after a random
  permutation within each group (group i32[R, T], per row)."""
  r, t = group.shape
  # Both orders list the frames group by group: `shuffled` in random order within each group,
  # `in_order` in time order. Position in_order[k] then shows frame shuffled[k] of its own group.
  random_order = jnp.argsort(jax.random.uniform(key, (r, t)), axis=1)
  by_group = jnp.argsort(jnp.take_along_axis(group, random_order, axis=1), axis=1, stable=True)
  shuffled = jnp.take_along_axis(random_order, by_group, axis=1)
  in_order = jnp.argsort(group, axis=1, stable=True)
  rows = jnp.arange(r)[:, None]
  return jnp.zeros((r, t), jnp.int32).at[rows, in_order].set(shuffled.astype(jnp.int32))


def sample_pairs(key: jax.Array, frames: jax.Array, labels: jax.Array, n_pairs: int, *,
                 separation: int = 1, shuffle: str = 'none', perm: jax.Array | None = None,
                 id_offset: int | jax.Array = 0) -> dict[str, jax.Array]:
  """Samples `n_pairs` chopped positive pairs from a frame buffer (jit-able).

  Pair positions (r, t) are drawn uniformly without replacement among those where
  labels[r, t] >= 0 and labels[r, t + separation] == labels[r, t]. When fewer than n_pairs exist,
  the remaining pairs are returned with valid=False (never an error, so a quiet buffer just
  contributes nothing to the loss).

  Args:
    key: PRNG key u32[2].
    frames: f32[R, T, H, W] or f32[R, T, H, W, C] frame buffer.
    labels: i32[R, T] per-frame wave labels, -1 = no wave.
    n_pairs: number of pairs (static); at most R * (T - separation).
    separation: frames between the two views of a pair (>= 1, < T).
    shuffle: the control, one of SHUFFLES (see the module docstring). Its 'per_frame' spatial
      part is left to the caller (`shuffle_pixels_per_frame`, once the channels exist).
    perm: i32[H * W] pixel permutation, required for the 'fixed' spatial controls.
    id_offset: added to every wave id (see the module docstring).

  Returns:
    dict with 'views' f32[2 * n_pairs, H, W(, C)] (first the n_pairs anchors, then their
    partners in the same order), 'wave_id' i32[2n], 'frame_idx' i32[2n], 'valid' bool[2n].
  """
  temporal, spatial = control_parts(shuffle)
  if labels.ndim != 2 or frames.shape[:2] != labels.shape or frames.ndim not in (4, 5):
    raise InputError(f'frames {frames.shape} and labels {labels.shape} must be [R, T, H, W(, C)] '
                     'and [R, T]')
  r, t = labels.shape
  if isinstance(separation, bool) or not isinstance(separation, int) or not 1 <= separation < t:
    raise InputError(f'frame separation {separation!r} must be an integer in [1, {t - 1}] for a '
                     f'buffer of {t} frames')
  n_pos = r * (t - separation)
  if not 1 <= n_pairs <= n_pos:
    raise InputError(f'n_pairs={n_pairs} must be in [1, {n_pos}] for a buffer of {r} rows x {t} '
                     f'frames at separation {separation}; use fewer pairs or a longer buffer')
  spatial = spatial == 'fixed'
  h, w = frames.shape[2:4]
  if spatial and (perm is None or perm.shape != (h * w,)):
    raise InputError(f'shuffle {shuffle!r} needs perm i32[{h * w}] from make_pixel_perm')

  key_pos, key_time = jax.random.split(key)
  frames, labels = jnp.asarray(frames), jnp.asarray(labels, jnp.int32)
  ok = (labels[:, :-separation] >= 0) & (labels[:, separation:] == labels[:, :-separation])
  ok = ok.reshape(-1)
  # Gumbel top-k = uniform sampling without replacement among the allowed positions.
  scores = jnp.where(ok, jax.random.gumbel(key_pos, ok.shape), -jnp.inf)
  _, flat = jax.lax.top_k(scores, n_pairs)
  valid = ok[flat]
  row, t0 = flat // (t - separation), flat % (t - separation)
  row = jnp.concatenate([row, row])
  pos = jnp.concatenate([t0, t0 + separation])

  src_row, src_t = row, pos
  if temporal is not None:
    src_row, src_t = (x[row, pos] for x in _shuffled_order(key_time, labels, temporal))
  views = frames[src_row, src_t]
  if spatial:
    flat_views = views.reshape((2 * n_pairs, h * w) + views.shape[3:])
    views = flat_views[:, perm].reshape(views.shape)
  # The module docstring's wave id of each view, from its own row only (no [R, T, T]
  # comparison of the whole buffer: a recorded movie's rows are thousands of frames long).
  label = labels[row, pos]
  first = jnp.argmax(labels[row] == label[:, None], axis=1)
  ids = jnp.where(label >= 0, id_offset + row * t + first, -1).astype(jnp.int32)
  return {'views': views,
          'wave_id': ids,
          'frame_idx': pos.astype(jnp.int32),
          'valid': jnp.concatenate([valid, valid])}
