"""Recorded retinal waves: multi-electrode-array spike trains -> activity movies.

`load_mea(path)` reads the HDF5 layout of the retinal wave repository of Eglen et al. (2014,
GigaScience 3:3, "waverepo"): `epos` (x, y) electrode positions in um, `sCount` spikes per
train, `spikes` times in s train after train, `array` the layout name, and optional
`summary/duration` and `meta/age`. Its quirks (transposed matrices, scalars as arrays or
bytes, shifted spike times, units sharing an electrode) are tolerated; anything malformed is
one InputError. The fields and quirks: docs/waves.md, 'The MEA file layout'.

Each electrode becomes pixels of a square raster (`_raster`): square layouts one pixel per
grid site at the grid pitch (a named NxM layout keeps its full raster, silent sites 0); any
other layout a raster of half the electrode spacing, each pixel showing its nearest electrode
within _VORONOI_REACH spacings (a Voronoi resampling, so areas stay in mm^2).

`activity_movie` is the spike density per electrode and frame of FRAME_DT, box-averaged over
`smooth` frames x pixels x pixels (the array records only some electrodes of a wave in any
bin); a pixel is in a wave above THRESHOLD (more than 4 spikes among the 27 electrode-frames
around it) and `rwjax.waves.stats` measures the waves with pixel_mm = `Recording.pitch_mm`.
`write_movie` saves it as a labelled movie directory (`python -m rwjax.waves convert`).
"""

import dataclasses
import re
from typing import Any

import numpy as np
from scipy import ndimage
from scipy import spatial

from rwjax import paths
from rwjax.errors import InputError
from rwjax.waves import movie as movie_io
from rwjax.waves import stats as wave_stats

GRID = 64
PITCH_MM = 0.042
FRAME_DT = 0.1  # s
THRESHOLD = 0.15
DEFAULT_SMOOTH = 3
_SQUARE_NAME = re.compile(r'(\d+)x(\d+)_(\d+(?:\.\d+)?)um')
_PITCH_NAME = re.compile(r'(\d+(?:\.\d+)?)um')
_ON_GRID_TOL = 0.05  # fraction of the pitch a position may be off its grid site
_VORONOI_REACH = 0.6  # pixels up to this many electrode spacings from their electrode


@dataclasses.dataclass(frozen=True)
class Recording:
  """Spike trains of one recording and the raster its movie is drawn on."""
  times: np.ndarray     # f64[S] spike times (s) from the recording's start, train after train
  channel: np.ndarray   # i32[S] train of each spike
  row: np.ndarray       # i32[C] raster row of each train's electrode
  col: np.ndarray       # i32[C] raster column of each train's electrode
  duration_s: float
  age_days: int | None
  source: str
  # Raster and layout (defaults: the 64x64, 42 um APS array of Maccione et al. 2014).
  pos_um: np.ndarray | None = None   # f64[C, 2] (x, y) position of each train's electrode
  pitch_mm: float = PITCH_MM         # raster pixel spacing
  shape: tuple[int, int] = (GRID, GRID)
  # i32[H, W]: the train whose electrode each pixel shows (any train of it; see
  # `pixel_electrode`), -1 = none. None: each train's electrode is its own pixel only.
  pixel_train: np.ndarray | None = None
  layout: str = 'square'             # 'square' | 'resampled'
  array: str = ''

  @property
  def n_trains(self) -> int:
    return int(self.row.size)

  @property
  def electrode(self) -> np.ndarray:
    """i32[C]: the electrode (distinct raster pixel of its position) of each train."""
    return (self.row.astype(np.int64) * self.shape[1] + self.col).astype(np.int32)

  def positions_um(self) -> np.ndarray:
    """f64[C, 2] (x, y) electrode position of each train (raster sites if not stored)."""
    if self.pos_um is not None:
      return self.pos_um
    return np.stack([self.col, self.row], 1) * self.pitch_mm * 1000.0


def _scalar(value):
  """A scalar stored as an array, bytes or str -> a Python scalar or str."""
  value = np.ravel(np.asarray(value))
  if value.size == 0:
    return None
  v = value[0]
  if isinstance(v, bytes):
    return v.decode('utf-8', 'replace')
  return v.item() if hasattr(v, 'item') else v


def _read(path: str) -> dict:
  import h5py  # pylint: disable=g-import-not-at-top  (only recorded data needs it)
  if not paths.isfile(path):
    raise InputError(f'{path} does not exist; pass an MEA spike file (.h5)')
  try:
    with paths.open_read(path) as raw, h5py.File(raw, 'r') as f:  # any path (gs://)
      missing = [k for k in ('epos', 'sCount', 'spikes') if k not in f]
      if missing:
        raise InputError(f'{path} has no {missing} dataset(s): not an MEA spike file '
                         '(datasets epos, sCount, spikes; see rwjax/waves/recorded.py)')
      out = {k: f[k][()] for k in ('epos', 'sCount', 'spikes')}
      for key, name in (('duration', 'summary/duration'), ('age', 'meta/age'),
                        ('array', 'array')):
        out[key] = _scalar(f[name][()]) if name in f and isinstance(f[name], h5py.Dataset) \
            else None
      return out
  except OSError as e:
    raise InputError(f'{path} is not a readable HDF5 file ({e}); pass an MEA spike '
                     'file (.h5)') from None


def _as_float(value) -> float | None:
  try:
    value = float(value)
  except (TypeError, ValueError):
    return None
  return value if np.isfinite(value) else None


def _age(value) -> int | None:
  """meta/age as an int (a number or a string such as 'P6'), None if not one."""
  if isinstance(value, str):
    m = re.search(r'-?\d+', value)
    return int(m.group()) if m else None
  value = _as_float(value)
  return None if value is None else int(round(value))


def _positions(path: str, epos: np.ndarray, n: int) -> np.ndarray:
  """epos in either orientation -> f64[n, 2] (x, y) in um."""
  if epos.ndim == 2 and epos.shape == (n, 2):
    return epos
  if epos.ndim == 2 and epos.shape == (2, n):
    return epos.T
  raise InputError(f'{path}: epos has shape {epos.shape}, expected ({n}, 2) or (2, {n}) '
                   '(an (x, y) position in um for each train of sCount)')


def _grid_index(path: str, pos: np.ndarray, pitch: float, size: tuple[int, int] | None):
  """(x, y) um -> integer (col, row) grid sites of `pitch` um, or None if off the grid.

  With a known size (W, H) the sites are absolute (0- or 1-based, else shifted to fit);
  without one they start at the smallest position.
  """
  sites = pos / pitch
  idx = np.round(sites).astype(np.int64)
  if np.abs(sites - idx).max() > _ON_GRID_TOL:
    return None
  if size is None:
    return idx - idx.min(0)
  hi = np.asarray(size)
  if (idx.min(0) >= 0).all() and (idx.max(0) < hi).all():
    return idx
  if (idx.min(0) >= 1).all() and (idx.max(0) <= hi).all():  # 1-based positions
    return idx - 1
  if (idx.max(0) - idx.min(0) < hi).all():
    return idx - idx.min(0)
  raise InputError(f'{path}: electrode positions span more than the {size[0]}x{size[1]} '
                   f'grid of {pitch:g} um pitch that the array name says')


def _min_step(values: np.ndarray) -> float:
  u = np.unique(np.round(values, 3))
  d = np.diff(u)
  d = d[d > 1e-3]
  return float(d.min()) if d.size else 0.0


def _raster(path: str, pos: np.ndarray, array: str):
  """Electrode positions f64[C, 2] -> (row i32[C], col i32[C], pitch_um, (H, W),
  pixel_train i32[H, W] | None, layout)."""
  distinct = np.unique(np.round(pos, 3), axis=0)
  if distinct.shape[0] < 2:
    raise InputError(f'{path}: all {pos.shape[0]} trains sit at one electrode position '
                     f'{distinct[0].tolist()}; a wave needs at least two electrodes')
  named = _SQUARE_NAME.search(array or '')
  hexagonal = 'hex' in (array or '').lower()
  if named and not hexagonal:
    w, h, pitch = int(named.group(1)), int(named.group(2)), float(named.group(3))
    idx = _grid_index(path, pos, pitch, (w, h))
    if idx is None:
      raise InputError(f'{path}: electrode positions are not on the {w}x{h} grid of '
                       f'{pitch:g} um pitch that the array name {array!r} says')
    return idx[:, 1], idx[:, 0], pitch, (h, w), None, 'square'
  if not hexagonal:
    pitch = min((s for s in (_min_step(pos[:, 0]), _min_step(pos[:, 1])) if s > 0), default=0.0)
    idx = _grid_index(path, pos, pitch, None) if pitch > 0 else None
    if idx is not None:
      shape = (int(idx[:, 1].max()) + 1, int(idx[:, 0].max()) + 1)
      if shape[0] * shape[1] <= 4 * 4096 * 4:  # a sane raster, else resample
        return idx[:, 1], idx[:, 0], pitch, shape, None, 'square'
  # Resampled (hexagonal or irregular): Voronoi cells on a raster of half the spacing.
  nn = spatial.cKDTree(distinct).query(distinct, k=2)[0][:, 1]
  named_pitch = _PITCH_NAME.search(array or '')
  spacing = float(named_pitch.group(1)) if named_pitch else float(np.median(nn))
  pitch = spacing / 2
  lo = distinct.min(0) - spacing / 2
  size = np.ceil((distinct.max(0) + spacing / 2 - lo) / pitch).astype(np.int64) + 1
  w, h = int(size[0]), int(size[1])
  if w * h > 2048 * 2048:
    raise InputError(f'{path}: a {w}x{h} raster for electrodes {spacing:g} um apart is too '
                     'large; the positions must be in um')
  ys, xs = np.mgrid[:h, :w]
  centres = np.stack([xs.ravel(), ys.ravel()], 1) * pitch + lo
  tree = spatial.cKDTree(pos)
  dist, train = tree.query(centres)
  pixel_train = np.where(dist <= _VORONOI_REACH * spacing, train, -1).reshape(h, w)
  col = np.round((pos[:, 0] - lo[0]) / pitch).astype(np.int64)
  row = np.round((pos[:, 1] - lo[1]) / pitch).astype(np.int64)
  return row, col, pitch, (h, w), pixel_train.astype(np.int32), 'resampled'


def load_mea(path: str) -> Recording:
  """Reads an MEA spike file of any waverepo layout (module docstring); InputError if
  malformed."""
  d = _read(path)
  try:
    epos = np.asarray(d['epos'], np.float64)
    counts_raw = np.asarray(d['sCount']).ravel()
    counts = counts_raw.astype(np.float64)
    times = np.asarray(d['spikes'], np.float64).ravel()
  except (TypeError, ValueError):
    raise InputError(f'{path}: epos, sCount and spikes must be numeric arrays') from None
  if counts.size == 0:
    raise InputError(f'{path} has no channels (sCount is empty)')
  if (counts < 0).any() or (counts != np.round(counts)).any():
    bad = int(np.flatnonzero((counts < 0) | (counts != np.round(counts)))[0])
    raise InputError(f'{path}: sCount[{bad}] = {counts_raw[bad]}; spike counts must be '
                     'whole numbers >= 0')
  counts = counts.astype(np.int64)
  if counts.sum() != times.size:
    raise InputError(f'{path}: sCount sums to {counts.sum()} but there are {times.size} '
                     'spikes; the file is inconsistent')
  if not np.isfinite(times).all():
    raise InputError(f'{path}: {int((~np.isfinite(times)).sum())} spike time(s) are NaN or '
                     'infinite; spike times must be finite seconds')
  pos = _positions(path, epos, counts.size)
  if not np.isfinite(pos).all():
    raise InputError(f'{path}: electrode positions (epos) must be finite')
  array = d['array'] if isinstance(d['array'], str) else ''
  row, col, pitch_um, shape, pixel_train, layout = _raster(path, pos, array)
  duration = _as_float(d['duration'])
  t_min, t_max = (float(times.min()), float(times.max())) if times.size else (0.0, 0.0)
  if duration is None or duration <= 0 or t_min < 0 or t_max > duration:
    # Times are not on [0, duration]: the recording starts at its first spike.
    start = t_min if times.size else 0.0
    times = times - start
    duration = t_max - start if duration is None or duration < t_max - start else duration
  return Recording(times=times, channel=np.repeat(np.arange(counts.size), counts).astype(np.int32),
                   row=row.astype(np.int32), col=col.astype(np.int32),
                   duration_s=float(duration), age_days=_age(d['age']),
                   source=paths.abspath(path), pos_um=pos, pitch_mm=pitch_um / 1000.0,
                   shape=shape, pixel_train=pixel_train, layout=layout, array=array)


def spike_counts(rec: Recording, frame_dt: float = FRAME_DT) -> np.ndarray:
  """f32[T, H, W]: spikes of each electrode in each frame (T = ceil(duration / frame_dt)),
  on the recording's raster (resampled layouts: each pixel shows its nearest electrode)."""
  if not frame_dt > 0:
    raise InputError(f'frame_dt must be positive, got {frame_dt}')
  n_t = max(1, int(np.ceil(rec.duration_s / frame_dt)))
  h, w = rec.shape
  movie = np.zeros((n_t, h, w), np.float32)
  t = np.clip((rec.times / frame_dt).astype(np.int64), 0, n_t - 1)
  np.add.at(movie, (t, rec.row[rec.channel], rec.col[rec.channel]), 1.0)
  if rec.pixel_train is None:
    return movie
  # Each pixel takes its nearest electrode's spikes (all trains at that electrode).
  inside = rec.pixel_train >= 0
  src = rec.pixel_train[inside]
  out = np.zeros_like(movie)
  out[:, inside] = movie[:, rec.row[src], rec.col[src]]
  return out


def activity_movie(rec: Recording, frame_dt: float = FRAME_DT,
                   smooth: int = DEFAULT_SMOOTH) -> np.ndarray:
  """f32[T, H, W]: spike density (spikes per electrode and frame, box-averaged over
  `smooth` frames x pixels x pixels); waves are where it exceeds THRESHOLD."""
  if smooth < 1:
    raise InputError(f'smooth must be >= 1, got {smooth}')
  return ndimage.uniform_filter(spike_counts(rec, frame_dt), size=smooth)


def write_movie(out: str, mea: str, *, frame_dt: float = FRAME_DT,
                smooth: int = DEFAULT_SMOOTH, min_size: int = wave_stats.DEFAULT_MIN_SIZE,
                gif_seconds: float = 0.0) -> dict[str, Any]:
  """The activity movie of the MEA spike file `mea` as a movie directory `out`
  (movie.npy f32[1, T, H, W], labels.npy i32[1, T], meta.json, optional preview.gif;
  rwjax.waves.movie.write_labelled). Returns the meta.json contents."""
  movie_io.check_output(out, min_size)  # before the conversion
  rec = load_mea(mea)
  meta = dict(model='recorded', source=rec.source, age_days=rec.age_days,
              duration_s=rec.duration_s, smooth=smooth,
              units='spikes per electrode and frame, box-averaged (rwjax.waves.recorded)')
  return movie_io.write_labelled(out, activity_movie(rec, frame_dt, smooth)[None], meta,
                                 threshold=THRESHOLD, frame_dt=frame_dt,
                                 pixel_mm=rec.pitch_mm, min_size=min_size,
                                 gif_seconds=gif_seconds)
