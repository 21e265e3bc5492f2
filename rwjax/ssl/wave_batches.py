"""The paper's whole-wave batches for a movie with per-frame wave labels (`data.batching='waves'`).

A batch is every frame of a run of whole waves, added one wave at a time until it holds more than
`budget` frames (`data.wave_batch_frames`). Every valid frame is an anchor; its positives are the
frames `separation` positions before and after it in its wave, its negatives the frames of the
other waves in the batch (rwjax.ssl.loss). The waves are laid end to end in a *table* (wave 0's
frames in time order, then wave 1's, ...; a wave is a label value >= 0 within one movie row, its
frames not necessarily consecutive), and a view's `frame_idx` is its table position. The waves are
split once, by `seed`, into training and validation waves; an epoch passes over the training waves
in a fresh random order (`order='shuffled'`) or in time order ('time'). Batches have one size,
`capacity` (budget + the longest wave, a multiple of the device count), so that one compiled step
serves all; unused slots are invalid views repeating the batch's own frames (BatchNorm's batch
statistics stay those of wave frames). The temporal controls (rwjax.ssl.pairs) are applied to the
table once per run (`shown_frames`). Host-side NumPy: a step's plan is a few int32[capacity] arrays
(`WavePlan`); bad input raises InputError. Where this differs from the paper's batching:
docs/training.md, 'The paper's training protocol'.
"""

from typing import Iterator, NamedTuple

import numpy as np

from rwjax.errors import InputError

BATCHINGS = ('pairs', 'waves')
ORDERS = ('shuffled', 'time')


class WaveTable(NamedTuple):
  """The waves of a movie labels i32[B, T], laid end to end (N wave frames, W waves)."""
  frame: np.ndarray   # i32[N] movie frame b * T + t at each table position
  wave: np.ndarray    # i32[N] wave index 0..W-1 of each position
  start: np.ndarray   # i32[W] first table position of each wave
  length: np.ndarray  # i32[W] frames of each wave


class WavePlan(NamedTuple):
  """One batch: per slot, the movie frame shown and the view's identity (all [capacity])."""
  frame: np.ndarray      # i32 movie frame b * T + t to show
  wave_id: np.ndarray    # i32 wave index (unique in the batch)
  frame_idx: np.ndarray  # i32 table position
  valid: np.ndarray      # bool


def wave_table(labels: np.ndarray) -> WaveTable:
  """The table of labels i32[B, T]; InputError if no frame belongs to a wave."""
  labels = np.asarray(labels)
  b, t = labels.shape
  rows, times = np.nonzero(labels >= 0)
  if rows.size == 0:
    raise InputError(f'the movie ({b} x {t} frames) has no wave: every frame label is < 0. '
                     'Check the labels file, or lower config.data.threshold for the wave finder')
  order = np.lexsort((times, labels[rows, times], rows))  # by row, then label, then time
  rows, times = rows[order], times[order]
  key = np.stack([rows, labels[rows, times]], axis=1)
  new = np.r_[True, np.any(key[1:] != key[:-1], axis=1)]
  wave = np.cumsum(new) - 1
  start = np.flatnonzero(new)
  length = np.diff(np.r_[start, rows.size])
  return WaveTable(frame=(rows * t + times).astype(np.int32), wave=wave.astype(np.int32),
                   start=start.astype(np.int32), length=length.astype(np.int32))


def split_waves(n_waves: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(training, validation) wave indices, each sorted: floor(n * val_fraction) at random held out.

  InputError when fewer than 2 training waves remain (a wave needs another to contrast with).
  """
  if not 0 <= val_fraction < 1:
    raise InputError(f'config.data.val_fraction={val_fraction!r} must be in [0, 1) (the paper '
                     'holds out 0.2 of simulated waves, 0.1 of recorded)')
  n_val = int(n_waves * val_fraction)
  if n_waves - n_val < 2:
    raise InputError(f'the validation split leaves {n_waves - n_val} training wave(s) of the '
                     f'movie\'s {n_waves} (config.data.val_fraction={val_fraction}); whole-wave '
                     'batches need at least 2: lower val_fraction or use a longer movie')
  perm = np.random.default_rng(seed).permutation(n_waves)
  return np.sort(perm[n_val:]).astype(np.int32), np.sort(perm[:n_val]).astype(np.int32)


def split_table(labels: np.ndarray, budget: int, val_fraction: float, seed: int,
                order: str) -> tuple[WaveTable, np.ndarray, np.ndarray]:
  """(table, training waves, validation waves) of labels i32[B, T]; InputError on bad input,
  e.g. a wave longer than the batch budget (it could never share a batch)."""
  if order not in ORDERS:
    raise InputError(f'config.data.wave_order={order!r} is unknown; use one of {ORDERS}')
  table = wave_table(labels)
  longest = int(np.max(table.length))
  if longest > budget:
    raise InputError(f'a wave of {longest} frames is longer than the batch budget '
                     f'config.data.wave_batch_frames={budget}; raise the budget above {longest} '
                     '(the paper uses 3000)')
  return (table, *split_waves(len(table.start), val_fraction, seed))


def capacity(length: np.ndarray, budget: int, n_devices: int) -> int:
  """Slots per batch: a batch closes as soon as it holds more than `budget` frames, so it holds
  at most budget + the longest wave; rounded up to a multiple of n_devices."""
  c = budget + int(np.max(length))
  return -(-c // n_devices) * n_devices


def plan_batches(length: np.ndarray, waves: np.ndarray, budget: int) -> list[np.ndarray]:
  """Wave indices of each batch: `waves` in the given order, a batch closed once it holds more
  than `budget` frames; the last batch holds what is left."""
  batches, current, size = [], [], 0
  for w in waves:
    current.append(w)
    size += int(length[w])
    if size > budget:
      batches.append(np.asarray(current, np.int32))
      current, size = [], 0
  if current:
    batches.append(np.asarray(current, np.int32))
  return batches


def epoch_order(waves: np.ndarray, epoch: int, seed: int, order: str, *stream: int) -> np.ndarray:
  """The training waves in epoch `epoch`'s order (a fresh permutation per epoch for 'shuffled';
  `stream`: further seed words, e.g. a device's index)."""
  if order == 'time':
    return waves
  return np.random.default_rng([seed, epoch, *stream]).permutation(waves)


def shown_frames(table: WaveTable, groups: list[np.ndarray], temporal: str | None,
                 seed: int) -> np.ndarray:
  """i32[N]: the movie frame shown at each table position under a temporal control.

  `groups` are sets of wave indices permuted separately (training and validation waves).
  """
  shown = table.frame.copy()
  if temporal == 'global':
    sets = [ws for ws in groups if len(ws)]
  elif temporal == 'within_wave':
    sets = [[w] for w in range(len(table.start))]
  elif temporal is None:
    sets = []
  else:
    raise ValueError(f'unknown temporal control {temporal!r}')
  rng = np.random.default_rng([seed, 7])
  for ws in sets:
    p = _positions(table, ws)
    shown[p] = table.frame[rng.permutation(p)]
  return shown


def _positions(table: WaveTable, waves) -> np.ndarray:
  """The table positions of `waves`, wave by wave."""
  return np.concatenate([np.arange(table.start[w], table.start[w] + table.length[w])
                         for w in waves])


def batch_plan(table: WaveTable, shown: np.ndarray, waves: np.ndarray, cap: int) -> WavePlan:
  """The slots of one batch made of `waves` (at most `cap` frames in all)."""
  positions = _positions(table, waves)
  n = positions.size
  if n > cap:
    raise ValueError(f'batch of {n} frames exceeds the capacity {cap}')
  slots = positions[np.arange(cap) % n]  # padding repeats the batch's frames, marked invalid
  return WavePlan(frame=shown[slots].astype(np.int32), wave_id=table.wave[slots],
                  frame_idx=slots.astype(np.int32), valid=np.arange(cap) < n)


class Schedule(NamedTuple):
  """Everything the training loop needs to feed whole-wave batches from a movie (sharded over
  the devices: each device batches the waves of its shard, rwjax.ssl.placement)."""
  table: WaveTable
  train: np.ndarray      # i32 training wave indices
  val: np.ndarray        # i32 validation wave indices
  shown: np.ndarray      # i32[N] frame shown at each table position (temporal controls)
  budget: int            # frames per batch (sharded: per device's part of it)
  capacity: int
  seed: int
  order: str
  device: np.ndarray | None = None  # sharded: i32[W] the device holding each wave
  devices: int = 1                  # sharded: the device count

  def _batches(self, waves: np.ndarray, epoch: int | None) -> list[list[np.ndarray]]:
    """Per device (one: the whole movie), the waves of each of its batches (epoch None: time
    order)."""
    out = []
    for d in range(self.devices):
      mine, stream = (waves, ()) if self.device is None else (waves[self.device[waves] == d], (d,))
      if epoch is not None:
        mine = epoch_order(mine, epoch, self.seed, self.order, *stream)
      out.append(plan_batches(self.table.length, mine, self.budget))
    return out

  def _plans(self, per_device: list[list[np.ndarray]]) -> list[WavePlan]:
    plans = []
    for i in range(max(len(b) for b in per_device)):
      parts = []
      for d, batches in enumerate(per_device):
        idle = i >= len(batches)  # no batch left: its slots repeat a batch of its own, invalid
        waves = (batches or [np.flatnonzero(self.device == d)[:1]])[0 if idle else i]
        p = batch_plan(self.table, self.shown, waves, self.capacity // self.devices)
        parts.append(p._replace(valid=p.valid & (not idle)))
      plans.append(WavePlan(*(np.concatenate(x) for x in zip(*parts))))
    return plans

  def epoch(self, e: int) -> list[WavePlan]:
    """The batches of training epoch e (0-based)."""
    return self._plans(self._batches(self.train, e))

  def validation(self) -> list[WavePlan]:
    """The validation batches (waves in time order; the same every epoch)."""
    return self._plans(self._batches(self.val, None))

  def steps(self, epochs: int) -> int:
    """Training steps (batches) in the first `epochs` epochs."""
    return sum(max(len(b) for b in self._batches(self.train, e)) for e in range(epochs))

  def plans_from(self, step: int) -> Iterator[tuple[int, bool, WavePlan]]:
    """(epoch, whether it is the epoch's last batch, plan) of every step from `step` on."""
    e, done = 0, 0
    while True:
      plans = self.epoch(e)
      for i, p in enumerate(plans):
        if done >= step:
          yield e, i == len(plans) - 1, p
        done += 1
      e += 1


def make_schedule(labels: np.ndarray, *, budget: int, val_fraction: float, seed: int,
                  order: str, temporal: str | None, n_devices: int) -> Schedule:
  """The whole-wave schedule of a movie's labels i32[B, T] (InputError on bad input)."""
  table, train, val = split_table(labels, budget, val_fraction, seed, order)
  shown = shown_frames(table, [train, val], temporal, seed)
  return Schedule(table=table, train=train, val=val, shown=shown, budget=budget,
                  capacity=capacity(table.length, budget, n_devices), seed=seed, order=order)
