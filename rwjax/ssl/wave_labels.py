"""Wave identity in the on-device stream: rwjax.waves.stats.frame_labels, online, in jit.

The wave finder calls a wave a 3-D (t, y, x) face-connected component of above-threshold pixels of
at least `min_size` pixel-frames and labels each frame with the wave that has most pixels in it.
Here, for R retinas at once, each new frame's active pixels are split into 4-connected components
seeded by the previous frame's waves (`components`): a component touching several waves merges
them (the smallest slot wins, and the merge spreads to every pixel of the merged waves), one
touching none is a new wave. Waves live in SLOTS per-retina slots (`parent` maps each to its wave's
representative, `size` counts its pixel-frames). Per window frame the tracker keeps its
`candidates` largest waves; a frame's label is, among those of at least `min_size`, the one with
most pixels, -1 if none (`frame_labels`), re-read after every frame, so later merges relabel
buffered frames. Labels can still differ from frame_labels on the whole movie (a merge, or a wave
reaching min_size, after the frame left the window; more components than candidates), hence the
source's `label_delay` (docs/training.md, 'Wave labels in the stream'). Pure jax.numpy on
fixed shapes.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

SLOT_BITS = 12
SLOTS = 1 << SLOT_BITS  # per-retina wave slots; the source's ids keep SLOT_BITS bits
# Waves remembered per frame. Failed initiations (a few pixels each, several alive at a
# time) and the separate beginnings of a wave that merge later all need a place: with 4,
# frames of a wave were lost to them on fragmented simulations; 16 lost none.
CANDIDATES = 16


class Tracker(NamedTuple):
  """Per-retina tracking state; every leaf has a leading retina axis R."""
  prev: jax.Array    # i32[R, H, W] wave slot of each pixel of the last frame, -1 = inactive
  parent: jax.Array  # i32[R, SLOTS] representative slot of each slot's wave
  size: jax.Array    # i32[R, SLOTS] pixel-frames so far (meaningful at representatives)
  count: jax.Array   # i32[R] slots handed out so far (the next is count mod SLOTS)
  cand: jax.Array    # i32[R, F, C] per window frame: slots of its C largest components
  cand_n: jax.Array  # i32[R, F, C] their pixels in that frame (0 = no component)


def init(retinas: int, height: int, width: int, frames: int,
         candidates: int = CANDIDATES) -> Tracker:
  """Nothing seen yet; a window of `frames` frames."""
  return Tracker(
      prev=jnp.full((retinas, height, width), -1, jnp.int32),
      parent=jnp.broadcast_to(jnp.arange(SLOTS, dtype=jnp.int32), (retinas, SLOTS)),
      size=jnp.zeros((retinas, SLOTS), jnp.int32),
      count=jnp.zeros((retinas,), jnp.int32),
      cand=jnp.zeros((retinas, frames, candidates), jnp.int32),
      cand_n=jnp.zeros((retinas, frames, candidates), jnp.int32))


def _neighbour_min(lab: jax.Array, mask: jax.Array, inf: int) -> jax.Array:
  """Min of each active pixel's label and its 4 neighbours' (i32[R, H, W])."""
  p = jnp.pad(lab, ((0, 0), (1, 1), (1, 1)), constant_values=inf)
  m = jnp.minimum(jnp.minimum(p[:, :-2, 1:-1], p[:, 2:, 1:-1]),
                  jnp.minimum(p[:, 1:-1, :-2], p[:, 1:-1, 2:]))
  return jnp.where(mask, jnp.minimum(lab, m), inf)


def _slot_min(values: jax.Array, slots: jax.Array, valid: jax.Array, inf: int) -> jax.Array:
  """i32[R, SLOTS]: per slot, the min of `values` over the valid pixels in it."""
  r = values.shape[0]
  idx = jnp.where(valid, slots, SLOTS)  # invalid pixels go to a dropped extra slot
  table = jnp.full((r, SLOTS + 1), inf, jnp.int32)
  rows = jnp.arange(r)[:, None]
  return table.at[rows, idx].min(values)[:, :SLOTS]


def components(mask: jax.Array, prev: jax.Array) -> jax.Array:
  """Components of one frame, continuing the previous frame's waves.

  Args:
    mask: bool[R, H, W] active pixels of the new frame.
    prev: i32[R, H, W] wave slots of the previous frame (-1 = inactive), representatives.
  Returns:
    i32[R, H * W]: per active pixel, the smallest wave slot its component (with the
    previous frame's waves it touches, merged) reaches, or SLOTS + p for a component that
    touches no wave, p its first pixel (raster order); SLOTS + H * W for inactive pixels.
  """
  r, h, w = mask.shape
  n = h * w
  big, inf = SLOTS, SLOTS + n
  pix = jnp.arange(n, dtype=jnp.int32)
  tracked = (mask & (prev >= 0)).reshape(r, n)
  prev_f = jnp.where(tracked, prev.reshape(r, n), 0)
  lab0 = jnp.where(mask.reshape(r, n), jnp.where(tracked, prev_f, big + pix), inf)

  def spread(lab):  # within the frame, to convergence
    def body(carry):
      lab, _ = carry
      new = _neighbour_min(lab.reshape(r, h, w), mask, inf).reshape(r, n)
      # Pointer jumping: a new component's label is a pixel of it, whose label may be smaller.
      fresh = (new >= big) & (new < inf)
      jumped = jnp.take_along_axis(new, jnp.where(fresh, new - big, 0), axis=1)
      new = jnp.where(fresh, jnp.minimum(new, jumped), new)
      return new, jnp.any(new != lab)
    # (The flag is derived from the data, so under shard_map it varies like the labels.)
    return jax.lax.while_loop(lambda c: c[1], body, (lab, jnp.any(mask)))[0]

  def through_the_past(lab):
    # Waves are connected through earlier frames: all pixels of one previous wave take the
    # smallest label any of them reached. Only needed after a merge (a scatter per pass).
    reach = _slot_min(lab, prev_f, tracked, inf)
    return jnp.where(tracked, jnp.minimum(lab, jnp.take_along_axis(reach, prev_f, axis=1)), lab)

  def body(carry):
    lab, _ = carry
    new = spread(through_the_past(lab))
    return new, jnp.any(new != lab)

  lab = spread(lab0)
  # A merge shows as a continuing pixel whose label is no longer its previous wave's.
  merged = jnp.any(tracked & (lab != prev_f))
  lab, _ = jax.lax.while_loop(lambda c: c[1], body, (lab, merged))
  return lab


def _largest(x: jax.Array, k: int):
  """(values, indices) i32[R, k] of the k largest entries of each row of x i32[R, S] >= 0.

  k rounds of argmax: on CPU, lax.top_k sorts every row and is several times slower
  (docs/training.md, 'Wave labels in the stream').
  """
  rows = jnp.arange(x.shape[0])
  values, indices = [], []
  for _ in range(k):
    i = jnp.argmax(x, axis=1).astype(jnp.int32)
    values.append(x[rows, i])
    indices.append(i)
    x = x.at[rows, i].set(-1)
  return jnp.stack(values, 1), jnp.stack(indices, 1)


def update(tracker: Tracker, mask: jax.Array) -> Tracker:
  """Adds one frame (mask bool[R, H, W]) to the tracker; the window moves by one frame."""
  r, h, w = mask.shape
  n = h * w
  big = SLOTS
  slot_ids = jnp.arange(SLOTS, dtype=jnp.int32)
  pix = jnp.arange(n, dtype=jnp.int32)
  lab = components(mask, tracker.prev)
  active = mask.reshape(r, n)
  # New waves: one slot per component root, in raster order of the roots.
  root = active & (lab == big + pix)
  rank = jnp.cumsum(root, axis=1, dtype=jnp.int32) - 1
  n_new = root.sum(1, dtype=jnp.int32)
  new_pix = active & (lab >= big)
  new_slot = (tracker.count[:, None]
              + jnp.take_along_axis(rank, jnp.where(new_pix, lab - big, 0), axis=1)) % SLOTS
  cur = jnp.where(active, jnp.where(lab < big, lab, new_slot), -1)
  is_new = ((slot_ids[None] - tracker.count[:, None]) % SLOTS) < n_new[:, None]
  # Merges: each previous wave maps to the smallest slot it is now connected to.
  prev = tracker.prev.reshape(r, n)
  tracked = active & (prev >= 0)
  reach = _slot_min(lab, jnp.where(tracked, prev, 0), tracked, SLOTS + n)
  merged = jnp.minimum(slot_ids[None], reach)
  parent = jnp.take_along_axis(merged, tracker.parent, axis=1)
  parent = jnp.where(is_new, slot_ids[None], parent)
  rows = jnp.arange(r)[:, None]
  was_rep = (tracker.parent == slot_ids[None]) & ~is_new
  size = jnp.zeros_like(tracker.size).at[rows, merged].add(
      jnp.where(was_rep, tracker.size, 0))
  pixels = jnp.zeros((r, SLOTS + 1), jnp.int32).at[rows, jnp.where(active, cur, SLOTS)].add(
      1)[:, :SLOTS]
  size = size + pixels
  top_n, top = _largest(pixels, tracker.cand.shape[-1])
  return Tracker(
      prev=cur.reshape(r, h, w), parent=parent, size=size,
      count=tracker.count + n_new,
      cand=jnp.concatenate([tracker.cand[:, 1:], top[:, None].astype(jnp.int32)], 1),
      cand_n=jnp.concatenate([tracker.cand_n[:, 1:], top_n[:, None]], 1))


def track(tracker: Tracker, masks: jax.Array) -> Tracker:
  """Adds frames masks bool[R, F, H, W] in order."""
  step = lambda t, m: (update(t, m), None)
  tracker, _ = jax.lax.scan(step, tracker, jnp.moveaxis(masks, 1, 0))
  return tracker


def frame_labels(tracker: Tracker, min_size: int) -> jax.Array:
  """i32[R, F]: wave slot of each window frame (oldest first), -1 = no wave."""
  r, f, c = tracker.cand.shape
  rep = jnp.take_along_axis(tracker.parent, tracker.cand.reshape(r, f * c), axis=1)
  big = jnp.take_along_axis(tracker.size, rep, axis=1) >= min_size
  rep, big = rep.reshape(r, f, c), big.reshape(r, f, c)
  ok = (tracker.cand_n > 0) & big
  same = rep[..., :, None] == rep[..., None, :]
  total = jnp.where(same & ok[..., None, :], tracker.cand_n[..., None, :], 0).sum(-1)
  total = jnp.where(ok, total, 0)
  best = jnp.argmax(total, axis=-1)
  label = jnp.take_along_axis(rep, best[..., None], axis=-1)[..., 0]
  return jnp.where(total.max(-1) > 0, label, -1).astype(jnp.int32)


def label_movie(masks: jax.Array, min_size: int, delay: int,
                candidates: int = CANDIDATES) -> jax.Array:
  """The label each frame of masks bool[R, T, H, W] has when it is `delay` frames old (what
  the source exposes; the last `delay` frames: their labels at the end). -> i32[R, T]."""
  r, t, h, w = masks.shape

  def step(tracker, mask):
    tracker = update(tracker, mask)
    return tracker, frame_labels(tracker, min_size)[:, 0]

  tracker, oldest = jax.lax.scan(step, init(r, h, w, delay + 1, candidates),
                                 jnp.moveaxis(masks, 1, 0))
  labels = jnp.concatenate([jnp.moveaxis(oldest, 0, 1), frame_labels(tracker, min_size)[:, 1:]],
                           axis=1)
  return labels[:, delay:]


def active_fraction_update(count: jax.Array, active: jax.Array, mask: jax.Array,
                           fraction: float):
  """The 'active_fraction' rule for one frame mask bool[R, H, W]: a frame is part of a wave
  when at least `fraction` of its pixels are active; consecutive such frames are one wave.
  count i32[R] waves begun, active bool[R] last frame's state -> (count, active, wave i32[R]
  (the count of the frame's wave, -1 = none))."""
  is_active = mask.mean((1, 2)) >= fraction
  count = count + (is_active & ~active).astype(jnp.int32)
  return count, is_active, jnp.where(is_active, count, -1)
