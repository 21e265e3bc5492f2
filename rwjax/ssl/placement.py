"""Where a file source's movie lives during training (`config.data.placement`).

  'replicated'  every device holds a copy of the whole movie f32[B, T, h, w] and its labels (the
                file source before this option existed; the paper's single GPU held its whole
                dataset; on one device 'sharded' draws from the same distribution).
  'sharded'     the movie is cut into contiguous per-device shards that stay in device memory,
                each device holding only its own (about 1/D of the bytes); each device draws its
                pairs, or its part of a whole-wave batch, from its own shard, in-jit.
  'stream'      the shards stay on the host; a background thread puts the next chunk (pairs) or
                the next step's views (whole waves) on the devices while the step runs.
  'auto'        (default) 'sharded' when a shard fits `data.device_bytes` per device, 'stream'
                otherwise; 'replicated' for a movie with fewer separate waves than devices (too
                small to shard, and small enough to copy).

Shards (`pack_layout`). Frames outside every wave's span [first, last frame] in its row are never
drawn (a pair is two frames of one wave, a whole-wave batch holds wave frames), so they are
dropped. What is left is cut into *segments*, maximal runs of a row whose wave spans overlap: no
wave, and no pair, crosses a cut. The segments, in movie order (row, then time), are split into D
contiguous groups of about equal frame counts; group d is laid into r rows of L frames (segments
one after another, a new row when the next one does not fit; rows padded with unlabelled zero
frames), r and L the same on every device. Device d holds packed rows d*r .. d*r + r - 1: a
contiguous stretch of the movie. Labels are renumbered (one number per recording row and label)
so that segments laid side by side never share one; a label is still a wave only within its row.

What changes statistically, and why it is acceptable:
- Pairs: 'replicated' draws each device's n = batch_pairs / D pairs uniformly from all pairs of the
  movie (two devices may draw the same pair); 'sharded' draws n uniformly from each shard, so a
  global batch is a stratified sample: each 1/D stretch of the movie's wave frames gives 1/D of the
  pairs, and no pair is drawn twice in a step. A pair's chance is 1 / (pairs in its shard) instead
  of 1 / (pairs in the movie); the shards hold equal frame counts up to one segment, so this is
  close to uniform, and every pair is still drawn over a run. The loss's negatives still come from
  the whole global batch (rwjax.ssl.loss gathers every device's views). The in-buffer temporal
  controls (rwjax.ssl.pairs, 'temporal_global') swap frames within a shard rather than the whole
  movie: positives are still unrelated frames.
- Whole waves (rwjax.ssl.wave_batches): the training / validation split is drawn once over all the
  movie's waves, as before. Each device then passes over the training waves of its own shard in
  its own order (a fresh permutation per epoch and device; 'time' order: time order) and closes its
  part of a batch once it holds more than ceil(budget / D) frames, so a global batch holds about
  `budget` frames of whole waves drawn from every stretch of the movie (before: consecutive waves
  of one epoch order). An epoch has the steps of the device with most batches; a device with fewer
  fills its last steps with invalid slots (no anchors). 'temporal_global' swaps training-wave frames
  within a shard. On one device (the paper's single GPU) both draw as 'replicated' does.

Streaming. Pairs: chunks of c packed rows per device, chunk k of device d = its rows
(k*c + j) mod r, j < c, each chunk serving `data.stream_steps` steps (chunk k at steps
k*s .. k*s + s - 1). c is the most rows of which three chunks fit `data.device_bytes` (the one the
step reads, the next one arriving, the previous one until its last step has finished). Over a
cycle of r / c chunks every row is in the buffer equally often, so a frame's draw rate is that of
'sharded'; a step's pairs come from its chunk only. Whole waves: the host gathers each step's
views (the batches of the 'replicated' schedule exactly: the host can gather from anywhere) and
puts them on the devices one step ahead. Either way the device does not wait for the host as long
as the host prepares a chunk (a step's views) in less than `stream_steps` steps (one step).
"""

import itertools
import queue
import threading
from typing import Any, Callable, Iterator, NamedTuple

import jax
import numpy as np

from rwjax.errors import InputError
from rwjax.ssl import sources
from rwjax.ssl import wave_batches

PLACEMENTS = ('auto', 'replicated', 'sharded', 'stream')
_BUFFERS = 3  # chunks on a device at once when streaming (see the module docstring)


def check_config(placement: str, device_bytes, stream_steps) -> None:
  """The placement keys of config.data; InputError on a bad one."""
  if placement not in PLACEMENTS:
    raise InputError(f'config.data.placement={placement!r} is unknown; use one of {PLACEMENTS}')
  if (isinstance(device_bytes, bool) or not isinstance(device_bytes, (int, float))
      or not np.isfinite(device_bytes) or device_bytes < 1):
    raise InputError(f'config.data.device_bytes={device_bytes!r} must be a positive number of '
                     'bytes per device, e.g. 4e9 (the memory the movie may take on each device)')
  if isinstance(stream_steps, bool) or not isinstance(stream_steps, int) or stream_steps < 1:
    raise InputError(f'config.data.stream_steps={stream_steps!r} must be a positive integer (the '
                     'steps each streamed chunk serves)')


class Layout(NamedTuple):
  """The packed shards of a movie (see the module docstring); one entry per segment."""
  n_devices: int
  rows: int             # r packed rows per device
  length: int           # L frames per packed row
  src_row: np.ndarray   # i32[S] movie row of each segment
  src_t0: np.ndarray    # i32[S] its first frame
  src_t1: np.ndarray    # i32[S] one past its last frame
  dst_row: np.ndarray   # i32[S] packed row (device d: d * rows .. d * rows + rows - 1)
  dst_t: np.ndarray     # i32[S] its first frame in the packed row

  @property
  def shape(self) -> tuple[int, int]:
    return self.n_devices * self.rows, self.length


def segments(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(row, t0, t1) i32[S] of the movie's segments: maximal runs [t0, t1) of a row in which the
  spans [first, last frame] of its labels (>= 0) overlap; frames outside every span are left out."""
  out = []
  for b, row in enumerate(np.asarray(labels)):
    t = np.flatnonzero(row >= 0)
    if not t.size:
      continue
    lab = row[t]
    _, first = np.unique(lab, return_index=True)
    _, last = np.unique(lab[::-1], return_index=True)
    start, end = t[first], t[len(t) - 1 - last] + 1
    order = np.argsort(start, kind='stable')
    start, reach = start[order], np.maximum.accumulate(end[order])
    new = np.flatnonzero(np.r_[True, start[1:] >= reach[:-1]])
    out.append((np.full(new.size, b), start[new], reach[np.r_[new[1:] - 1, start.size - 1]]))
  if not out:
    return (np.zeros(0, np.int32),) * 3
  return tuple(np.concatenate(x).astype(np.int32) for x in zip(*out))


def pack_layout(labels: np.ndarray, n_devices: int) -> Layout:
  """The shards of a movie with labels i32[B, T] over n_devices (InputError: too few segments)."""
  b, t = np.asarray(labels).shape
  row, t0, t1 = segments(labels)
  if row.size < n_devices:
    raise InputError(f'the movie ({b} x {t} frames) has {row.size} separate stretch(es) of waves, '
                     f'fewer than the {n_devices} devices it would be sharded over; use '
                     "config.data.placement='replicated' (or 'auto')")
  n = t1 - t0
  ends = np.cumsum(n)
  device = np.minimum(((ends - n / 2) * n_devices // ends[-1]).astype(np.int64), n_devices - 1)
  if np.unique(device).size < n_devices:  # a segment holding most frames: split by count instead
    device = np.arange(row.size) * n_devices // row.size
  per_device = np.bincount(device, weights=n, minlength=n_devices)
  length = int(max(n.max(), min(t, per_device.max())))
  dst_row, dst_t = np.zeros_like(row), np.zeros_like(row)
  used, rows = np.zeros(n_devices, np.int64), np.zeros(n_devices, np.int64)
  for i in range(row.size):  # lay each device's segments one after another into rows of L
    d = device[i]
    if used[d] + n[i] > length:
      rows[d], used[d] = rows[d] + 1, 0
    dst_row[i], dst_t[i] = rows[d], used[d]
    used[d] += n[i]
  r = int(rows.max()) + 1
  return Layout(n_devices=n_devices, rows=r, length=length, src_row=row, src_t0=t0, src_t1=t1,
                dst_row=(device * r + dst_row).astype(np.int32), dst_t=dst_t)


def unique_labels(labels: np.ndarray) -> np.ndarray:
  """i32[B, T]: labels renumbered 0, 1, ... over (row, label), so that no two rows share one
  (-1 stays -1)."""
  labels = np.asarray(labels)
  keep = labels >= 0
  key = np.stack([np.nonzero(keep)[0], labels[keep]], axis=1)
  out = np.full(labels.shape, -1, np.int32)
  if key.size:
    out[keep] = np.unique(key, axis=0, return_inverse=True)[1].reshape(-1)
  return out


def pack_rows(x: np.ndarray, layout: Layout, rows, fill) -> np.ndarray:
  """x[B, T, ...] laid out as the packed rows `rows` of `layout`: [len(rows), L, ...]."""
  rows = np.asarray(rows, np.int64).reshape(-1)
  out = np.full((rows.size, layout.length) + x.shape[2:], fill, x.dtype)
  where = {int(p): i for i, p in enumerate(rows)}
  for s in np.flatnonzero(np.isin(layout.dst_row, rows)):
    i, t, n = where[int(layout.dst_row[s])], layout.dst_t[s], layout.src_t1[s] - layout.src_t0[s]
    out[i, t:t + n] = x[layout.src_row[s], layout.src_t0[s]:layout.src_t1[s]]
  return out


class Packed:
  """A lazy [D * r, L, ...] view of x[B, T, ...] in `layout`: indexing packs only the rows asked
  for, so each device's shard is made from the host movie without a second copy of it."""

  def __init__(self, x: np.ndarray, layout: Layout, fill):
    self.x, self.layout, self.fill = x, layout, fill
    self.shape = layout.shape + x.shape[2:]
    self.dtype = x.dtype

  @property
  def nbytes(self) -> int:
    return int(np.prod(self.shape)) * self.dtype.itemsize

  def __getitem__(self, index):
    index = index if isinstance(index, tuple) else (index,)
    first = index[0] if index and isinstance(index[0], slice) else slice(None)
    rest = index[1:] if index and isinstance(index[0], slice) else index
    rows = range(*first.indices(self.shape[0]))
    return pack_rows(self.x, self.layout, rows, self.fill)[(slice(None),) + tuple(rest)]

  def __array__(self, dtype=None, copy=None):
    out = self[:]
    return out if dtype is None else out.astype(dtype)


def bytes_per_frame(movie) -> int:
  """Device bytes of one frame and its label."""
  return int(np.prod(movie.shape[2:])) * 4 + 4


def choose(placement: str, movie, labels, n_devices: int, device_bytes) -> tuple[str, Any]:
  """(placement, layout or None): what 'auto' becomes for this movie (module docstring)."""
  if placement == 'replicated':
    return placement, None
  if placement == 'auto' and segments(labels)[0].size < n_devices:
    if movie.shape[0] * movie.shape[1] * bytes_per_frame(movie) <= device_bytes:
      return 'replicated', None  # too few waves to shard, small enough to copy
  layout = pack_layout(labels, n_devices)  # InputError: too few waves to shard
  if placement == 'auto':
    shard = layout.rows * layout.length * bytes_per_frame(movie)
    placement = 'sharded' if shard <= device_bytes else 'stream'
  return placement, layout


def sharded_source(movie: np.ndarray, labels: np.ndarray, layout: Layout) -> sources.Source:
  """The file source over packed shards: inputs f32[D * r, L, h, w] and i32[D * r, L], split on
  their leading axis over 'data' (each device receives only its shard)."""
  def init(key, movie, labels):
    del key
    return sources.FileState(movie, labels)

  movie = np.asarray(movie, np.float32)
  return sources.Source(
      init=init, advance=lambda s: (s, s.movie, s.labels), checkpoint_view=lambda s: {},
      restore_view=lambda fresh, saved: fresh, sharded=True,
      inputs=(Packed(movie, layout, 0.0), Packed(unique_labels(labels), layout, -1)))


def check_pairs(layout: Layout, rows: int, n_pairs: int, separation: int, where: str) -> None:
  """InputError unless `rows` packed rows per device hold n_pairs pair positions."""
  if separation >= layout.length:
    raise InputError(f'config.data.frame_separation={separation} is not shorter than the longest '
                     f'stretch of waves ({layout.length} frames): no frame has a partner')
  if n_pairs > rows * (layout.length - separation):
    raise InputError(f'{n_pairs} pairs per device do not fit {where} ({rows} rows of '
                     f'{layout.length} frames); lower config.train.batch_pairs or raise '
                     'config.data.device_bytes')


class ShardedSchedule(NamedTuple):
  """Whole-wave batches of a sharded movie (module docstring); the interface of
  wave_batches.Schedule that the training loop uses (capacity, steps, plans_from, validation)."""
  table: wave_batches.WaveTable  # of the packed labels: frame = packed row * L + t
  device: np.ndarray  # i32[W] the device holding each wave
  train: np.ndarray   # i32 training wave indices (over all devices)
  val: np.ndarray
  shown: np.ndarray   # i32[N] frame shown at each table position
  budget: int         # frames per device's part of a batch: ceil(global budget / D)
  local: int          # slots per device
  n_devices: int
  seed: int
  order: str

  @property
  def capacity(self) -> int:
    return self.local * self.n_devices

  def _order(self, waves: np.ndarray, epoch: int, d: int) -> np.ndarray:
    if self.order == 'time':
      return waves
    return np.random.default_rng([self.seed, epoch, d]).permutation(waves)

  def _batches(self, waves: np.ndarray, epoch: int | None) -> list[list[np.ndarray]]:
    """Per device, the wave indices of each of its batches."""
    out = []
    for d in range(self.n_devices):
      mine = waves[self.device[waves] == d]
      mine = mine if epoch is None else self._order(mine, epoch, d)
      out.append(wave_batches.plan_batches(self.table.length, mine, self.budget))
    return out

  def _plans(self, per_device: list[list[np.ndarray]]) -> list[wave_batches.WavePlan]:
    n = max(len(b) for b in per_device)
    plans = []
    for i in range(n):
      parts = []
      for d, batches in enumerate(per_device):
        if i < len(batches):
          parts.append(wave_batches.batch_plan(self.table, self.shown, batches[i], self.local))
        else:  # this device has no batch left: its slots repeat a batch of its own, invalid
          parts.append(self._idle(d, batches))
      plans.append(wave_batches.WavePlan(*(np.concatenate(x) for x in zip(*parts))))
    return plans

  def _idle(self, d: int, batches: list[np.ndarray]) -> wave_batches.WavePlan:
    waves = np.flatnonzero(self.device == d)
    first = batches[0] if batches else waves[:1]
    p = wave_batches.batch_plan(self.table, self.shown, first, self.local)
    return p._replace(valid=np.zeros_like(p.valid))

  def epoch(self, e: int) -> list[wave_batches.WavePlan]:
    return self._plans(self._batches(self.train, e))

  def validation(self) -> list[wave_batches.WavePlan]:
    return self._plans(self._batches(self.val, None)) if len(self.val) else []

  def steps(self, epochs: int) -> int:
    return sum(max(len(b) for b in self._batches(self.train, e)) for e in range(epochs))

  def plans_from(self, step: int):
    return wave_batches.Schedule.plans_from(self, step)  # only uses self.epoch


def sharded_schedule(packed_labels: np.ndarray, layout: Layout, *, budget: int,
                     val_fraction: float, seed: int, order: str, temporal: str | None,
                     n_devices: int) -> ShardedSchedule:
  """The whole-wave schedule of packed labels i32[D * r, L] (InputError on bad input, as
  wave_batches.make_schedule)."""
  if order not in wave_batches.ORDERS:
    raise InputError(f'config.data.wave_order={order!r} is unknown; use one of '
                     f'{wave_batches.ORDERS}')
  table = wave_batches.wave_table(packed_labels)
  wave_batches.check_budget(table.length, budget)
  train, val = wave_batches.split_waves(len(table.start), val_fraction, seed)
  device = (table.frame[table.start] // (layout.rows * layout.length)).astype(np.int32)
  groups = [w[device[w] == d] for d in range(n_devices) for w in (train, val)]
  shown = wave_batches.shown_frames(table, groups, temporal, seed)
  local_budget = -(-budget // n_devices)
  return ShardedSchedule(table=table, device=device, train=train, val=val, shown=shown,
                         budget=local_budget, local=local_budget + int(table.length.max()),
                         n_devices=n_devices, seed=seed, order=order)


def prefetch(items: Iterator, depth: int = 1) -> Iterator:
  """`items` made in a background thread, up to `depth` ahead of the consumer. The thread stops
  when the returned generator is closed or collected."""
  q, stop = queue.Queue(maxsize=depth), threading.Event()

  def work():
    try:
      for item in items:
        while not stop.is_set():
          try:
            q.put((True, item), timeout=0.1)
            break
          except queue.Full:
            pass
        if stop.is_set():
          return
    except BaseException as e:  # handed to the consumer
      q.put((False, e))

  thread = threading.Thread(target=work, daemon=True, name='rwjax-prefetch')
  thread.start()

  def consume():
    try:
      while True:
        ok, item = q.get()
        if not ok:
          raise item
        yield item
    finally:
      stop.set()

  return consume()


class StreamPlan(NamedTuple):
  """A WavePlan with the step's views, gathered on the host ('stream')."""
  frame: Any
  wave_id: Any
  frame_idx: Any
  valid: Any
  views: Any  # f32[capacity, h, w]


def _put(x, mesh):
  """x[D * k, ...] (host) split over 'data' by its leading axis."""
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
  return jax.make_array_from_callback(x.shape, sharding, lambda i: np.asarray(x[i]))


def one_ahead(host_items: Iterator, put: Callable) -> Iterator:
  """put(item) of each of `host_items` (made by a background thread): when item i is taken, item
  i + 1 is already being put on the devices, so a device holds item i (in use), i + 1 (arriving)
  and i - 1 until the steps that read it have finished."""
  items = prefetch(host_items)
  try:
    ahead = put(next(items))
    for item in items:
      current, ahead = ahead, put(item)
      yield current
    yield ahead
  finally:
    items.close()


class StreamSchedule:
  """wave_batches.Schedule with each plan's views gathered on the host (a background thread) and
  put on the devices one step ahead."""

  def __init__(self, inner: wave_batches.Schedule, frames: np.ndarray, mesh):
    self.inner, self.frames, self.mesh = inner, frames, mesh  # frames: f32[B * T, h, w]
    self.capacity = inner.capacity
    self.view_shape = frames.shape[1:]

  def steps(self, epochs: int) -> int:
    return self.inner.steps(epochs)

  def _with_views(self, plan) -> StreamPlan:
    return StreamPlan(*plan, views=self.frames[plan.frame])

  def validation(self) -> list[StreamPlan]:
    return [self._with_views(p) for p in self.inner.validation()]

  def plans_from(self, step: int):
    host = ((e, end, self._with_views(p)) for e, end, p in self.inner.plans_from(step))
    put = lambda t: (t[0], t[1], StreamPlan(*(_put(x, self.mesh) for x in t[2])))
    return one_ahead(host, put)


def _chunk_rows(layout: Layout, c: int, k: int) -> np.ndarray:
  """i64[D * c]: the packed rows of streamed chunk k, device by device (module docstring)."""
  d = np.arange(layout.n_devices)[:, None]
  return (d * layout.rows + (k * c + np.arange(c)[None]) % layout.rows).reshape(-1)


def _host_chunk(movie, labels, layout: Layout, c: int, k: int):
  rows = _chunk_rows(layout, c, k)
  return pack_rows(movie, layout, rows, 0.0), pack_rows(labels, layout, rows, -1)


class StreamFeed:
  """Pairs from the host: `feed(state, step)` puts the chunk of `step` into the state's source
  (chunk k = step // stream_steps; module docstring); chunks are packed by a background thread
  and put on the devices one chunk ahead."""

  def __init__(self, movie: Packed, labels: Packed, chunk_rows: int, stream_steps: int, mesh):
    self.movie, self.labels, self.c, self.steps, self.mesh = (movie, labels, chunk_rows,
                                                              stream_steps, mesh)
    self.current, self.chunks = None, None

  def rows(self, k: int) -> np.ndarray:
    """i64[D * c]: the packed rows of chunk k, device by device."""
    return _chunk_rows(self.movie.layout, self.c, k)

  def host(self, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames f32[D * c, L, h, w], labels i32[D * c, L]) of chunk k, on the host."""
    return _host_chunk(self.movie.x, self.labels.x, self.movie.layout, self.c, k)

  def __call__(self, state, step: int):
    k = step // self.steps
    if k == self.current:
      return state
    if self.current is None or k != self.current + 1:  # first call, or a jump: start at k
      if self.chunks is not None:
        self.chunks.close()
      # Neither refers to self: the thread must not keep the feed alive (its chunks are freed
      # and the thread stops once the feed is).
      movie, labels, layout, c, mesh = self.movie.x, self.labels.x, self.movie.layout, self.c, \
          self.mesh
      put = lambda t: (t[0], sources.FileState(*(_put(x, mesh) for x in t[1])))
      self.chunks = one_ahead(((j, _host_chunk(movie, labels, layout, c, j))
                               for j in itertools.count(k)), put)
    got, chunk = next(self.chunks)
    assert got == k, (got, k)
    self.current = k
    return state.replace(source=chunk)


def stream_source(movie: np.ndarray, labels: np.ndarray, layout: Layout, device_bytes,
                  stream_steps: int, mesh) -> sources.Source:
  """The file source fed from the host in chunks (module docstring); InputError when
  device_bytes cannot hold three chunks of one packed row."""
  row = layout.length * bytes_per_frame(movie)
  c = min(layout.rows, int(device_bytes // (_BUFFERS * row)))
  if c < 1:
    raise InputError(f'config.data.device_bytes={device_bytes:g} cannot hold {_BUFFERS} streamed '
                     f'chunks of one row of {layout.length} frames ({row} bytes each); raise it '
                     f'to at least {_BUFFERS * row}')
  feed = StreamFeed(Packed(np.asarray(movie, np.float32), layout, 0.0),
                    Packed(unique_labels(labels), layout, -1), c, stream_steps, mesh)

  def init(key, movie, labels):
    del key
    return sources.FileState(movie, labels)

  return sources.Source(
      init=init, advance=lambda s: (s, s.movie, s.labels), checkpoint_view=lambda s: {},
      restore_view=lambda fresh, saved: fresh, sharded=True, feed=feed, inputs=feed.host(0))


def stream_schedule(movie: np.ndarray, labels: np.ndarray, device_bytes, mesh,
                    **schedule_args) -> tuple[sources.Source, StreamSchedule]:
  """(a placeholder file source, the streamed whole-wave schedule); InputError when
  device_bytes cannot hold three steps' views."""
  inner = wave_batches.make_schedule(np.asarray(labels), **schedule_args)
  n = schedule_args['n_devices']
  need = _BUFFERS * inner.capacity // n * bytes_per_frame(movie)
  if need > device_bytes:
    raise InputError(f'config.data.device_bytes={device_bytes:g} cannot hold {_BUFFERS} streamed '
                     f'batches of {inner.capacity // n} views per device; raise it to at least '
                     f'{need}')
  frames = np.asarray(movie, np.float32)
  frames = frames.reshape((-1,) + frames.shape[2:])
  empty = sources.make_file_source(np.zeros((n, 1) + frames.shape[1:], np.float32),
                                   np.full((n, 1), -1, np.int32))
  return empty._replace(sharded=True), StreamSchedule(inner, frames, mesh)
