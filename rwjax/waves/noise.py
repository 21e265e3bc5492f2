"""Noise movies like a wave movie, without its waves (a control for pre-training on waves).

`noise_like(movie, key)` makes a movie of the same shape with the wave movie's pixel histogram
and space-time correlation lengths whose content is smoothed Gaussian noise: active patches
appear and fade in place instead of travelling as fronts. Paired with the wave movie's labels,
whole-wave batches keep their sizes and temporal neighbourhoods; only the waves are gone.
Steps, per retina (row of the batch):

  1. `correlation_lengths`: the lags, in frames and in pixels, at which the mean
     autocorrelation of the per-pixel z-scored movie falls to 1/e (interpolated).
  2. `smoothed_noise`: white noise smoothed by Gaussians of widths sigma_t and sigma_s in the
     frequency domain, padded by 4 sigma so nothing wraps around. Its autocorrelation
     exp(-d^2 / (4 sigma^2)) is 1/e at d = 2 sigma, so sigma starts at half the length.
  3. `match_histogram`: the noise through its normal CDF, then the wave movie's quantile
     function, so the histogram is the wave movie's.
  4. the mapping shortens the correlation somewhat, so sigma is corrected `refine` times by
     the ratio of the wanted to the obtained length (same white noise).

`sweep` measures "without waves": a band of width w travelling d covers about (d + w) / w
times its largest frame area, a patch growing and fading in place about 1. Host-side
NumPy/SciPy, in chunks (time and memory: docs/paper_movie.md, 'Noise without waves').
"""

import math
from typing import NamedTuple

import jax
import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage
from scipy import special

from rwjax.errors import InputError
from rwjax.waves import stats

QUANTILES = 4097  # points of the reference quantile function
_PAD = 4.0  # padding in sigmas (the Gaussian's weight beyond: 6e-8)
_MAX_SPACE_FRAMES = 2000  # frames the spatial autocorrelation is averaged over (evenly spaced)
_MAX_PIXELS = 1024  # pixels the temporal autocorrelation is averaged over (evenly spaced)
_GRID, _GRID_SIGMAS = 2**16 + 1, 8.0  # the histogram map's table: values in +-8 sigma
_PIXEL_CHUNK = 256  # pixels per temporal FFT
_FRAME_CHUNK = 512  # frames per spatial FFT


class Lengths(NamedTuple):
  """1/e correlation lengths of a movie."""
  frames: float  # in time, frames
  pixels: float  # in space, pixels


def _movie(movie) -> np.ndarray:
  movie = np.asarray(movie, np.float32)
  if movie.ndim != 4 or 0 in movie.shape:
    raise InputError(f'a movie must be [B, T, H, W] with no empty axis, got shape {movie.shape}')
  if not np.isfinite(movie).all():
    raise InputError('the movie contains NaN or infinite values')
  return movie


def _zscored(movie: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
  """f32 z-scores of frames f32[..., H, W] with per-pixel mean and std f64[H, W]; pixels of
  zero std are 0."""
  scale = np.where(std > 0, 1.0 / np.where(std > 0, std, 1.0), 0.0).astype(np.float32)
  return (movie - mean.astype(np.float32)) * scale


def _moments(movie: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-pixel mean and std f64[H, W] over time of f32[T, H, W]."""
  return movie.mean(0, dtype=np.float64), movie.std(0, dtype=np.float64)


def temporal_autocorrelation(movie: np.ndarray, max_lag: int) -> np.ndarray:
  """f64[max_lag + 1]: C(0..max_lag) of f32[T, H, W], the mean over pixels (that vary; at most
  _MAX_PIXELS, evenly spaced) of each pixel's z-scored trace's autocorrelation (non-circular:
  overlap-normalised)."""
  t = movie.shape[0]
  flat = movie.reshape(t, -1)
  mean, std = _moments(movie)
  live = np.flatnonzero(std.ravel() > 0)
  if not live.size:
    raise InputError('the movie is constant: it has no correlation length')
  live = live[::max(1, math.ceil(live.size / _MAX_PIXELS))]
  n = sp_fft.next_fast_len(2 * t)
  acc = np.zeros(max_lag + 1)
  for i in range(0, live.size, _PIXEL_CHUNK):
    cols = live[i:i + _PIXEL_CHUNK]
    z = _zscored(flat[:, cols], mean.ravel()[cols], std.ravel()[cols])
    f = sp_fft.rfft(z, n=n, axis=0)
    acc += sp_fft.irfft(np.abs(f) ** 2, n=n, axis=0)[:max_lag + 1].sum(1)
  return acc / live.size / (t - np.arange(max_lag + 1))


def spatial_autocorrelation(movie: np.ndarray, max_lag: int) -> np.ndarray:
  """f64[max_lag + 1]: C(0..max_lag) of f32[T, H, W] within frames, along y and x (averaged),
  of the per-pixel z-scored movie, over up to _MAX_SPACE_FRAMES evenly spaced frames."""
  mean, std = _moments(movie)
  z = _zscored(movie[::max(1, math.ceil(len(movie) / _MAX_SPACE_FRAMES))], mean, std)
  z = z.astype(np.float64)
  c0 = float((z * z).mean())
  if c0 == 0:
    raise InputError('the movie is constant: it has no correlation length')
  out = [1.0]
  for d in range(1, max_lag + 1):
    c = ((z[:, d:, :] * z[:, :-d, :]).mean() + (z[:, :, d:] * z[:, :, :-d]).mean()) / 2
    out.append(c / c0)
  return np.asarray(out)


def one_over_e(c: np.ndarray) -> float:
  """The first lag at which the autocorrelation c[0..] falls to 1/e, interpolated linearly;
  len(c) - 1 if it stays above."""
  target = math.exp(-1.0)
  below = np.flatnonzero(c <= target)
  if not below.size:
    return float(len(c) - 1)
  i = int(below[0])
  if i == 0:
    return 0.0
  return float(i - 1 + (c[i - 1] - target) / (c[i - 1] - c[i]))


def correlation_lengths(movie, max_frames: int = 2000, max_pixels: int | None = None) -> Lengths:
  """1/e correlation lengths of f32[T, H, W] (module docstring, step 1); lags searched up to
  max_frames frames (and T - 1) and max_pixels pixels (default and at most min(H, W) - 1)."""
  movie = np.asarray(movie, np.float32)
  t, h, w = movie.shape
  lag_t = min(max_frames, t - 1)
  lag_s = min(max_pixels or min(h, w) - 1, min(h, w) - 1)
  if lag_t < 1 or lag_s < 1:
    raise InputError(f'a movie of shape {movie.shape} is too small to measure correlations in')
  return Lengths(frames=one_over_e(temporal_autocorrelation(movie, lag_t)),
                 pixels=one_over_e(spatial_autocorrelation(movie, lag_s)))


def _gain(n: int, sigma: float) -> np.ndarray:
  """rfft-domain transfer function of a Gaussian of std `sigma` samples, length n."""
  f = sp_fft.rfftfreq(n)
  return np.exp(-2.0 * (math.pi * sigma * f) ** 2)


def smoothed_noise(rng: np.random.Generator, shape: tuple[int, int, int], sigma_t: float,
                   sigma_s: float) -> np.ndarray:
  """f32[T, H, W] white Gaussian noise smoothed by Gaussians of std sigma_t frames and sigma_s
  pixels, scaled to unit variance (module docstring, step 2)."""
  t, h, w = shape
  pt, ps = math.ceil(_PAD * sigma_t), math.ceil(_PAD * sigma_s)
  nt, ny, nx = (sp_fft.next_fast_len(n) for n in (t + 2 * pt, h + 2 * ps, w + 2 * ps))
  fy = sp_fft.fftfreq(ny)[:, None]  # rfft2: full frequencies along y, half along x
  gain_2d = np.exp(-2.0 * (math.pi * sigma_s * fy) ** 2) * _gain(nx, sigma_s)[None, :]
  field = np.empty((nt, h, w), np.float32)
  for i in range(0, nt, _FRAME_CHUNK):  # spatial smoothing, frame chunk by frame chunk
    white = rng.standard_normal((min(_FRAME_CHUNK, nt - i), ny, nx), dtype=np.float32)
    smooth = sp_fft.irfft2(sp_fft.rfft2(white) * gain_2d, s=(ny, nx))
    field[i:i + len(white)] = smooth[:, ps:ps + h, ps:ps + w]
  out = np.empty((t, h, w), np.float32)
  flat_in, flat_out = field.reshape(nt, -1), out.reshape(t, -1)
  gt = _gain(nt, sigma_t)[:, None]
  for i in range(0, h * w, _PIXEL_CHUNK):  # temporal smoothing, pixel chunk by pixel chunk
    smooth = sp_fft.irfft(sp_fft.rfft(flat_in[:, i:i + _PIXEL_CHUNK], axis=0) * gt, n=nt,
                          axis=0)
    flat_out[:, i:i + _PIXEL_CHUNK] = smooth[pt:pt + t]
  return out / out.std(dtype=np.float64)


def quantile_table(reference: np.ndarray) -> np.ndarray:
  """f64[QUANTILES]: the quantile function of all of `reference`'s values at
  linspace(0, 1, QUANTILES)."""
  return np.quantile(reference, np.linspace(0.0, 1.0, QUANTILES))


def match_histogram(gaussian: np.ndarray, table: np.ndarray) -> np.ndarray:
  """Unit-variance Gaussian values f32[...] -> values of the histogram whose quantile_table
  is `table` (step 3): through the normal CDF, then the interpolated quantile function.

  The composite map is tabulated on _GRID evenly spaced values over +-_GRID_SIGMAS and
  interpolated linearly by index (no search per value).
  """
  probs = np.linspace(0.0, 1.0, len(table))
  grid = np.linspace(-_GRID_SIGMAS, _GRID_SIGMAS, _GRID)
  mapped = np.interp(special.ndtr(grid), probs, table).astype(np.float32)
  step = np.float32(grid[1] - grid[0])
  out = np.empty(gaussian.shape, np.float32)
  flat_in, flat_out = gaussian.reshape(len(gaussian), -1), out.reshape(len(out), -1)
  for i in range(0, len(flat_in), _FRAME_CHUNK):
    pos = np.clip((flat_in[i:i + _FRAME_CHUNK] + np.float32(_GRID_SIGMAS)) / step, 0,
                  np.float32(_GRID - 1.001))
    k = pos.astype(np.int64)
    frac = pos - k
    flat_out[i:i + _FRAME_CHUNK] = mapped[k] * (1 - frac) + mapped[k + 1] * frac
  return out


def _rng(key: jax.Array, b: int) -> np.random.Generator:
  data = np.asarray(jax.random.key_data(jax.random.fold_in(key, b)), np.uint32)
  return np.random.default_rng(data.ravel().tolist())


def noise_like(movie, key: jax.Array, *, refine: int = 2, lengths: list[Lengths] | None = None
               ) -> tuple[np.ndarray, list[dict]]:
  """A noise movie like `movie` (module docstring).

  Args:
    movie: f32[B, T, H, W] wave movie (any units; e.g. a saved Lansdell movie in mV).
    key: PRNG key; retina b's noise is drawn from fold_in(key, b).
    refine: corrections of the smoothing widths after the histogram mapping (step 4).
    lengths: per retina, the correlation lengths to match (default: measured on `movie`).
  Returns:
    (noise f32[B, T, H, W], per retina a dict of the wanted and obtained lengths and the
    smoothing widths used).
  """
  movie = _movie(movie)
  if refine < 0:
    raise InputError(f'refine={refine} must be >= 0')
  out, report = np.empty_like(movie), []
  for b, ref in enumerate(movie):
    want = lengths[b] if lengths is not None else correlation_lengths(ref)
    table = quantile_table(ref)
    sigma = [want.frames / 2, want.pixels / 2]
    for i in range(refine + 1):
      noise = match_histogram(smoothed_noise(_rng(key, b), ref.shape, *sigma), table)
      got = correlation_lengths(noise)
      if i < refine:
        sigma = [s * (w / g if g > 0 else 1.0) for s, w, g in zip(sigma, want, got)]
    out[b] = noise
    report.append(dict(want_frames=want.frames, want_pixels=want.pixels, got_frames=got.frames,
                       got_pixels=got.pixels, sigma_frames=sigma[0], sigma_pixels=sigma[1]))
  return out, report


def sweep(movie, threshold: float, min_size: int = stats.DEFAULT_MIN_SIZE) -> float:
  """How far the active clusters of f32[T, H, W] travel: over the wave finder's components
  (rwjax.waves.stats.label_waves: pixels above `threshold`, >= min_size pixel-frames), the
  mean, weighted by component size, of footprint (pixels ever covered) / largest frame area.
  1 for clusters that stay in place; NaN if there is no component."""
  labels, n = stats.label_waves(np.asarray(movie), threshold, min_size)
  if not n:
    return math.nan
  ratio, size = [], []
  for k, box in enumerate(ndimage.find_objects(labels), start=1):
    mask = labels[box] == k
    ratio.append(mask.any(0).sum() / mask.sum((1, 2)).max())
    size.append(mask.sum())
  return float(np.average(ratio, weights=size))


def write_movie(like: str, out: str, *, seed: int = 0, refine: int = 2) -> dict:
  """The noise movie of a saved movie directory `like` (movie.npy, labels.npy) into `out`:
  movie.npy (`noise_like`), labels.npy copied from `like` (its waves; the noise has none),
  meta.json (like's settings and the noise's). Returns the meta."""
  from rwjax import paths  # pylint: disable=g-import-not-at-top
  from rwjax.waves import movie as movie_io  # pylint: disable=g-import-not-at-top
  frames = movie_io.load_movie(like)
  frames = frames[None] if frames.ndim == 3 else frames
  labels_path = paths.join(like, movie_io.LABELS_FILE)
  if not paths.isfile(labels_path):
    raise InputError(f'{labels_path!r} does not exist: --like must be a movie directory written '
                     'by `python -m rwjax.waves simulate` (movie.npy and labels.npy)')
  labels = paths.load_npy(labels_path)
  if labels.size != frames.shape[0] * frames.shape[1]:
    raise InputError(f'{labels_path!r} holds {labels.size} labels for a movie of '
                     f'{frames.shape[0]} x {frames.shape[1]} frames; one label per frame')
  noise, report = noise_like(frames, jax.random.PRNGKey(seed), refine=refine)
  meta = {k: v for k, v in movie_io.load_meta(like).items() if k != 'summary'}
  meta.update(noise=dict(like=like, seed=seed, refine=refine, retinas=report),
              labels='copied from the wave movie (its waves; this movie has none)')
  movie_io.save_movie(out, noise, labels.reshape(noise.shape[:2]), meta)
  return meta
