"""Command line for the retinal-wave simulators and wave statistics.

  python -m rwjax.waves simulate --model=lansdell --size=64 --seconds=60 --batch=4 --out=out/waves
  python -m rwjax.waves stats --movie=out/waves/movie.npy --json
  python -m rwjax.waves convert --mea=RECORDING.h5 --out=out/recorded
  python -m rwjax.waves stats --recording=RECORDING.h5 --json
  python -m rwjax.waves survey --folder=RECORDINGS/
  python -m rwjax.waves compare --model=lansdell --recording=RECORDING.h5
  python -m rwjax.waves fit --model=lansdell --recording=RECORDING.h5
  python -m rwjax.waves stats --movie=rec.tif --pixel-mm=0.01 --frame-dt=0.1 --threshold=2 --json
  python -m rwjax.waves preview --movie=rec.tif --out=preview.gif
  python -m rwjax.waves noise --like=out/waves --out=out/noise --seed=0

`simulate` warms the retinas up, records `--seconds` of frames in chunks (progress
and ETA on stderr), labels the waves and writes movie.npy, labels.npy, meta.json
and preview.gif into --out, then prints the wave statistics. `convert` does the same
for a recorded multi-electrode-array spike file (rwjax.waves.recorded). `stats` reads
a movie (its meta.json, if present, supplies threshold, frame_dt and pixel size);
`stats` and `preview` take any movie rwjax.waves.readers reads (TIFF, .npy, .npz, HDF5,
MATLAB), and `stats` can subtract a rolling-median background and smooth first.
`noise` writes a noise movie like a saved movie (rwjax.waves.noise: its histogram and
correlation lengths, no waves) with a copy of its labels.
Bad input prints one `error: ...` line and exits with code 2. Every path (--movie,
--out, --mea, --recording, --folder) may be a bucket path (gs://BUCKET/...; rwjax.paths).
"""

import argparse
import json
import math
import os
import sys
import time
from typing import Any

import jax
import numpy as np

from rwjax import paths
from rwjax import waves
from rwjax.errors import InputError, cli_main
from rwjax.waves import dataset as recorded_dataset
from rwjax.waves import movie as movie_io
from rwjax.waves import mea_cli
from rwjax.waves import readers
from rwjax.waves import recorded
from rwjax.waves import stats as wave_stats

CHUNK_S = 10.0  # simulated seconds per jitted call (one compile, then progress)
GIF_FPS = 20
GIF_SPEEDUP = 4  # preview plays at 4x real time
GIF_MAX_PIXELS = 256  # small retinas are upscaled to about this width


def _add_output_args(parser: argparse.ArgumentParser) -> None:
  """Flags of the subcommands that write a movie directory."""
  parser.add_argument('--min-size', type=int, default=wave_stats.DEFAULT_MIN_SIZE,
                      help='smallest wave (pixel-frames) for the labels and statistics')
  parser.add_argument('--gif-seconds', type=float, default=60.0,
                      help='seconds of the movie shown in preview.gif (0: no GIF)')
  parser.add_argument('--out', required=True, help='output directory')


def _parse(argv: list[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog='python -m rwjax.waves', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest='command', required=True)
  sim = sub.add_parser('simulate', help='simulate retinal waves and save a movie')
  sim.add_argument('--model', default='lansdell', help='lansdell | godfrey')
  sim.add_argument('--size', type=int, default=64, help='lattice side (cells)')
  sim.add_argument('--seconds', type=float, default=60.0, help='simulated seconds recorded')
  sim.add_argument('--batch', type=int, default=1, help='independent retinas')
  sim.add_argument('--warmup', type=float, default=300.0,
                   help='simulated seconds discarded before recording')
  sim.add_argument('--seed', type=int, default=0)
  sim.add_argument('--param', action='append', default=[], metavar='NAME=VALUE',
                   help='override a model parameter, e.g. --param diff=0.01 (repeatable)')
  _add_output_args(sim)
  conv = sub.add_parser('convert', help='bin a recorded MEA spike file into a movie')
  conv.add_argument('--mea', required=True, help='HDF5 spike file (Maccione et al. 2014 layout)')
  conv.add_argument('--frame-dt', type=float, default=recorded.FRAME_DT,
                    help='seconds per frame')
  conv.add_argument('--smooth', type=int, default=recorded.DEFAULT_SMOOTH,
                    help='box average over this many frames x electrodes x electrodes')
  _add_output_args(conv)
  st = sub.add_parser('stats', help='wave statistics of a movie')
  st.add_argument('--movie', default=None, help='movie .npy file or a simulate --out directory')
  st.add_argument('--model', default=None,
                  help='lansdell | godfrey | recorded: whose threshold/pixel size apply '
                  '(default: meta.json, else lansdell)')
  st.add_argument('--threshold', type=float, default=None, help='activity threshold')
  st.add_argument('--frame-dt', type=float, default=None, help='seconds per frame')
  st.add_argument('--pixel-mm', type=float, default=None, help='pixel spacing (mm)')
  st.add_argument('--min-size', type=int, default=None, help='smallest wave (pixel-frames)')
  st.add_argument('--json', action='store_true', help='print one JSON object')
  mea_cli.add_stats_args(st)
  mea_cli.add_commands(sub)
  _add_recorded_args(sub, st)
  _add_noise_command(sub)
  return parser.parse_args(argv)


def _add_reading_args(parser: argparse.ArgumentParser) -> None:
  parser.add_argument('--format', default='auto', help=f'auto (from the extension) | '
                      f'{" | ".join(readers.FORMATS)}')
  parser.add_argument('--key', default='', help='.npz array, HDF5 dataset or MATLAB variable '
                      "('' = the only one; 'V' for .mat)")
  parser.add_argument('--axes', default='THW', help="stored axis order, e.g. 'HWT' (MATLAB's "
                      'order for .mat files)')


def _add_recorded_args(sub, st: argparse.ArgumentParser) -> None:
  """stats' reading and detection flags; the preview subcommand."""
  _add_reading_args(st)
  st.add_argument('--background-s', type=float, default=0.0,
                  help='subtract each pixel\'s rolling median over this many seconds (0: off)')
  st.add_argument('--dff', action='store_true', help='dF/F against that median instead')
  st.add_argument('--smooth-s', type=float, default=0.0, help='Gaussian smoothing sigma in time (s)')
  st.add_argument('--smooth-mm', type=float, default=0.0, help='Gaussian smoothing sigma in space (mm)')
  pv = sub.add_parser('preview', help='animated GIF of any movie file')
  pv.add_argument('--movie', required=True, help='a movie file or a simulate --out directory')
  pv.add_argument('--out', required=True, help='the GIF to write')
  pv.add_argument('--frame-dt', type=float, default=None, help='seconds per frame '
                  '(default: meta.json, else 0.1)')
  pv.add_argument('--seconds', type=float, default=60.0, help='seconds of the movie shown')
  pv.add_argument('--speedup', type=float, default=GIF_SPEEDUP, help='playback speed / real time')
  _add_reading_args(pv)


def _progress(done: float, total: float, start: float, last: list[float]) -> None:
  """One stderr line per ~2 s of wall time (and at the end): % done and ETA."""
  now = time.time()
  if done < total and now - last[0] < 2.0:
    return
  last[0] = now
  elapsed = now - start
  eta = elapsed * (total - done) / done if done else float('nan')
  print(f'simulate: {100 * done / total:5.1f}% ({done:.0f}/{total:.0f} simulated s), '
        f'{elapsed:.0f} s elapsed, ETA {eta:.0f} s', file=sys.stderr, flush=True)


def parse_params(mod, pairs: list[str]) -> dict[str, Any]:
  """`NAME=VALUE` strings -> Params overrides of the model module `mod`."""
  defaults = mod.Params()._asdict()
  out = {}
  for pair in pairs:
    name, sep, value = pair.partition('=')
    if not sep or name not in defaults or name == 'size':
      raise InputError(f'--param {pair!r}: need NAME=VALUE with NAME one of '
                       f'{[k for k in defaults if k != "size"]} (--size sets the size)')
    kind = type(defaults[name])
    try:
      out[name] = kind(value)
    except ValueError:
      raise InputError(f'--param {pair!r}: {value!r} is not a {kind.__name__}') from None
  return out


def simulate(model: str, size: int, seconds: float, batch: int, warmup: float,
             seed: int, overrides: dict[str, Any] | None = None
             ) -> tuple[np.ndarray, Any, Any]:
  """Simulates `batch` retinas; returns (frames f32[B, T, H, W], module, params).

  `overrides`: Params fields to change from the model's defaults.
  """
  mod = waves.get_model(model)
  if size <= 0 or seconds <= 0 or batch <= 0 or warmup < 0:
    raise InputError(f'need size, seconds and batch > 0 and warmup >= 0, got size={size}, '
                     f'seconds={seconds}, batch={batch}, warmup={warmup}')
  params = mod.Params(size=size, **(overrides or {}))
  n_frames = round(seconds / params.frame_dt)
  if n_frames < 1:
    raise InputError(f'seconds={seconds} is less than one frame ({params.frame_dt} s)')
  state = mod.init(jax.random.PRNGKey(seed), batch, params)
  start = time.time()
  last = [start]
  total = warmup + n_frames * params.frame_dt
  # Warm-up: whole chunks (one compiled program) and one remainder.
  n_chunks, rest = divmod(warmup, CHUNK_S)
  for i in range(int(n_chunks)):
    state = jax.block_until_ready(mod.warmup(state, CHUNK_S, params))
    _progress((i + 1) * CHUNK_S, total, start, last)
  if rest > 0:
    state = mod.warmup(state, rest, params)
  # Recording: equal chunks (one compile); the last one's surplus frames are dropped.
  chunk = min(n_frames, round(CHUNK_S / params.frame_dt))
  movie = []
  for i in range(math.ceil(n_frames / chunk)):
    state, frames = mod.advance(state, chunk, params)
    movie.append(np.asarray(frames))
    _progress(warmup + min((i + 1) * chunk, n_frames) * params.frame_dt, total, start, last)
  return np.concatenate(movie, axis=1)[:, :n_frames], mod, params


def _table(summary: dict[str, Any]) -> str:
  """Human-readable statistics."""
  fmt = lambda v: '     n/a' if v is None else f'{v:8.3f}'
  lines = [f"{summary['n_waves']} waves in {summary['n_retinas']} retina(s) x "
           f"{summary['seconds']:.1f} s ({summary['waves_per_min']:.1f} per retina-minute)",
           f"{'':16}{'p10':>8}{'median':>9}{'p90':>9}"]
  for key, name in (('speed_mm_s', 'speed (mm/s)'), ('iwi_s', 'interval (s)'),
                    ('duration_s', 'duration (s)'), ('area_mm2', 'area (mm^2)')):
    lines.append(f'{name:16}' + ' '.join(fmt(summary[f'{key}_{q}'])
                                         for q in ('p10', 'median', 'p90')))
  lines.append(f"coverage {summary['coverage']:.3f} (min {summary['coverage_min']:.3f}), "
               f"mean active fraction {summary['active_fraction_mean']:.3f}, "
               f"frames in a wave {summary['frames_with_wave']:.3f}")
  return '\n'.join(lines)


def _check_min_size(args: argparse.Namespace) -> None:
  if args.min_size < 1:  # checked before a possibly long simulation or conversion
    raise InputError(f'--min-size must be at least 1 pixel-frame, got {args.min_size}')


def _measure_and_write(args: argparse.Namespace, frames: np.ndarray, meta: dict[str, Any], *,
                       threshold: float, frame_dt: float, pixel_mm: float) -> None:
  """Labels and measures the waves of frames f32[B, T, H, W], writes the movie directory
  (movie, labels, meta.json with these settings and the statistics, optional preview.gif)
  into args.out and prints the statistics."""
  result = wave_stats.wave_stats(frames, threshold=threshold, frame_dt=frame_dt,
                                 pixel_mm=pixel_mm, min_size=args.min_size)
  summary = wave_stats.summary(result)
  meta = dict(meta, frame_dt=frame_dt, pixel_mm=pixel_mm, threshold=threshold,
              min_size=args.min_size, shape=list(frames.shape),
              labels='per-frame wave id, unique across the batch; -1 = no wave',
              summary=summary)
  out, gif_seconds = args.out, args.gif_seconds
  movie_io.save_movie(out, frames, result.frame_labels, meta)
  if gif_seconds > 0:
    stride = max(1, round(GIF_SPEEDUP / (GIF_FPS * frame_dt)))
    shown = frames[:16, :round(gif_seconds / frame_dt):stride]
    width = movie_io.tile(shown[:, :1]).shape[-1]
    movie_io.write_gif(paths.join(out, 'preview.gif'), shown, fps=GIF_FPS,
                       scale=max(1, GIF_MAX_PIXELS // width))
  print(f'wrote {out}/{{{movie_io.MOVIE_FILE},{movie_io.LABELS_FILE},'
        f'{movie_io.META_FILE}{",preview.gif" if gif_seconds > 0 else ""}}} '
        f'(movie {frames.shape})')
  print(_table(summary))


def _check_out(args: argparse.Namespace) -> None:
  if paths.is_remote(args.out):  # a missing bucket or no permission: before the work
    paths.check_writable(args.out)


def run_simulate(args: argparse.Namespace) -> None:
  _check_min_size(args)
  _check_out(args)
  overrides = parse_params(waves.get_model(args.model), args.param)
  frames, mod, params = simulate(args.model, args.size, args.seconds, args.batch,
                                 args.warmup, args.seed, overrides)
  meta = dict(model=args.model, params=params._asdict(), seed=args.seed, batch=args.batch,
              seconds=args.seconds, warmup_s=args.warmup)
  _measure_and_write(args, frames, meta, threshold=float(mod.THRESHOLD),
                     frame_dt=params.frame_dt, pixel_mm=float(mod.pixel_mm(params)))


def run_convert(args: argparse.Namespace) -> None:
  _check_min_size(args)
  _check_out(args)
  rec = recorded.load_mea(args.mea)
  frames = recorded.activity_movie(rec, args.frame_dt, args.smooth)[None]
  meta = dict(model='recorded', source=rec.source, age_days=rec.age_days,
              duration_s=rec.duration_s, smooth=args.smooth,
              units='spikes per electrode and frame, box-averaged (rwjax.waves.recorded)')
  _measure_and_write(args, frames, meta, threshold=recorded.THRESHOLD,
                     frame_dt=args.frame_dt, pixel_mm=rec.pitch_mm)


def run_stats(args: argparse.Namespace) -> None:
  if args.recording is not None:
    return mea_cli.run_recording_stats(args)
  if args.movie is None:
    raise InputError('stats needs --movie=FILE (a movie file or directory) or --recording=FILE.h5')
  frames = readers.load_any(args.movie, fmt=args.format, key=args.key, axes=args.axes)
  meta = _meta(args.movie)
  if not (meta or args.model or paths.isdir(args.movie) or args.movie.endswith('.npy')):
    missing = [f'--{k.replace("_", "-")}' for k in ('threshold', 'frame_dt', 'pixel_mm')
               if getattr(args, k) is None]
    if missing:  # a recording: no model's units or pixel size apply
      raise InputError(f'{args.movie!r} is a recording without meta.json: give {missing} '
                       '(the threshold in the movie\'s units, after --background-s / --dff)')
  # Flags first, then the movie's meta.json, then the model's defaults for its size.
  name = args.model or meta.get('model', 'lansdell')
  if name == 'recorded':
    settings = dict(threshold=recorded.THRESHOLD, frame_dt=recorded.FRAME_DT,
                    pixel_mm=recorded.PITCH_MM)
  else:
    mod = waves.get_model(name)
    params = mod.Params(size=frames.shape[-1])
    settings = dict(threshold=mod.THRESHOLD, frame_dt=params.frame_dt,
                    pixel_mm=mod.pixel_mm(params))
  settings['min_size'] = wave_stats.DEFAULT_MIN_SIZE
  for k in settings:
    flag = getattr(args, k)
    settings[k] = flag if flag is not None else meta.get(k, settings[k])
  if not math.isfinite(settings['threshold']):
    raise InputError(f"threshold must be a finite number, got {settings['threshold']}")
  frames = _detection(args, frames, settings)
  summary = wave_stats.summary(wave_stats.wave_stats(frames, **settings))
  if args.json:
    print(json.dumps(summary, allow_nan=False))
  else:
    print(_table(summary))


def _meta(path: str) -> dict[str, Any]:
  """meta.json of a saved movie (directory or .npy); {} for other files."""
  if paths.isdir(path) or path.endswith('.npy'):
    return movie_io.load_meta(path)
  return {}


def _detection(args: argparse.Namespace, frames: np.ndarray, settings: dict) -> np.ndarray:
  """frames (each retina) after stats' optional background subtraction and smoothing."""
  if not (args.background_s > 0 or args.dff or args.smooth_s > 0 or args.smooth_mm > 0):
    return frames
  one = lambda f: recorded_dataset.detection_movie(
      f, frame_dt=settings['frame_dt'], pixel_mm=settings['pixel_mm'],
      background_s=args.background_s, dff=args.dff, smooth_s=args.smooth_s,
      smooth_mm=args.smooth_mm, path=args.movie)
  return np.stack([one(f) for f in frames]) if frames.ndim == 4 else one(frames)


def run_preview(args: argparse.Namespace) -> None:
  frame_dt = args.frame_dt or _meta(args.movie).get('frame_dt', 0.1)
  if not (frame_dt > 0 and args.seconds > 0 and args.speedup > 0):
    raise InputError('--frame-dt, --seconds and --speedup must be positive')
  stride = max(1, round(args.speedup / (GIF_FPS * frame_dt)))
  n = max(1, round(args.seconds / frame_dt))
  if paths.isdir(args.movie) or args.movie.endswith('.npy'):
    frames = readers.load_any(args.movie, fmt=args.format, key=args.key, axes=args.axes)
    frames = frames[..., :n:stride, :, :] if frames.ndim == 3 else frames[:16, :n:stride]
  else:  # read only the frames shown
    with readers.open_movie(args.movie, fmt=args.format, key=args.key, axes=args.axes) as m:
      n = min(n, m.shape[0])
      frames = np.concatenate([m.read(t0, min(n, t0 + 64 * stride))[::stride]
                               for t0 in range(0, n, 64 * stride)])
    if not np.isfinite(frames).all():
      raise InputError(f'{args.movie!r} contains NaN or infinite values in the frames shown')
  width = movie_io.tile(frames[..., :1, :, :]).shape[-1]
  if paths.is_remote(args.out):
    paths.check_writable(os.path.dirname(args.out))
  elif not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
    raise InputError(f'the folder of --out={args.out!r} does not exist')
  movie_io.write_gif(args.out, frames, fps=GIF_FPS, scale=max(1, GIF_MAX_PIXELS // width))
  print(f'wrote {args.out} ({frames.shape[-3]} frames of {frames.shape[-2]}x{frames.shape[-1]}, '
        f'every {stride} of the movie\'s, {args.speedup:g}x real time)')


def _add_noise_command(sub) -> None:
  nz = sub.add_parser('noise', help='a noise movie like a saved movie, with its labels')
  nz.add_argument('--like', required=True, help='a saved movie directory (movie.npy, labels.npy)')
  nz.add_argument('--out', required=True, help='output directory')
  nz.add_argument('--seed', type=int, default=0)
  nz.add_argument('--refine', type=int, default=2,
                  help='corrections of the smoothing widths after the histogram mapping')


def run_noise(args: argparse.Namespace) -> None:
  """movie.npy of rwjax.waves.noise.noise_like(--like's movie), labels.npy copied from --like,
  meta.json: --like's settings (threshold, frame_dt, pixel_mm, ...) and the noise's."""
  from rwjax.waves import noise  # pylint: disable=g-import-not-at-top
  _check_out(args)
  frames = movie_io.load_movie(args.like)
  frames = frames[None] if frames.ndim == 3 else frames
  labels_path = paths.join(args.like, movie_io.LABELS_FILE)
  if not paths.isfile(labels_path):
    raise InputError(f'{labels_path!r} does not exist: --like must be a movie directory written '
                     'by `python -m rwjax.waves simulate` (movie.npy and labels.npy)')
  labels = paths.load_npy(labels_path)
  if labels.size != frames.shape[0] * frames.shape[1]:
    raise InputError(f'{labels_path!r} holds {labels.size} labels for a movie of '
                     f'{frames.shape[0]} x {frames.shape[1]} frames; one label per frame')
  out, report = noise.noise_like(frames, jax.random.PRNGKey(args.seed), refine=args.refine)
  meta = {k: v for k, v in movie_io.load_meta(args.like).items() if k != 'summary'}
  meta.update(noise=dict(like=args.like, seed=args.seed, refine=args.refine, retinas=report),
              labels='copied from the wave movie --like (its waves; this movie has none)')
  movie_io.save_movie(args.out, out, labels.reshape(out.shape[:2]), meta)
  print(f'wrote {args.out}/{{{movie_io.MOVIE_FILE},{movie_io.LABELS_FILE},{movie_io.META_FILE}}}'
        f' (movie {out.shape}); correlation lengths (frames, pixels) wanted -> obtained: '
        + '; '.join(f"{r['want_frames']:.1f}, {r['want_pixels']:.2f} -> {r['got_frames']:.1f}, "
                    f"{r['got_pixels']:.2f}" for r in report))


def main(argv: list[str] | None = None) -> None:
  args = _parse(argv)
  if args.command in mea_cli.COMMANDS:
    return mea_cli.COMMANDS[args.command](args)
  {'simulate': run_simulate, 'convert': run_convert, 'stats': run_stats,
   'preview': run_preview, 'noise': run_noise}[args.command](args)


if __name__ == '__main__':
  cli_main(main)
