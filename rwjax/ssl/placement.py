"""Where a file source's movie lives during training (`config.data.placement`, one of PLACEMENTS).

'replicated': every device holds a copy of the movie f32[B, T, h, w] and its labels i32[B, T].
'sharded': the movie's wave frames are packed into D contiguous shards (`pack_layout`, about 1/D of
the bytes each) kept in device memory; each device draws its pairs, or its part of a whole-wave
batch (`sharded_schedule`), from its own shard in-jit. 'stream': the shards stay on the host and a
background thread puts the next chunk of packed rows (`stream_source`, pairs) or the next step's
views (`stream_schedule`, whole waves) on the devices while the step runs. 'auto' (`choose`):
'sharded' when a shard fits `data.device_bytes`, 'stream' otherwise, 'replicated' for a movie with
fewer separate stretches of waves than devices. Bad input raises InputError. How the shards are
packed, what sharding changes in the batches and how chunks are streamed: docs/training.md,
'Where a movie lives during training'.
"""

import collections
from concurrent import futures
import functools
import itertools
from typing import Any, Callable, Iterator, NamedTuple

import jax
import numpy as np

from rwjax.errors import InputError
from rwjax.ssl import sources
from rwjax.ssl import wave_batches

PLACEMENTS = ('auto', 'replicated', 'sharded', 'stream')
# Chunks on a device at once when streaming: the one the step reads, the next one arriving and
# the previous one until its last step has finished.
_BUFFERS = 3


class Layout(NamedTuple):
  """The packed shards of a movie (`pack_layout`); one entry per segment."""
  n_devices: int
  rows: int             # r packed rows per device
  length: int           # L frames per packed row
  src_row: np.ndarray   # i32[S] movie row of each segment
  src_t0: np.ndarray    # i32[S] its first frame
  src_t1: np.ndarray    # i32[S] one past its last frame
  dst_row: np.ndarray   # i32[S] packed row (device d: d * rows .. d * rows + rows - 1)
  dst_t: np.ndarray     # i32[S] its first frame in the packed row


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
  """The shards of a movie with labels i32[B, T] over n_devices (InputError: too few segments).

  The segments, in movie order, are split into n_devices contiguous groups of about equal frame
  counts; each group is laid into `rows` packed rows of `length` frames (the same r and L on
  every device; rows padded with unlabelled frames), so device d holds a contiguous stretch.
  """
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
    self.shape = (layout.n_devices * layout.rows, layout.length) + x.shape[2:]
    self.dtype = x.dtype

  @property
  def nbytes(self) -> int:
    return int(np.prod(self.shape)) * self.dtype.itemsize

  def __getitem__(self, index):
    index = index if isinstance(index, tuple) else (index,)  # a slice of rows first
    rows = range(*index[0].indices(self.shape[0]))
    return pack_rows(self.x, self.layout, rows, self.fill)[(slice(None),) + index[1:]]

  def __array__(self, dtype=None, copy=None):
    out = self[:]
    return out if dtype is None else out.astype(dtype)


def bytes_per_frame(movie) -> int:
  """Device bytes of one frame and its label."""
  return int(np.prod(movie.shape[2:])) * 4 + 4


def choose(placement: str, movie, labels, n_devices: int, device_bytes) -> tuple[str, Any]:
  """(placement, layout or None): what 'auto' becomes for this movie."""
  movie_bytes = movie.shape[0] * movie.shape[1] * bytes_per_frame(movie)
  if placement == 'replicated' or (placement == 'auto' and movie_bytes <= device_bytes
                                   and segments(labels)[0].size < n_devices):
    return 'replicated', None  # 'auto': too few waves to shard, small enough to copy
  layout = pack_layout(labels, n_devices)  # InputError: too few waves to shard
  if placement == 'auto':
    shard = layout.rows * layout.length * bytes_per_frame(movie)
    placement = 'sharded' if shard <= device_bytes else 'stream'
  return placement, layout


def sharded_source(movie: np.ndarray, labels: np.ndarray, layout: Layout) -> sources.Source:
  """The file source over packed shards: inputs f32[D * r, L, h, w] and i32[D * r, L], split on
  their leading axis over 'data' (each device receives only its shard)."""
  return sources.make_file_source(Packed(np.asarray(movie, np.float32), layout, 0.0),
                                  Packed(unique_labels(labels), layout, -1), sharded=True)


def check_pairs(layout: Layout, rows: int, n_pairs: int, separation: int, where: str) -> None:
  """InputError unless `rows` packed rows per device hold n_pairs pair positions."""
  if separation >= layout.length:
    raise InputError(f'config.data.frame_separation={separation} is not shorter than the longest '
                     f'stretch of waves ({layout.length} frames): no frame has a partner')
  if n_pairs > rows * (layout.length - separation):
    raise InputError(f'{n_pairs} pairs per device do not fit {where} ({rows} rows of '
                     f'{layout.length} frames); lower config.train.batch_pairs or raise '
                     'config.data.device_bytes')


def sharded_schedule(packed_labels: np.ndarray, layout: Layout, *, budget: int,
                     val_fraction: float, seed: int, order: str, temporal: str | None,
                     n_devices: int) -> wave_batches.Schedule:
  """The whole-wave schedule of packed labels i32[D * r, L] (InputError on bad input, as
  wave_batches.make_schedule): the training / validation split is drawn over all the waves, then
  each device batches the waves of its own shard, its part of a batch closed past
  ceil(budget / D) frames."""
  table, train, val = wave_batches.split_table(packed_labels, budget, val_fraction, seed, order)
  device = (table.frame[table.start] // (layout.rows * layout.length)).astype(np.int32)
  groups = [w[device[w] == d] for d in range(n_devices) for w in (train, val)]
  local = -(-budget // n_devices)
  return wave_batches.Schedule(
      table=table, train=train, val=val, budget=local, seed=seed, order=order,
      shown=wave_batches.shown_frames(table, groups, temporal, seed),
      capacity=(local + int(table.length.max())) * n_devices, device=device, devices=n_devices)


# A WavePlan with the step's views f32[capacity, h, w], gathered on the host ('stream').
StreamPlan = collections.namedtuple('StreamPlan', wave_batches.WavePlan._fields + ('views',))


def _put(x, mesh):
  """x[D * k, ...] (host) split over 'data' by its leading axis."""
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
  return jax.make_array_from_callback(x.shape, sharding, lambda i: np.asarray(x[i]))


def one_ahead(host_items: Iterator, put: Callable) -> Iterator:
  """put(item) of each of the endless `host_items`, which a background thread makes ahead of the
  consumer: when item i is taken, item i + 1 is already being put on the devices (and item i + 2
  made), so a device holds item i (in use), i + 1 (arriving) and i - 1 until the steps that read
  it have finished. The thread stops when the returned generator is closed or collected."""
  pool = futures.ThreadPoolExecutor(1, thread_name_prefix='rwjax-prefetch')
  try:
    ahead = put(pool.submit(next, host_items).result())
    made = pool.submit(next, host_items)
    while True:
      current, ahead = ahead, put(made.result())
      made = pool.submit(next, host_items)
      yield current
  finally:
    pool.shutdown(wait=False, cancel_futures=True)


class StreamSchedule:
  """wave_batches.Schedule with each plan's views gathered on the host (a background thread) and
  put on the devices one step ahead."""

  def __init__(self, inner: wave_batches.Schedule, frames: np.ndarray, mesh):
    self.inner, self.frames, self.mesh = inner, frames, mesh  # frames: f32[B * T, h, w]
    self.capacity, self.steps = inner.capacity, inner.steps
    self.view_shape = frames.shape[1:]

  def _with_views(self, plan) -> StreamPlan:
    return StreamPlan(*plan, views=self.frames[plan.frame])

  def validation(self) -> list[StreamPlan]:
    return [self._with_views(p) for p in self.inner.validation()]

  def plans_from(self, step: int):
    host = ((e, end, self._with_views(p)) for e, end, p in self.inner.plans_from(step))
    put = lambda t: (t[0], t[1], StreamPlan(*(_put(x, self.mesh) for x in t[2])))
    return one_ahead(host, put)


def _host_chunk(movie, labels, layout: Layout, c: int, k: int):
  """(frames f32[D * c, L, h, w], labels i32[D * c, L]) of streamed chunk k on the host: the
  packed rows (k * c + j) mod r, j < c, of each device in turn: over r / c chunks every row is
  in the buffer equally often."""
  d = np.arange(layout.n_devices)[:, None]
  rows = (d * layout.rows + (k * c + np.arange(c)[None]) % layout.rows).reshape(-1)
  return pack_rows(movie, layout, rows, 0.0), pack_rows(labels, layout, rows, -1)


class StreamFeed:
  """Pairs from the host: `feed(state, step)` puts the chunk of `step` into the state's source
  (chunk k = step // stream_steps); chunks are packed by a background thread
  and put on the devices one chunk ahead. movie f32[B, T, h, w], labels i32[B, T] (unique)."""

  def __init__(self, movie, labels, layout: Layout, chunk_rows: int, stream_steps: int, mesh):
    self.host = functools.partial(_host_chunk, movie, labels, layout, chunk_rows)  # k -> chunk
    self.c, self.steps, self.mesh = chunk_rows, stream_steps, mesh
    self.current, self.chunks = None, None

  def __call__(self, state, step: int):
    k = step // self.steps
    if k == self.current:
      return state
    if self.current is None or k != self.current + 1:  # first call, or a jump: start at k
      if self.chunks is not None:
        self.chunks.close()
      # Neither refers to self: the thread must not keep the feed alive (its chunks are freed
      # and the thread stops once the feed is).
      host, mesh = self.host, self.mesh
      put = lambda t: (t[0], sources.FileState(*(_put(x, mesh) for x in t[1])))
      self.chunks = one_ahead(((j, host(j)) for j in itertools.count(k)), put)
    got, chunk = next(self.chunks)
    assert got == k, (got, k)
    self.current = k
    return state.replace(source=chunk)


def stream_source(movie: np.ndarray, labels: np.ndarray, layout: Layout, device_bytes,
                  stream_steps: int, mesh) -> sources.Source:
  """The file source fed from the host in chunks of c packed rows per device, c the most of
  which three chunks fit device_bytes; InputError when not even one row fits."""
  row = layout.length * bytes_per_frame(movie)
  c = min(layout.rows, int(device_bytes // (_BUFFERS * row)))
  if c < 1:
    raise InputError(f'config.data.device_bytes={device_bytes:g} cannot hold {_BUFFERS} streamed '
                     f'chunks of one row of {layout.length} frames ({row} bytes each); raise it '
                     f'to at least {_BUFFERS * row}')
  feed = StreamFeed(np.asarray(movie, np.float32), unique_labels(labels), layout, c,
                    stream_steps, mesh)
  return sources.make_file_source(*feed.host(0), sharded=True, feed=feed)


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
  frames = np.asarray(movie, np.float32).reshape((-1,) + movie.shape[2:])
  empty = sources.make_file_source(np.zeros((n, 1) + frames.shape[1:], np.float32),
                                   np.full((n, 1), -1, np.int32), sharded=True)
  return empty, StreamSchedule(inner, frames, mesh)
