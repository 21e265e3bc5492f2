"""Recorded movies -> one training dataset: network input and per-frame wave labels.

`load_dataset(paths, ...)` reads each recording (rwjax.waves.readers) in chunks of
`chunk_frames` frames, so a recording larger than memory is never held whole, and prepares it:

  1. optional dF/F = (F - F0) / F0, F0 a rolling temporal median per pixel (`rolling_median`);
  2. per-pixel z-score over time, per recording (recordings differ in baseline and gain);
  3. block mean-pooling to `out_size`;
  4. min-max to [0, 1] (`minmax`): over the whole dataset, per recording, or none;
  5. optional copies rotated by 90/180/270 degrees, made after pooling (rotation commutes
     with steps 2-4, so this equals rotating the raw frames, for 1/16 of the work).

norm='paper' (config.data.movie_norm) runs steps 2-4 as pooling, one per-pixel z-score over
every frame of every row, then the min-max. Steps 2-4 are those of `frames.to_network_input`.
Rows are the recordings in order, then all of them rotated by rotations[0], and so on; shorter
rows are padded at the end with frames of 0 labelled -1. Labels come from [start, end)
interval files (one per recording, or one counting frames over the recordings in order) or
from `stats.frame_labels` on `detection_movie`, which reads each recording whole. Bad input
raises InputError. See docs/training.md, 'Recorded calcium-imaging movies'.
"""

import dataclasses
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from rwjax.errors import InputError
from rwjax.waves import frames as frames_lib
from rwjax.waves import readers
from rwjax.waves import stats

MINMAX = ('dataset', 'recording', 'none')
# Rolling median: anchors every window / 10 frames, linearly interpolated between (exact,
# one median per frame, for windows under 10 frames). A baseline changes slowly compared
# with the window, and this costs 1/stride of the exact rolling median.
_ANCHORS_PER_WINDOW = 10
_EPS = 1e-6
_ANCHOR_BYTES = 256 * 2**20


@dataclasses.dataclass
class Dataset:
  """Recordings prepared for training (see the module docstring)."""
  movie: np.ndarray    # f32[B, T, out_size, out_size] network input in [0, 1]
  labels: np.ndarray   # i32[B, T] wave id within the row; -1 = no wave (and padding)
  lengths: np.ndarray  # i32[B] real frames of each row; the rest is padding
  paths: list          # [B] the file of each row
  rotation: list       # [B] degrees each row is rotated by


def _window(seconds: float, frame_dt: float, what: str) -> int:
  if not frame_dt > 0:
    raise InputError(f'{what} is given in seconds: set the frame interval frame_dt (s) > 0')
  return max(1, round(seconds / frame_dt))


def _stride(window: int) -> int:
  return max(1, window // _ANCHORS_PER_WINDOW)


def median_anchors(read, n_frames: int, window: int, k0: int = 0, k1: int | None = None,
                   group: int = 16):
  """Anchors i64[K] (frames k * stride, k = k0..k1; default: all) and their medians
  f32[K, H, W] over the `window` frames centred on each (truncated at the ends)."""
  half, stride = window // 2, _stride(window)
  k1 = (n_frames - 1) // stride if k1 is None else k1
  anchors = np.arange(k0, k1 + 1) * stride
  meds = []
  for g in range(0, len(anchors), group):  # one read per group of anchors
    a = anchors[g:g + group]
    lo, hi = max(0, a[0] - half), min(n_frames, a[-1] + half + 1)
    x = read(lo, hi)
    meds += [np.median(x[max(0, b - half) - lo:min(n_frames, b + half + 1) - lo], axis=0)
             for b in a]
  return anchors, np.stack(meds).astype(np.float32)


def rolling_median(read, n_frames: int, t0: int, t1: int, window: int,
                   anchors=None) -> np.ndarray:
  """F0 f32[t1 - t0, H, W]: per pixel, the median over the `window` frames centred on
  each frame (truncated at the ends of the recording), frames t0..t1-1 of n_frames.

  `read(a, b)` returns frames a..b-1. Medians are taken at anchor frames (multiples of
  window // 10) and interpolated linearly; chunks of any size give the same values.
  `anchors`: median_anchors(read, n_frames, window) of the whole recording, computed
  once for many chunks (None: the chunk's own are computed).
  """
  stride = _stride(window)
  k0, k1 = t0 // stride, min(-(-(t1 - 1) // stride), (n_frames - 1) // stride)
  if anchors is None:
    a, med = median_anchors(read, n_frames, window, k0, k1)
  else:
    a, med = anchors[0][k0:k1 + 1], anchors[1][k0:k1 + 1]
  if len(a) == 1:
    return np.broadcast_to(med[0], (t1 - t0, *med.shape[1:])).copy()
  t = np.arange(t0, t1)
  i = np.clip(np.searchsorted(a, t, side='right') - 1, 0, len(a) - 2)
  w = np.clip((t - a[i]) / stride, 0.0, 1.0).astype(np.float32)[:, None, None]
  return med[i] * (1 - w) + med[i + 1] * w


def _dff(path: str, f: np.ndarray, f0: np.ndarray, t0: int) -> np.ndarray:
  bad = f0 <= _EPS
  if bad.any():
    t, y, x = np.argwhere(bad)[0]
    raise InputError(f'{path!r}: dF/F needs a positive baseline, but the rolling median of '
                     f'pixel ({y}, {x}) at frame {t0 + t} is {f0[t, y, x]}; use raw '
                     'fluorescence or turn dF/F off')
  return (f - f0) / f0


def _baseline_anchors(movie: readers.Movie, dff_window: int):
  """The recording's median anchors for dF/F, computed once for both passes when they fit
  in _ANCHOR_BYTES; None: each chunk computes its own (same values)."""
  n, h, w = movie.shape
  if not dff_window or ((n - 1) // _stride(dff_window) + 1) * h * w * 4 > _ANCHOR_BYTES:
    return None
  return median_anchors(movie.read, n, dff_window)


def _chunks(movie: readers.Movie, chunk: int, dff_window: int, anchors=None):
  """(t0, frames f32[n, H, W]) over the recording, dF/F'd when dff_window > 0."""
  n = movie.shape[0]
  for t0 in range(0, n, chunk):
    t1 = min(n, t0 + chunk)
    x = movie.read(t0, t1)
    if dff_window:
      f0 = rolling_median(movie.read, n, t0, t1, dff_window, anchors)
      x = _dff(movie.path, x, f0, t0)
    yield t0, x


def _moments(movie: readers.Movie, chunk: int, dff_window: int, anchors=None):
  """Per-pixel mean and std f64[H, W] over time; InputError on NaN/inf or a constant movie."""
  ref = s1 = s2 = None
  vmin, vmax = math.inf, -math.inf
  for t0, x in _chunks(movie, chunk, dff_window, anchors):
    readers.check_finite(movie.path, x, t0)
    if ref is None:
      ref = x[0].copy()  # shift before summing squares: keeps float32 accurate
      s1, s2 = np.zeros(ref.shape, np.float64), np.zeros(ref.shape, np.float64)
    d = x - ref
    s1 += d.sum(0, dtype=np.float64)
    s2 += np.square(d, out=d).sum(0, dtype=np.float64)
    vmin, vmax = min(vmin, float(x.min())), max(vmax, float(x.max()))
  if vmax - vmin <= 0:
    raise InputError(f'{movie.path!r} is constant (every pixel of every frame is {vmin}); '
                     'a movie without activity has nothing to learn from')
  n = movie.shape[0]
  mean_d = s1 / n
  std = np.sqrt(np.maximum(s2 / n - mean_d * mean_d, 0.0))
  return ref.astype(np.float64) + mean_d, std


def prepare_recording(movie: readers.Movie, out_size: int, *, zscore: bool = True,
                      dff_window: int = 0, chunk_frames: int = 256):
  """Steps 1-3 (module docstring) for one recording, streamed in chunks.

  Returns:
    (pooled f32[T, out_size, out_size], lo, hi): the pooled (z-scored) frames and the
    min and max of the full-resolution (z-scored) frames, for the min-max step.
  """
  t, h, w = movie.shape
  if out_size < 1 or h % out_size or w % out_size:
    raise InputError(f'{movie.path!r}: frames of {h}x{w} cannot be block-pooled to '
                     f'{out_size}x{out_size}; choose an input size that divides both, or crop')
  anchors = _baseline_anchors(movie, dff_window)  # once for both passes
  mean, std = _moments(movie, chunk_frames, dff_window, anchors)
  mean, std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)
  pooled = np.empty((t, out_size, out_size), np.float32)
  lo, hi = math.inf, -math.inf
  for t0, x in _chunks(movie, chunk_frames, dff_window, anchors):
    z = frames_lib.zscore(jnp.asarray(x), mean, std) if zscore else jnp.asarray(x)
    lo, hi = min(lo, float(z.min())), max(hi, float(z.max()))
    pooled[t0:t0 + len(x)] = np.asarray(frames_lib.block_pool(z, out_size))
  return pooled, lo, hi


def detection_movie(frames: np.ndarray, *, frame_dt: float = 0.0, pixel_mm: float = 0.0,
                    background_s: float = 0.0, dff: bool = False, smooth_s: float = 0.0,
                    smooth_mm: float = 0.0, path: str = 'movie') -> np.ndarray:
  """What waves are found in: frames f32[T, H, W] minus their rolling median over
  background_s seconds (or dF/F against it when `dff`), then Gaussian-smoothed with
  standard deviations smooth_s (time) and smooth_mm (space). All off by default."""
  x = np.asarray(frames, np.float32)
  if dff and not background_s > 0:
    raise InputError('dF/F for wave detection needs the baseline window background_s > 0')
  if background_s > 0:
    n = x.shape[0]
    f0 = rolling_median(lambda a, b: x[a:b], n, 0, n,
                        _window(background_s, frame_dt, 'background_s'))
    x = _dff(path, x, f0, 0) if dff else x - f0
  if smooth_s > 0 or smooth_mm > 0:
    if smooth_mm > 0 and not pixel_mm > 0:
      raise InputError('smooth_mm is given in mm: set the pixel size pixel_mm > 0')
    if smooth_s > 0:
      _window(smooth_s, frame_dt, 'smooth_s')  # checks frame_dt
    sigma_t = smooth_s / frame_dt if smooth_s > 0 else 0
    sigma_x = smooth_mm / pixel_mm if smooth_mm > 0 else 0
    x = ndimage.gaussian_filter(x, (sigma_t, sigma_x, sigma_x), mode='nearest')
  return x


def _paper_norm(movie: np.ndarray, lengths: np.ndarray, n: int, zscore: bool,
                minmax: str) -> None:
  """In place on the pooled rows f32[B, T, h, w] (real frames movie[b, :lengths[b]], the rest
  padding left at 0; row b is recording b % n): one per-pixel z-score over every real frame
  of every row, then the min-max over the dataset or each recording's rows."""
  rows = [movie[b, :t] for b, t in enumerate(lengths)]
  if zscore:
    count = float(lengths.sum())
    mean = sum(r.sum(0, dtype=np.float64) for r in rows) / count
    var = sum(np.square(r - mean).sum(0) for r in rows) / count
    std = np.sqrt(var).astype(np.float32)
    for r in rows:
      r[:] = frames_lib.zscore(r, mean.astype(np.float32), std)
  if minmax == 'none':
    return
  groups = [range(len(rows))] if minmax == 'dataset' else [range(i, len(rows), n)
                                                            for i in range(n)]
  for group in groups:
    lo = min(float(rows[b].min()) for b in group)
    hi = max(float(rows[b].max()) for b in group)
    for b in group:
      rows[b][:] = frames_lib.unit_range(rows[b], lo, hi)


def interval_labels(intervals: np.ndarray, n_frames: int, path: str) -> np.ndarray:
  """i32[n_frames]: wave k (0-based, by start) on frames [start_k, end_k), -1 elsewhere."""
  iv = np.asarray(intervals, np.int64).reshape(-1, 2)
  iv = iv[np.argsort(iv[:, 0], kind='stable')]
  out = np.nonzero((iv[:, 0] < 0) | (iv[:, 1] > n_frames))[0]
  if out.size:
    s, e = iv[out[0]]
    raise InputError(f'interval file {path!r}: interval [{s}, {e}) falls outside the movie\'s '
                     f'{n_frames} frames (frames 0..{n_frames - 1}; end is exclusive)')
  overlap = np.nonzero(iv[1:, 0] < iv[:-1, 1])[0]
  if overlap.size:
    i = overlap[0]
    raise InputError(f'interval file {path!r}: intervals [{iv[i, 0]}, {iv[i, 1]}) and '
                     f'[{iv[i + 1, 0]}, {iv[i + 1, 1]}) overlap; each frame belongs to one '
                     'wave at most')
  labels = np.full(n_frames, -1, np.int32)
  for k, (s, e) in enumerate(iv):
    labels[s:e] = k
  return labels


def _split_intervals(iv: np.ndarray, lengths: list[int], path: str) -> list[np.ndarray]:
  """One interval file over the recordings in order -> per-recording intervals."""
  edges = np.cumsum([0] + list(lengths))
  total = int(edges[-1])
  interval_labels(iv, total, path)  # checks range and overlaps over the whole dataset
  rec = np.searchsorted(edges, iv[:, 0], side='right') - 1
  cross = np.nonzero(iv[:, 1] > edges[rec + 1])[0]
  if cross.size:
    s, e = iv[cross[0]]
    raise InputError(f'interval file {path!r}: interval [{s}, {e}) crosses from recording '
                     f'{rec[cross[0]]} into the next (frames counted over the recordings in '
                     'order); waves never span two files')
  return [iv[rec == r] - edges[r] for r in range(len(lengths))]


def labels_from_intervals(iv_files: list[str], lengths: list[int]) -> list[np.ndarray]:
  """Per-recording labels i32[T_i] from one interval file per recording of lengths[i]
  frames, or one file counting frames over all of them in order."""
  if len(iv_files) not in (1, len(lengths)):
    raise InputError(f'{len(iv_files)} interval files for {len(lengths)} movies; give one per '
                     'movie, or one for all of them')
  ivs = [readers.read_intervals(p) for p in iv_files]
  per = _split_intervals(ivs[0], lengths, iv_files[0]) if len(ivs) == 1 else ivs
  names = iv_files * len(lengths) if len(iv_files) == 1 else iv_files
  return [interval_labels(iv, n, name) for iv, n, name in zip(per, lengths, names)]


def load_dataset(paths, *, out_size: int, fmt: str = 'auto', key: str = '',
                 axes: str = 'THW', zscore: bool = True, minmax: str = 'dataset',
                 dff_window_s: float = 0.0, frame_dt: float = 0.0, pixel_mm: float = 0.0,
                 rotations: tuple = (90, 180, 270), intervals='',
                 threshold: float | None = None, background_s: float = 0.0,
                 detect_dff: bool = False, smooth_s: float = 0.0, smooth_mm: float = 0.0,
                 min_size: int = stats.DEFAULT_MIN_SIZE, chunk_frames: int = 256,
                 norm: str = 'per_retina') -> Dataset:
  """Reads and prepares recordings for training (see the module docstring).

  Args:
    paths: files, a comma-separated list, a folder or a glob (readers.movie_paths).
    out_size: network input side; it must divide each recording's H and W.
    fmt, key, axes: how to read each file (readers.open_movie).
    zscore, minmax, dff_window_s, rotations: the preprocessing steps (0 / () = off).
    frame_dt, pixel_mm: seconds per frame and mm per pixel, for the options in s and mm.
    intervals: wave interval file(s) (one, or one per recording, comma-separated); '' =
      find the waves with `threshold` (required then) after background_s / detect_dff /
      smooth_s / smooth_mm (detection_movie), keeping waves of >= min_size pixel-frames.
    chunk_frames: frames read at a time.
    norm: 'per_retina' (z-score per recording at full resolution, then pool, then min-max)
      or 'paper' (pool, then z-score over all rows at once, then min-max); module docstring.

  Returns:
    Dataset: movie f32[B, T, out_size, out_size], labels i32[B, T], B = recordings x
    (1 + len(rotations)).
  """
  if minmax not in MINMAX:
    raise InputError(f'minmax={minmax!r} is unknown; use one of {MINMAX}')
  if chunk_frames < 1:
    raise InputError(f'chunk_frames={chunk_frames} must be >= 1')
  frames_lib.check_norm(norm)
  paper = norm == 'paper'
  files = readers.movie_paths(paths, fmt)
  iv_files = readers.movie_paths(intervals) if intervals else []
  if not iv_files and threshold is None:
    raise InputError('recorded movies need wave labels: give interval files (intervals=...) '
                     'or a threshold (in the units of the detection movie) to find the waves')
  dff_window = _window(dff_window_s, frame_dt, 'dff_window_s') if dff_window_s > 0 else 0
  movies = [readers.open_movie(p, fmt=fmt, key=key, axes=axes) for p in files]  # headers first
  try:
    lengths = [m.shape[0] for m in movies]
    if iv_files:
      labels = labels_from_intervals(iv_files, lengths)
    with jax.default_device(jax.devices('cpu')[0]):  # host-side: leave accelerators free
      prepared = [prepare_recording(m, out_size, zscore=zscore and not paper,
                                    dff_window=dff_window, chunk_frames=chunk_frames)
                  for m in movies]
      if not iv_files:
        labels = [stats.frame_labels(detection_movie(
            m.read(), frame_dt=frame_dt, pixel_mm=pixel_mm, background_s=background_s,
            dff=detect_dff, smooth_s=smooth_s, smooth_mm=smooth_mm, path=m.path),
            threshold, min_size) for m in movies]
      los, his = [p[1] for p in prepared], [p[2] for p in prepared]
      t_max, n, copies = max(lengths), len(files), 1 + len(rotations)
      # Row k * n + i: recording i rotated by (0, *rotations)[k]; filled one recording at a
      # time, so the peak is the dataset plus one recording's copies.
      movie = np.zeros((copies * n, t_max, out_size, out_size), np.float32)
      label = np.full((n, t_max), -1, np.int32)
      for i, lab in enumerate(labels):
        x, prepared[i] = prepared[i][0], None
        if minmax != 'none' and not paper:
          lo, hi = (min(los), max(his)) if minmax == 'dataset' else (los[i], his[i])
          x = frames_lib.unit_range(jnp.asarray(x), lo, hi)
        row = jnp.zeros((1, t_max, out_size, out_size), jnp.float32).at[0, :len(x)].set(x)
        movie[i::n] = np.asarray(frames_lib.rotated_copies(row, tuple(rotations)))
        label[i, :len(x)] = lab
      if paper:
        _paper_norm(movie, np.tile(np.asarray(lengths), copies), n, zscore, minmax)
  finally:
    for m in movies:
      m.close()
  return Dataset(movie=movie, labels=np.tile(label, (copies, 1)),
                 lengths=np.tile(np.asarray(lengths, np.int32), copies),
                 paths=[os.fspath(f) for f in files] * copies,
                 rotation=[r for r in (0, *rotations) for _ in files])
