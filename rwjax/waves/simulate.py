"""Simulated retinal-wave movies: the chunked loop behind `python -m rwjax.waves simulate`,
`compare` and the experiment's saved movie.

`run` warms `batch` retinas up from rest and records frames in chunks of CHUNK_S
simulated seconds (one compiled program for every chunk, a progress report after each);
`write_movie` simulates a model by name, labels its waves and writes a movie directory
(rwjax.waves.movie: movie.npy f32[B, T, H, W], labels.npy i32[B, T], meta.json, optional
preview.gif).
"""

import math
from typing import Any, Callable

import jax
import numpy as np

from rwjax import waves
from rwjax.errors import InputError
from rwjax.waves import movie as movie_io
from rwjax.waves import stats as wave_stats
from rwjax.waves.progress import Progress

CHUNK_S = 10.0  # simulated seconds per jitted call (one compile, then progress)


def typed_params(mod, overrides: dict[str, Any], flag: str = '') -> dict[str, Any]:
  """`overrides` of the model module `mod`'s Params, each cast to its field's type.

  InputError (prefixed by `flag`, e.g. '--param ') for an unknown name, for 'size' (its
  own argument) and for a value of the wrong type.
  """
  defaults = mod.Params()._asdict()
  out = {}
  for name, value in overrides.items():
    pair = f'{name}={value}'
    if name not in defaults or name == 'size':
      raise InputError(f'{flag}{pair!r}: need NAME=VALUE with NAME one of '
                       f'{[k for k in defaults if k != "size"]} (--size sets the size)')
    kind = type(defaults[name])
    try:
      out[name] = kind(value)
    except ValueError:
      raise InputError(f'{flag}{pair!r}: {value!r} is not a {kind.__name__}') from None
  return out


def run(mod, params, batch: int, warmup_s: float, seconds: float, seed: int,
        keep: Callable[[np.ndarray], np.ndarray] | None = None,
        progress: str | None = None) -> np.ndarray:
  """Simulates `batch` retinas of model module `mod` from rest.

  Args:
    warmup_s: simulated seconds discarded first; seconds: then recorded.
    keep: frames f32[B, t, H, W] of one chunk -> what to keep of them, [B, t, ...]
      (default: the frames).
    progress: label of a progress line on stderr (rwjax.waves.progress); None: silent.
  Returns:
    keep's arrays joined in time, [B, T, ...], T = round(seconds / params.frame_dt).
  """
  n_frames = round(seconds / params.frame_dt)
  if batch < 1 or n_frames < 1 or warmup_s < 0:
    raise InputError(f'need batch >= 1, seconds >= one frame ({params.frame_dt} s) and '
                     f'warmup >= 0, got batch={batch}, seconds={seconds}, warmup={warmup_s}')
  keep = keep or (lambda frames: frames)
  report = Progress(progress, batch * (warmup_s + n_frames * params.frame_dt))
  state = mod.init(jax.random.PRNGKey(seed), batch, params)
  # Warm-up: whole chunks (one compiled program) and one remainder.
  n_chunks, rest = divmod(warmup_s, CHUNK_S)
  for i in range(int(n_chunks)):
    state = jax.block_until_ready(mod.warmup(state, CHUNK_S, params))
    report(batch * (i + 1) * CHUNK_S)
  if rest > 0:
    state = mod.warmup(state, rest, params)
  # Recording: equal chunks (one compile); the last one's surplus frames are dropped.
  chunk = min(n_frames, round(CHUNK_S / params.frame_dt))
  out = []
  for i in range(math.ceil(n_frames / chunk)):
    state, frames = mod.advance(state, chunk, params)
    out.append(keep(np.asarray(frames)))
    report(batch * (warmup_s + min((i + 1) * chunk, n_frames) * params.frame_dt))
  report.finish()
  return np.concatenate(out, axis=1)[:, :n_frames]


def write_movie(out: str, *, model: str = 'lansdell', size: int = 64, seconds: float = 60.0,
                batch: int = 1, warmup: float = 300.0, seed: int = 0,
                params: dict[str, Any] | None = None,
                min_size: int = wave_stats.DEFAULT_MIN_SIZE, gif_seconds: float = 0.0,
                progress: str | None = 'simulate') -> dict[str, Any]:
  """Simulates `batch` retinas of `model` (size x size cells; `params`: Params fields
  changed from the model's defaults), labels their waves and writes the movie directory
  `out`: movie.npy f32[B, T, H, W] (T = seconds / frame_dt, after `warmup` simulated s),
  labels.npy i32[B, T], meta.json (settings and wave statistics), preview.gif of the first
  `gif_seconds` (0: none). Returns the meta.json contents."""
  mod = waves.get_model(model)
  overrides = typed_params(mod, params or {})
  if size <= 0 or seconds <= 0 or batch <= 0 or warmup < 0:
    raise InputError(f'need size, seconds and batch > 0 and warmup >= 0, got size={size}, '
                     f'seconds={seconds}, batch={batch}, warmup={warmup}')
  p = mod.Params(size=int(size), **overrides)
  if round(seconds / p.frame_dt) < 1:
    raise InputError(f'seconds={seconds} is less than one frame ({p.frame_dt} s)')
  movie_io.check_output(out, min_size)  # before the simulation
  frames = run(mod, p, int(batch), float(warmup), float(seconds), int(seed), progress=progress)
  meta = dict(model=model, params=p._asdict(), seed=int(seed), batch=int(batch),
              seconds=float(seconds), warmup_s=float(warmup))
  return movie_io.write_labelled(out, frames, meta, threshold=float(mod.THRESHOLD),
                                 frame_dt=p.frame_dt, pixel_mm=float(mod.pixel_mm(p)),
                                 min_size=min_size, gif_seconds=gif_seconds)
