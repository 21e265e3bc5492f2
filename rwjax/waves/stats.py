"""Wave statistics of a movie (host-side NumPy/SciPy).

A *wave* is a 3-D connected component, in space-time (t, y, x) with face connectivity, of
the pixels above a threshold, of at least `min_size` pixel-frames (smaller ones are failed
initiations or noise; DEFAULT_MIN_SIZE). `wave_stats` measures, per wave:

- area (mm^2): the pixels it covered at any time (their union) times pixel_mm^2;
- duration (s): the number of frames it spans times frame_dt;
- speed (mm/s): the least-squares slope of each pixel's distance (mm) from the wave's first
  frame's footprint against its recruitment time (the first frame it is in the wave); NaN
  when the wave recruits pixels in fewer than 3 distinct frames.

Per pixel, the inter-wave intervals (s) between the recruitment times of the successive waves
that cover it. Per frame, the fraction of the retina inside a wave and the frame's label: the
wave with the most pixels in it, -1 if none. In a batch f32[B, T, H, W] the retinas are
analysed one by one and wave ids are unique across the batch, so two frames show the same
wave iff their labels are equal and not -1. Why these measures: docs/waves.md, 'How waves are
measured'.
"""

import dataclasses
import math
from typing import Any

import numpy as np
from scipy import ndimage

from rwjax.errors import InputError

# Smallest wave, in pixel-frames. In the Lansdell model at its defaults, component
# sizes are bimodal: failed initiations (the driven cell, often with its 4
# neighbours, for <= 0.6 s: 1 to ~45 pixel-frames) and propagating waves (~200 to
# 10^5 pixel-frames), with almost nothing in between; 50 separates the two.
DEFAULT_MIN_SIZE = 50

# Face neighbours in (t, y, x): a wave continues in time only where it overlaps.
_STRUCTURE = ndimage.generate_binary_structure(3, 1)
_MIN_FRONT_FRAMES = 3
# The per-wave (per-pixel for iwi_s) statistics and their table labels.
LABELS = {'speed_mm_s': 'speed (mm/s)', 'iwi_s': 'interval (s)',
          'duration_s': 'duration (s)', 'area_mm2': 'area (mm^2)'}


@dataclasses.dataclass(frozen=True)
class WaveStats:
  """Statistics of one movie f32[T, H, W] or a batch f32[B, T, H, W].

  Frame arrays keep the movie's leading shape ([T] or [B, T]); per-wave arrays
  have one entry per wave, ordered by retina then onset; wave `i` has label `i`.
  """
  frame_labels: np.ndarray  # i32[T] or [B, T]; -1 = no wave
  active_fraction: np.ndarray  # f32[T] or [B, T]
  coverage: np.ndarray  # f64[B]: fraction of pixels in some wave (B = 1 for [T, H, W])
  retina: np.ndarray  # i32[N]
  start_s: np.ndarray  # f64[N]: onset time in the movie
  duration_s: np.ndarray  # f64[N]
  area_mm2: np.ndarray  # f64[N]
  speed_mm_s: np.ndarray  # f64[N], NaN where undefined
  iwi_s: np.ndarray  # f64[M]: inter-wave intervals of all pixels, pooled
  n_frames: int
  frame_dt: float
  pixel_mm: float
  threshold: float
  min_size: int


def label_waves(frames: np.ndarray, threshold: float,
                min_size: int = DEFAULT_MIN_SIZE) -> tuple[np.ndarray, int]:
  """Labels the waves of one movie.

  Args:
    frames: f32[T, H, W].
    threshold: a pixel is active where frames > threshold.
    min_size: smallest wave, in pixel-frames.

  Returns:
    (labels i32[T, H, W], n): 0 = no wave, k in 1..n = wave k, numbered by onset
    frame (ties broken by raster position).
  """
  labels, n = ndimage.label(np.asarray(frames) > threshold, structure=_STRUCTURE)
  if n == 0:
    return labels.astype(np.int32), 0
  sizes = np.bincount(labels.ravel(), minlength=n + 1)
  keep = sizes >= min_size
  keep[0] = False
  # ndimage numbers components in raster order over (t, y, x): already by onset.
  relabel = (np.cumsum(keep) * keep).astype(np.int32)
  return relabel[labels], int(keep.sum())


def _frame_labels(labels: np.ndarray, n: int) -> np.ndarray:
  """i32[T]: per frame, the wave (0-based) with the most pixels in it; -1 if none."""
  n_t = labels.shape[0]
  inside = labels > 0
  counts = np.bincount((np.arange(n_t)[:, None, None] * (n + 1) + labels)[inside],
                       minlength=n_t * (n + 1)).reshape(n_t, n + 1)
  return np.where(counts.max(1) > 0, counts.argmax(1) - 1, -1).astype(np.int32)


def _batch_ids(frame_labels: list[np.ndarray], counts: list[int]) -> np.ndarray:
  """Per-retina frame labels i32[T] (ids from 0, -1 = none) of retinas with counts[b]
  waves -> i32[B, T] with ids unique across the batch (retina b's shifted by the waves
  of retinas 0..b-1)."""
  offsets = np.cumsum([0] + list(counts[:-1]))
  return np.stack([np.where(f >= 0, f + o, -1)
                   for f, o in zip(frame_labels, offsets)]).astype(np.int32)


def _movie(frames) -> np.ndarray:
  frames = np.asarray(frames)
  if frames.ndim not in (3, 4) or 0 in frames.shape:
    raise InputError(f'a movie must be [T, H, W] or [B, T, H, W] with no empty axis, '
                     f'got shape {frames.shape}; pass frames from a simulator or load_movie')
  return frames


def frame_labels(frames: np.ndarray, threshold: float,
                 min_size: int = DEFAULT_MIN_SIZE) -> np.ndarray:
  """Per-frame wave labels alone (what `wave_stats(...).frame_labels` holds, without
  measuring the waves): frames f32[T, H, W] -> i32[T], f32[B, T, H, W] -> i32[B, T],
  ids unique across the batch, -1 = no wave."""
  frames = _movie(frames)
  batch = frames if frames.ndim == 4 else frames[None]
  found = [label_waves(movie, threshold, min_size) for movie in batch]
  out = _batch_ids([_frame_labels(labels, n) for labels, n in found], [n for _, n in found])
  return out if frames.ndim == 4 else out[0]


def _front_speed(mask: np.ndarray, frame_dt: float, pixel_mm: float) -> float:
  """Speed (mm/s) of one wave from its mask bool[t, y, x] in its bounding box."""
  covered = mask.any(0)
  t_rec = np.argmax(mask, axis=0)[covered] * frame_dt
  if np.unique(t_rec).size < _MIN_FRONT_FRAMES:
    return math.nan
  dist = ndimage.distance_transform_edt(~mask[0], sampling=pixel_mm)[covered]
  t_c = t_rec - t_rec.mean()
  return float(np.dot(t_c, dist - dist.mean()) / np.dot(t_c, t_c))


def _one_retina(frames: np.ndarray, threshold: float, min_size: int,
                frame_dt: float, pixel_mm: float) -> dict[str, Any]:
  """Statistics of one movie f32[T, H, W]; wave labels start at 0."""
  _, h, w = frames.shape
  labels, n = label_waves(frames, threshold, min_size)
  inside = labels > 0
  starts, durations, areas, speeds = [], [], [], []
  onset_pixel, onset_frame = [], []
  for k, box in enumerate(ndimage.find_objects(labels), start=1):
    mask = labels[box] == k
    covered = mask.any(0)
    starts.append(box[0].start * frame_dt)
    durations.append(mask.shape[0] * frame_dt)
    areas.append(covered.sum() * pixel_mm**2)
    speeds.append(_front_speed(mask, frame_dt, pixel_mm))
    ys, xs = np.nonzero(covered)
    onset_pixel.append((ys + box[1].start) * w + xs + box[2].start)
    onset_frame.append(box[0].start + np.argmax(mask, axis=0)[covered])
  if n:
    pix, frm = np.concatenate(onset_pixel), np.concatenate(onset_frame)
    order = np.lexsort((frm, pix))
    pix, frm = pix[order], frm[order]
    same = pix[1:] == pix[:-1]
    iwi = (frm[1:] - frm[:-1])[same] * frame_dt
  else:
    iwi = np.zeros(0)
  return dict(
      n=n,
      frame_labels=_frame_labels(labels, n),
      active_fraction=inside.mean((1, 2), dtype=np.float64).astype(np.float32),
      coverage=float(inside.any(0).mean()),
      start_s=np.asarray(starts, np.float64),
      duration_s=np.asarray(durations, np.float64),
      area_mm2=np.asarray(areas, np.float64),
      speed_mm_s=np.asarray(speeds, np.float64),
      iwi_s=np.asarray(iwi, np.float64))


def wave_stats(frames: np.ndarray, *, threshold: float, frame_dt: float = 0.1,
               pixel_mm: float, min_size: int = DEFAULT_MIN_SIZE) -> WaveStats:
  """Finds the waves of a movie and measures them (see the module docstring).

  Args:
    frames: f32[T, H, W] (one retina) or f32[B, T, H, W] (a batch); any array-like.
    threshold: activity threshold in the frames' units (e.g. `lansdell.THRESHOLD`).
    frame_dt: seconds between frames.
    pixel_mm: pixel spacing in mm (e.g. `lansdell.pixel_mm(params)`).
    min_size: smallest wave in pixel-frames.
  """
  frames = _movie(frames)
  if not (frame_dt > 0 and pixel_mm > 0):
    raise InputError(f'frame_dt and pixel_mm must be positive, got {frame_dt}, {pixel_mm}')
  if min_size < 1:
    raise InputError(f'min_size must be at least 1 pixel-frame, got {min_size}')
  batch = frames if frames.ndim == 4 else frames[None]
  per = [_one_retina(f, threshold, min_size, frame_dt, pixel_mm) for f in batch]
  frame_labels = _batch_ids([p['frame_labels'] for p in per], [p['n'] for p in per])
  active = np.stack([p['active_fraction'] for p in per])
  cat = lambda key: np.concatenate([p[key] for p in per])
  return WaveStats(
      frame_labels=frame_labels if frames.ndim == 4 else frame_labels[0],
      active_fraction=active if frames.ndim == 4 else active[0],
      coverage=np.asarray([p['coverage'] for p in per]),
      retina=np.repeat(np.arange(len(per), dtype=np.int32), [p['n'] for p in per]),
      start_s=cat('start_s'), duration_s=cat('duration_s'), area_mm2=cat('area_mm2'),
      speed_mm_s=cat('speed_mm_s'), iwi_s=cat('iwi_s'),
      n_frames=batch.shape[1], frame_dt=float(frame_dt), pixel_mm=float(pixel_mm),
      threshold=float(threshold), min_size=int(min_size))


def quantiles(values, qs: tuple[float, ...]) -> list[float] | None:
  """The quantiles `qs` of the finite values; None (JSON null) if there are none."""
  x = np.asarray(values, np.float64)
  x = x[np.isfinite(x)]
  return [float(v) for v in np.quantile(x, qs)] if x.size else None


def _describe(name: str, values: np.ndarray) -> dict[str, float | None]:
  """p10, median, p90 and mean of the finite values; None (JSON null) if there are none."""
  x = values[np.isfinite(values)]
  out = dict(zip((f'{name}_p10', f'{name}_median', f'{name}_p90'),
                 quantiles(x, (0.1, 0.5, 0.9)) or (None,) * 3))
  out[f'{name}_mean'] = float(x.mean()) if x.size else None
  return out


def summary(stats: WaveStats) -> dict[str, Any]:
  """Flat JSON-able dict of the statistics (None where a value is undefined)."""
  n_retinas = stats.coverage.size
  seconds = stats.n_frames * stats.frame_dt
  out: dict[str, Any] = dict(
      n_retinas=n_retinas,
      n_frames=stats.n_frames,
      seconds=seconds,
      n_waves=int(stats.area_mm2.size),
      waves_per_min=stats.area_mm2.size / n_retinas / (seconds / 60),
      n_waves_with_speed=int(np.isfinite(stats.speed_mm_s).sum()),
  )
  for name in LABELS:
    out.update(_describe(name, getattr(stats, name)))
  out.update(
      coverage=float(stats.coverage.mean()),
      coverage_min=float(stats.coverage.min()),
      active_fraction_mean=float(stats.active_fraction.mean()),
      frames_with_wave=float((stats.frame_labels >= 0).mean()),
      threshold=stats.threshold,
      frame_dt=stats.frame_dt,
      pixel_mm=stats.pixel_mm,
      min_size=stats.min_size,
  )
  return out


def table(summary: dict[str, Any]) -> str:
  """A `summary` as a human-readable table (median and p10/p90 of each statistic)."""
  fmt = lambda v: '     n/a' if v is None else f'{v:8.3f}'
  lines = [f"{summary['n_waves']} waves in {summary['n_retinas']} retina(s) x "
           f"{summary['seconds']:.1f} s ({summary['waves_per_min']:.1f} per retina-minute)",
           f"{'':16}{'p10':>8}{'median':>9}{'p90':>9}"]
  for key, name in LABELS.items():
    lines.append(f'{name:16}' + ' '.join(fmt(summary[f'{key}_{q}'])
                                         for q in ('p10', 'median', 'p90')))
  lines.append(f"coverage {summary['coverage']:.3f} (min {summary['coverage_min']:.3f}), "
               f"mean active fraction {summary['active_fraction_mean']:.3f}, "
               f"frames in a wave {summary['frames_with_wave']:.3f}")
  return '\n'.join(lines)
