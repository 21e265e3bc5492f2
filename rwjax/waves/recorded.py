"""Recorded retinal waves: multi-electrode-array spike trains -> activity movies.

Reads the HDF5 spike files of Maccione et al. (2014) (mouse P2-P13, a 64x64 APS array with a
42 um pitch). Their datasets:

  epos     f64[2, C]  electrode (row, column) positions in um, on the 42 um grid (0- or 1-based)
  sCount   i32[C]     spikes of each channel
  spikes   f64[S]     spike times (s), channel after channel (S = sum(sCount))
  summary/duration    recording length (s);   meta/age   postnatal day;   array   e.g. 'APS_64x64_42um'

A movie frame is the spike density around each electrode: spikes per electrode and frame,
box-averaged over `smooth` frames x electrodes x electrodes (3 x 3 x 3 by default: 0.3 s and
three pitches), because the array records only some electrodes of a wave in any 0.1 s bin. A
pixel belongs to a wave where the density exceeds THRESHOLD (0.15: more than 4 spikes among
the 27 electrode-frames around it); `rwjax.waves.stats` then finds and measures the waves as
for simulated movies, with pixel_mm = the pitch.
"""

import dataclasses
import os

import numpy as np
from scipy import ndimage

from rwjax.errors import InputError

GRID = 64
PITCH_MM = 0.042
FRAME_DT = 0.1  # s
THRESHOLD = 0.15
DEFAULT_SMOOTH = 3


@dataclasses.dataclass(frozen=True)
class Recording:
  """Spike trains of one recording."""
  times: np.ndarray     # f64[S] spike times (s), channel after channel
  channel: np.ndarray   # i32[S] channel of each spike
  row: np.ndarray       # i32[C] electrode row on the grid
  col: np.ndarray       # i32[C] electrode column on the grid
  duration_s: float
  age_days: int | None
  source: str


def _read(path: str) -> dict:
  import h5py  # pylint: disable=g-import-not-at-top  (only recorded data needs it)
  if not os.path.isfile(path):
    raise InputError(f'{path} does not exist; pass an MEA spike file (.h5)')
  try:
    with h5py.File(path, 'r') as f:
      missing = [k for k in ('epos', 'sCount', 'spikes') if k not in f]
      if missing:
        raise InputError(f'{path} has no {missing} dataset(s): not an MEA spike file '
                         '(datasets epos, sCount, spikes; see rwjax/waves/recorded.py)')
      out = {k: f[k][()] for k in ('epos', 'sCount', 'spikes')}
      out['duration'] = float(np.ravel(f['summary/duration'][()])[0]) \
          if 'summary/duration' in f else None
      out['age'] = int(np.ravel(f['meta/age'][()])[0]) if 'meta/age' in f else None
      return out
  except OSError as e:
    raise InputError(f'{path} is not a readable HDF5 file ({e}); pass an MEA spike '
                     'file (.h5)') from None


def load_mea(path: str) -> Recording:
  """Reads an MEA spike file (see the module docstring); InputError if malformed."""
  d = _read(path)
  try:
    epos = np.asarray(d['epos'], np.float64)
    counts = np.asarray(d['sCount']).astype(np.int64).ravel()
    times = np.asarray(d['spikes'], np.float64).ravel()
  except (TypeError, ValueError):
    raise InputError(f'{path}: epos, sCount and spikes must be numeric arrays') from None
  if counts.size == 0:
    raise InputError(f'{path} has no channels (sCount is empty)')
  if epos.ndim != 2 or epos.shape != (2, counts.size):
    raise InputError(f'{path}: epos has shape {epos.shape}, expected (2, {counts.size}) '
                     '(one row and column per channel of sCount)')
  if counts.sum() != times.size or (counts < 0).any():
    raise InputError(f'{path}: sCount sums to {counts.sum()} but there are {times.size} '
                     'spikes; the file is inconsistent')
  pitches = epos / (PITCH_MM * 1000)
  off_um = np.abs(pitches - np.round(pitches)).max() * PITCH_MM * 1000
  grid = np.round(pitches).astype(np.int64)
  if grid.min() >= 1 and grid.max() == GRID:  # 1-based positions
    grid -= 1
  if grid.min() < 0 or grid.max() >= GRID or off_um > 1.0:
    raise InputError(f'{path}: electrode positions are not on the {GRID}x{GRID} grid of '
                     f'{PITCH_MM * 1000:g} um pitch')
  if not np.isfinite(times).all() or (times < 0).any():
    raise InputError(f'{path}: spike times must be finite and >= 0')
  duration = d['duration'] if d['duration'] else float(times.max(initial=0.0))
  return Recording(times=times, channel=np.repeat(np.arange(counts.size), counts).astype(np.int32),
                   row=grid[0].astype(np.int32), col=grid[1].astype(np.int32),
                   duration_s=duration, age_days=d['age'], source=os.path.abspath(path))


def spike_counts(rec: Recording, frame_dt: float = FRAME_DT) -> np.ndarray:
  """f32[T, 64, 64]: spikes of each electrode in each frame (T = ceil(duration / frame_dt))."""
  if not frame_dt > 0:
    raise InputError(f'frame_dt must be positive, got {frame_dt}')
  n_t = max(1, int(np.ceil(rec.duration_s / frame_dt)))
  movie = np.zeros((n_t, GRID, GRID), np.float32)
  t = np.minimum((rec.times / frame_dt).astype(np.int64), n_t - 1)
  np.add.at(movie, (t, rec.row[rec.channel], rec.col[rec.channel]), 1.0)
  return movie


def activity_movie(rec: Recording, frame_dt: float = FRAME_DT,
                   smooth: int = DEFAULT_SMOOTH) -> np.ndarray:
  """f32[T, 64, 64]: spike density (spikes per electrode and frame, box-averaged over
  `smooth` frames x electrodes x electrodes); waves are where it exceeds THRESHOLD."""
  if smooth < 1:
    raise InputError(f'smooth must be >= 1, got {smooth}')
  return ndimage.uniform_filter(spike_counts(rec, frame_dt), size=smooth)
