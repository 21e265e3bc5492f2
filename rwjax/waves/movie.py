"""Wave movie files: save, load (validated) and an animated GIF preview.

A movie directory holds `movie.npy` (float32[B, T, H, W]), `labels.npy`
(int32[B, T], per-frame wave ids, -1 = no wave; see `rwjax.waves.stats`) and
`meta.json` (model, parameters, frame_dt, pixel_mm, threshold, ...).

`write_labelled` labels a movie's waves (rwjax.waves.stats) and writes all of it, with an
optional preview.gif; `python -m rwjax.waves simulate / convert` and the experiment's
saved movies are written by it.

Paths: anything rwjax.paths takes (a local directory, gs://BUCKET/...). Reading a movie
reads the whole .npy (it is returned whole); on a bucket each file is one object upload.
"""

import math
import os
from typing import Any

import numpy as np
from PIL import Image

from rwjax import paths
from rwjax.errors import InputError
from rwjax.waves import stats as wave_stats

MOVIE_FILE = 'movie.npy'
LABELS_FILE = 'labels.npy'
META_FILE = 'meta.json'
GIF_FPS = 20
GIF_SPEEDUP = 4  # previews play at 4x real time
GIF_MAX_PIXELS = 256  # small retinas are upscaled to about this width


def save_movie(out_dir: str, frames: np.ndarray, labels: np.ndarray,
               meta: dict[str, Any]) -> None:
  """Writes movie.npy, labels.npy and meta.json into `out_dir` (created if needed).

  Args:
    frames: f32[B, T, H, W].
    labels: i32[B, T].
    meta: JSON-able description (model, params, frame_dt, pixel_mm, threshold, ...).
  """
  frames, labels = np.asarray(frames, np.float32), np.asarray(labels, np.int32)
  if frames.ndim != 4 or labels.shape != frames.shape[:2]:
    raise InputError(f'need frames [B, T, H, W] and labels [B, T], got {frames.shape} '
                     f'and {labels.shape}')
  paths.makedirs(out_dir)
  paths.save_npy(paths.join(out_dir, MOVIE_FILE), frames)
  paths.save_npy(paths.join(out_dir, LABELS_FILE), labels)
  paths.write_json(paths.join(out_dir, META_FILE), meta, sort_keys=True)


def _movie_path(path: str) -> str:
  """`path` itself, or `path`/movie.npy when `path` is a movie directory."""
  if paths.isdir(path):
    path = paths.join(path, MOVIE_FILE)
  if not paths.isfile(path):
    raise InputError(f'movie file {path!r} does not exist; pass a .npy written by '
                     f'`python -m rwjax.waves simulate` (or its output directory)')
  return path


def load_movie(path: str) -> np.ndarray:
  """Loads and validates a movie.

  Args:
    path: a .npy file, or a directory holding movie.npy.

  Returns:
    f32[T, H, W] or f32[B, T, H, W] (float64 files are cast to float32).

  Raises:
    InputError: missing or unreadable file, wrong dtype or shape, non-finite values.
  """
  path = _movie_path(path)
  try:
    frames = paths.load_npy(path)
  except (OSError, ValueError, EOFError) as e:
    raise InputError(f'cannot read {path!r} as a .npy array ({e}); '
                     f'pass a float32 movie saved with numpy.save') from None
  if not isinstance(frames, np.ndarray):
    raise InputError(f'{path!r} is an .npz archive, not a single .npy movie')
  if frames.dtype not in (np.float32, np.float64):
    raise InputError(f'movie {path!r} has dtype {frames.dtype}; need float32 (or float64)')
  if frames.ndim not in (3, 4) or 0 in frames.shape or min(frames.shape[-2:]) < 2:
    raise InputError(f'movie {path!r} has shape {frames.shape}; need [T, H, W] or '
                     f'[B, T, H, W] with T >= 1 and H, W >= 2')
  frames = frames.astype(np.float32, copy=False)
  if not np.isfinite(frames).all():
    raise InputError(f'movie {path!r} contains NaN or infinite values')
  return frames


def load_meta(path: str) -> dict[str, Any]:
  """The meta.json next to a movie (or in its directory); {} when there is none."""
  meta_path = paths.join(os.path.dirname(_movie_path(path)), META_FILE)
  if not paths.isfile(meta_path):
    return {}
  try:
    meta = paths.read_json(meta_path)
  except (OSError, ValueError) as e:
    raise InputError(f'cannot read {meta_path!r} as JSON ({e}); fix or delete it') from None
  if not isinstance(meta, dict):
    raise InputError(f'{meta_path!r} must hold a JSON object; fix or delete it')
  return meta


def _grey(frames: np.ndarray) -> np.ndarray:
  """f32[T, H, W] -> u8[T, H, W], min-max over the whole movie."""
  lo, hi = float(frames.min()), float(frames.max())
  return np.round((frames - lo) * (255.0 / max(hi - lo, 1e-12))).astype(np.uint8)


def tile(frames: np.ndarray, gap: int = 1) -> np.ndarray:
  """Grey movies of several retinas side by side.

  Args:
    frames: f32[T, H, W] or f32[B, T, H, W]; each retina is scaled to [0, 255] on its own.
    gap: pixels of black between retinas.

  Returns:
    u8[T, rows * (H + gap) - gap, cols * (W + gap) - gap], cols = ceil(sqrt(B)).
  """
  frames = np.asarray(frames)
  if frames.ndim == 3:
    return _grey(frames)
  b, t, h, w = frames.shape
  cols = math.ceil(math.sqrt(b))
  rows = math.ceil(b / cols)
  out = np.zeros((t, rows * (h + gap) - gap, cols * (w + gap) - gap), np.uint8)
  for i, movie in enumerate(frames):
    y, x = (i // cols) * (h + gap), (i % cols) * (w + gap)
    out[:, y:y + h, x:x + w] = _grey(movie)
  return out


def write_gif(path: str, frames: np.ndarray, fps: float = 10.0, scale: int = 1) -> None:
  """Writes an animated, looping grey GIF.

  Args:
    path: output file.
    frames: f32[T, H, W], or f32[B, T, H, W] to tile several retinas (see `tile`).
    fps: frames per second of the animation (GIF timing is in 10 ms units).
    scale: integer nearest-neighbour upscaling, for small retinas.
  """
  if fps <= 0 or scale < 1:
    raise InputError(f'fps must be > 0 and scale >= 1, got fps={fps}, scale={scale}')
  grey = tile(frames)
  if scale > 1:
    grey = grey.repeat(scale, axis=1).repeat(scale, axis=2)
  images = [Image.fromarray(g) for g in grey]  # u8[h, w] -> mode 'L'
  with paths.open_write(path) as f:
    images[0].save(f, format='GIF', save_all=True, append_images=images[1:], loop=0,
                   duration=max(10, round(1000 / fps / 10) * 10), optimize=False)


def check_output(out: str, min_size: int) -> None:
  """InputError before a long simulation or conversion: a bad min_size, or a bucket `out`
  that cannot be written to (rwjax.paths)."""
  if min_size < 1:
    raise InputError(f'--min-size must be at least 1 pixel-frame, got {min_size}')
  if paths.is_remote(out):
    paths.check_writable(out)


def write_labelled(out: str, frames: np.ndarray, meta: dict[str, Any], *, threshold: float,
                   frame_dt: float, pixel_mm: float, min_size: int,
                   gif_seconds: float = 0.0) -> dict[str, Any]:
  """Labels and measures the waves of frames f32[B, T, H, W] and writes the movie
  directory `out`: movie, labels, meta.json (`meta` plus these settings and the
  statistics) and, if gif_seconds > 0, preview.gif of up to 16 retinas. Returns meta.json."""
  result = wave_stats.wave_stats(frames, threshold=threshold, frame_dt=frame_dt,
                                 pixel_mm=pixel_mm, min_size=min_size)
  meta = dict(meta, frame_dt=frame_dt, pixel_mm=pixel_mm, threshold=threshold,
              min_size=min_size, shape=list(frames.shape),
              labels='per-frame wave id, unique across the batch; -1 = no wave',
              summary=wave_stats.summary(result))
  save_movie(out, frames, result.frame_labels, meta)
  if gif_seconds > 0:
    stride = max(1, round(GIF_SPEEDUP / (GIF_FPS * frame_dt)))
    shown = frames[:16, :round(gif_seconds / frame_dt):stride]
    width = tile(shown[:, :1]).shape[-1]
    write_gif(paths.join(out, 'preview.gif'), shown, fps=GIF_FPS,
              scale=max(1, GIF_MAX_PIXELS // width))
  return meta
