"""Frame sources for pre-training; they run per device inside the jitted step.

A source is a pair of pure per-device functions (called under `shard_map`):

  init(key, *inputs) -> state              once, before training
  advance(state) -> (state, frames, labels)  every step
    frames: f32[R, T, h, w] in [0, 1] at network resolution (no channel axis)
    labels: i32[R, T] wave id of each frame, -1 = no wave; ids are unique across
            retinas and devices, so positives and negatives are decided by id.

`sim`: each device simulates its own R retinas (the key folded with the device index) into a ring
buffer of the last T frames, `frames_per_step` new frames a step (with `groups` > 1, one group of
R / groups retinas a step). The transform to network input (rwjax.waves.frames, `norm`) is fixed
from a calibration stretch after the warm-up (a stream has no whole movie to normalise over);
frames outside its range are clipped to [0, 1]. Wave labels (`wave_labels`, computed in-jit on the
lattice frames above `threshold`): 'components', rwjax.waves.stats.frame_labels tracked online by
rwjax.ssl.wave_labels, the frames returned `label_delay` frames late so that their labels settle
(buffered labels are revised as waves merge); or 'active_fraction', consecutive frames with at
least `active_fraction` of their pixels active are one wave. See docs/training.md, 'Wave labels in
the stream'.

`file`: a movie (already network input) sampled in place. It is one of the source's `inputs`, host
arrays `init` receives as arguments (not compiled in as constants), a copy on every device or
sharded or streamed by rwjax.ssl.placement; `checkpoint_view` drops it from checkpoints.
"""

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rwjax.ssl import wave_labels as wave_labels_lib
from rwjax.waves import frames as frames_lib

WAVE_LABELS = ('components', 'active_fraction')


class Source(NamedTuple):
  init: Callable[..., Any]  # (key, *inputs) -> state
  advance: Callable[[Any], tuple[Any, jax.Array, jax.Array]]
  checkpoint_view: Callable[[Any], Any]  # the part of the state worth saving
  restore_view: Callable[[Any, Any], Any]  # (fresh state, saved view) -> state
  inputs: tuple = ()  # host arrays passed to init, replicated on every device...
  sharded: bool = False  # ...or split on their leading axis over 'data' (rwjax.ssl.placement)
  feed: Any = None  # feed(train state, step) -> state: host-streamed data (rwjax.ssl.placement)


class SimState(NamedTuple):
  """Per-device state of the simulator source (R retinas, T buffered frames)."""
  sim: Any           # the simulator's State (fields f32[R, H, W], key u32[R, 2])
  buffer: jax.Array  # f32[R, T + D, h, w] recent frames, network resolution, [0, 1]
  labels: jax.Array  # i32[R, T + D] (D = label_delay frames not yet returned)
  count: jax.Array   # i32[R] waves begun so far ('active_fraction')
  active: jax.Array  # bool[R] whether the last frame was part of a wave ('active_fraction')
  shift: jax.Array   # f32[R, H, W] per-pixel mean ('paper': f32[R, h, w], pooled pixels)
  scale: jax.Array   # f32[R, H, W] per-pixel 1 / std ('paper': f32[R, h, w])
  lo: jax.Array      # f32[R] min of the z-scored calibration movie
  hi: jax.Array      # f32[R] max of the z-scored calibration movie
  turn: jax.Array    # i32[1] steps taken mod groups: the group that advances next
  tracker: Any = None  # wave_labels.Tracker over the T + D frames ('components')


def calibrate(model, sim, params, n_frames: int, chunk: int = 10, norm: str = 'per_retina',
              input_size: int | None = None):
  """Per-pixel mean/std and z range over `n_frames` simulated frames.

  Streams the frames (nothing of size T is kept). 'per_retina': per retina at lattice
  resolution. 'paper': the frames block-pooled to `input_size` first, the statistics taken
  over every retina of every device (psum over 'data') and the same for every retina.
  Returns (sim, shift f32[R, H, W], scale f32[R, H, W], lo f32[R], hi f32[R]), H, W =
  input_size for 'paper'.
  """
  paper = norm == 'paper'
  look = (lambda m: frames_lib.block_pool(m, input_size)) if paper else (lambda m: m)
  n_chunks = max(1, -(-n_frames // chunk))
  sim, first = model.advance(sim, 1, params)
  ref = look(first)[:, 0]  # shift before summing squares: keeps float32 accurate
  if paper:  # one reference for all retinas and devices: the sums below add up across them
    ref = jnp.broadcast_to(jax.lax.pmean(ref.mean(0), 'data'), ref.shape)

  def body(carry, _):
    sim, s1, s2, vmin, vmax = carry
    sim, movie = model.advance(sim, chunk, params)
    movie = look(movie)
    d = movie - ref[:, None]
    return (sim, s1 + d.sum(1), s2 + (d * d).sum(1),
            jnp.minimum(vmin, movie.min(1)), jnp.maximum(vmax, movie.max(1))), None

  zeros = jnp.zeros_like(ref)
  # 'per_retina': the reference frame is in the range; 'paper' (ref is a mean): only the frames
  lo0, hi0 = (jnp.full_like(ref, jnp.inf), jnp.full_like(ref, -jnp.inf)) if paper else (ref, ref)
  (sim, s1, s2, vmin, vmax), _ = jax.lax.scan(
      body, (sim, zeros, zeros, lo0, hi0), None, length=n_chunks)
  n = n_chunks * chunk
  if paper:  # sums over retinas and devices: one movie
    n = n * s1.shape[0] * jax.lax.psum(1, 'data')
    s1, s2 = (jnp.broadcast_to(jax.lax.psum(x.sum(0), 'data'), x.shape) for x in (s1, s2))
    vmin = jnp.broadcast_to(jax.lax.pmin(vmin.min(0), 'data'), vmin.shape)
    vmax = jnp.broadcast_to(jax.lax.pmax(vmax.max(0), 'data'), vmax.shape)
  mean_d = s1 / n
  std = jnp.sqrt(jnp.maximum(s2 / n - mean_d * mean_d, 0.0))
  if paper:  # as frames.zscore (StandardScaler): a constant pixel maps to 0
    std = jnp.maximum(std, 1e-6)
  else:
    # A pixel that no wave crossed has ~zero variance; floor its std so it cannot
    # dominate the retina's min-max range.
    std = jnp.maximum(std, 0.1 * std.mean((1, 2), keepdims=True) + 1e-6)
  mean = ref + mean_d
  scale = 1.0 / std
  lo = ((vmin - mean) * scale).min((1, 2))
  hi = ((vmax - mean) * scale).max((1, 2))
  return sim, mean, scale, lo, hi


def make_sim_source(*, model, params, input_size: int, retinas: int,
                    frames_per_step: int, buffer_frames: int, warmup_s: float,
                    calibration_s: float, threshold: float,
                    active_fraction: float, groups: int = 1,
                    wave_labels: str = 'components', label_delay: int = 10,
                    min_wave_size: int = 50, norm: str = 'per_retina') -> Source:
  """The on-device simulator source (see module docstring). `model` is a
  rwjax.waves simulator module, `params` its Params; `groups` divides `retinas`; `norm`
  one of rwjax.waves.frames.NORMS."""
  if retinas % groups:
    raise ValueError(f'groups={groups} must divide retinas={retinas}')
  if wave_labels not in WAVE_LABELS:
    raise ValueError(f'wave_labels={wave_labels!r} is not one of {WAVE_LABELS}')
  frames_lib.check_norm(norm, 'norm')
  components = wave_labels == 'components'
  delay = label_delay if components else 0
  window = buffer_frames + delay
  n_cal = max(1, round(calibration_s / params.frame_dt))
  size = retinas // groups

  def transform(state: SimState, movie):  # f32[R, F, H, W] -> f32[R, F, h, w]
    if norm == 'paper':
      movie = frames_lib.block_pool(movie, input_size)
    z = (movie - state.shift[:, None]) * state.scale[:, None]
    x = (z - state.lo[:, None, None, None]) / (state.hi - state.lo)[:, None, None, None]
    x = jnp.clip(x, 0.0, 1.0)
    return x if norm == 'paper' else frames_lib.block_pool(x, input_size)

  def wave_id(first, n, local):  # local i32[n, ...] count or slot, -1 = none
    # (global retina index << SLOT_BITS) | (wave count or slot mod 2**SLOT_BITS)
    bits = wave_labels_lib.SLOT_BITS
    gid = jax.lax.axis_index('data') * retinas + first + jnp.arange(n, dtype=jnp.int32)
    gid = gid.reshape((n,) + (1,) * (local.ndim - 1))
    return jnp.where(local >= 0, (gid << bits) | (local & ((1 << bits) - 1)), -1)

  def push(state: SimState, n: int, first=0) -> SimState:
    """Advances every retina of `state` by n frames; `state` holds the device's
    retinas first, first + 1, ... (their wave ids depend on it)."""
    sim, movie = model.advance(state.sim, n, params)
    buffer = jnp.concatenate([state.buffer[:, n:], transform(state, movie)], axis=1)
    if components:
      tracker = wave_labels_lib.track(state.tracker, movie > threshold)
      labels = wave_id(first, movie.shape[0], wave_labels_lib.frame_labels(tracker, min_wave_size))
      return state._replace(sim=sim, buffer=buffer, labels=labels, tracker=tracker)

    def one(carry, frame):  # frame: f32[r, H, W]
      count, active, wave = wave_labels_lib.active_fraction_update(
          *carry, frame > threshold, active_fraction)
      return (count, active), wave_id(first, movie.shape[0], wave)

    (count, active), labels = jax.lax.scan(
        one, (state.count, state.active), jnp.moveaxis(movie, 1, 0))
    labels = jnp.concatenate([state.labels[:, n:], jnp.moveaxis(labels, 0, 1)], axis=1)
    return state._replace(sim=sim, buffer=buffer, labels=labels, count=count, active=active)

  def push_group(state: SimState, n: int) -> SimState:
    """Advances the group whose turn it is (rows first .. first + size - 1)."""
    first = state.turn[0] * size
    rows = state._replace(turn=None)  # every other leaf has a leading retina axis
    part = jax.tree.map(lambda x: jax.lax.dynamic_slice_in_dim(x, first, size), rows)
    part = push(part, n, first)
    rows = jax.tree.map(lambda x, y: jax.lax.dynamic_update_slice_in_dim(x, y, first, 0),
                        rows, part)
    return rows._replace(turn=(state.turn + 1) % groups)

  def init(key) -> SimState:
    key = jax.random.fold_in(key, jax.lax.axis_index('data'))
    sim = model.init(key, retinas, params)
    sim = model.warmup(sim, warmup_s, params)
    sim, shift, scale, lo, hi = calibrate(model, sim, params, n_cal, norm=norm,
                                          input_size=input_size)
    state = SimState(
        sim=sim,
        buffer=jnp.zeros((retinas, window, input_size, input_size), jnp.float32),
        labels=jnp.full((retinas, window), -1, jnp.int32),
        count=jnp.zeros((retinas,), jnp.int32),
        active=jnp.zeros((retinas,), bool),
        shift=shift, scale=scale, lo=lo, hi=hi, turn=jnp.zeros((1,), jnp.int32),
        tracker=(wave_labels_lib.init(retinas, params.size, params.size, window)
                 if components else None))
    return push(state, window)

  def advance(state: SimState):
    state = push(state, frames_per_step) if groups == 1 else push_group(state, frames_per_step)
    # The newest `delay` frames wait for their labels to settle.
    return state, state.buffer[:, :buffer_frames], state.labels[:, :buffer_frames]

  return Source(init=init, advance=advance, checkpoint_view=lambda s: s,
                restore_view=lambda fresh, saved: saved)


class FileState(NamedTuple):
  movie: jax.Array   # f32[B, T, h, w]
  labels: jax.Array  # i32[B, T]


def make_file_source(movie, labels, sharded: bool = False, feed=None) -> Source:
  """A fixed movie f32[B, T, h, w] (already network input) with labels i32[B, T], nothing of it
  checkpointed. Every device holds all of it, or with `sharded` (rwjax.ssl.placement; arrays kept
  as given: lazy shards stay lazy) its part of the leading axis, which a `feed` may replace."""
  def init(key, movie, labels) -> FileState:
    del key
    return FileState(movie, labels)

  if not sharded:
    movie, labels = np.asarray(movie, np.float32), np.asarray(labels, np.int32)
  return Source(init=init, advance=lambda s: (s, s.movie, s.labels),
                checkpoint_view=lambda s: {}, restore_view=lambda fresh, saved: fresh,
                inputs=(movie, labels), sharded=sharded, feed=feed)
