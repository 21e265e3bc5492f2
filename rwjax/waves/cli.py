"""Command line for the retinal-wave simulators, recordings and wave statistics.

`python -m rwjax.waves COMMAND`: simulate, stats, preview, convert, survey, compare, fit,
mea-dataset and noise (usage and examples: docs/waves.md; noise: docs/paper_movie.md).
`simulate` (rwjax.waves.simulate.write_movie) and `convert` (rwjax.waves.recorded.write_movie)
write movie.npy, labels.npy, meta.json and preview.gif into --out and print the wave
statistics; `stats` and `preview` read any movie rwjax.waves.readers reads (a movie's
meta.json supplies threshold, frame_dt and pixel size). Long commands report progress on
stderr (rwjax.waves.progress). Bad input prints one `error: ...` line and exits with code 2.
Every path may be a bucket path (gs://BUCKET/...).
"""

import argparse
import json
import math
import os
import sys
import time
from typing import Any

import numpy as np

from rwjax import paths
from rwjax import waves
from rwjax.errors import InputError
from rwjax.waves import compare, correlation, fit as fit_lib, noise, readers, recorded, simulate
from rwjax.waves import dataset as recorded_dataset
from rwjax.waves import movie as movie_io
from rwjax.waves import stats as wave_stats
from rwjax.waves.progress import Progress

CI_KEYS = tuple(f'ci_{d:g}um' for d in correlation.DISTANCES_UM)
_FIT_FLAGS = {'candidates': 'candidates', 'retinas': 'retinas', 'warmup': 'warmup_s',
              'seconds': 'seconds', 'budget': 'budget_s'}  # flag -> fit_lib.SEARCHES key


# Flags as (flag, type, default, help[, extra argparse keywords]): type bool is a switch,
# list a repeatable flag (default []); default ... makes the flag required.
_OUTPUT = [
    ('--min-size', int, wave_stats.DEFAULT_MIN_SIZE,
     'smallest wave (pixel-frames) for the labels and statistics'),
    ('--gif-seconds', float, 60.0, 'seconds of the movie shown in preview.gif (0: no GIF)'),
    ('--out', str, ..., 'output directory')]
_READING = [
    ('--format', str, 'auto', f'auto (from the extension) | {" | ".join(readers.FORMATS)}'),
    ('--key', str, '', ".npz array, HDF5 dataset or MATLAB variable ('' = the only one; "
     "'V' for .mat)"),
    ('--axes', str, 'THW', "stored axis order, e.g. 'HWT' (MATLAB's order for .mat files)")]
_MEASURE = [
    ('--frame-dt', float, recorded.FRAME_DT, 'seconds per frame'),
    ('--smooth', int, recorded.DEFAULT_SMOOTH,
     'box average over this many frames x pixels x pixels'),
    ('--min-size', int, wave_stats.DEFAULT_MIN_SIZE, 'smallest wave (pixel-frames)')]
_JSON = ('--json', bool, False, 'print one JSON object')
_SEED = ('--seed', int, 0, None)


def _sim_flags(warmup, default_note: str) -> list[tuple]:
  """The flags of the subcommands that simulate beside a recording (compare, fit)."""
  return [
      ('--recording', str, ..., 'MEA spike file (.h5)'),
      ('--param', list, None, 'override a model parameter (repeatable), as for simulate',
       dict(metavar='NAME=VALUE')),
      ('--size', int, None, 'lattice side; default: the model spacing over the recording field'),
      ('--warmup', float, warmup, f'simulated s before recording (default: {default_note})'),
      ('--seconds', float, None, f'simulated s per retina (default: {default_note})'),
      _SEED,
      ('--rate-hz', float, None, 'firing rate of a simulated train inside a wave (default: '
       "the recording's burst rate)"),
      *_MEASURE]


_FIT_SEARCH_HELP = (
    'quick: sized for 2 CPU cores; full: for an accelerator (times: docs/performance.md); '
    'the flags below override either. ' + '; '.join(
        f'{name}: ' + ' '.join(f'--{flag}={s[key]:g}' for flag, key in _FIT_FLAGS.items())
        for name, s in fit_lib.SEARCHES.items()))
SUBCOMMANDS = {  # name -> (help, flags); run by COMMANDS[name]
    'simulate': ('simulate retinal waves and save a movie', [
        ('--model', str, 'lansdell', 'lansdell | godfrey'),
        ('--size', int, 64, 'lattice side (cells)'),
        ('--seconds', float, 60.0, 'simulated seconds recorded'),
        ('--batch', int, 1, 'independent retinas'),
        ('--warmup', float, 300.0, 'simulated seconds discarded before recording'),
        _SEED,
        ('--param', list, None, 'override a model parameter, e.g. --param diff=0.01 '
         '(repeatable)', dict(metavar='NAME=VALUE')),
        *_OUTPUT]),
    'convert': ('bin a recorded MEA spike file into a movie', [
        ('--mea', str, ..., 'HDF5 spike file (Maccione et al. 2014 layout)'),
        ('--frame-dt', float, recorded.FRAME_DT, 'seconds per frame'),
        ('--smooth', int, recorded.DEFAULT_SMOOTH,
         'box average over this many frames x electrodes x electrodes'),
        *_OUTPUT]),
    'stats': ('wave statistics of a movie or a recording', [
        ('--movie', str, None, 'movie .npy file or a simulate --out directory'),
        ('--recording', str, None, 'MEA spike file (.h5, any waverepo layout) instead of '
         '--movie'),
        ('--model', str, None, 'lansdell | godfrey | recorded: whose threshold/pixel size '
         'apply (default: meta.json, else lansdell)'),
        ('--threshold', float, None, 'activity threshold'),
        ('--frame-dt', float, None, 'seconds per frame'),
        ('--pixel-mm', float, None, 'pixel spacing (mm)'),
        ('--min-size', int, None, 'smallest wave (pixel-frames)'),
        ('--smooth', int, recorded.DEFAULT_SMOOTH,
         '--recording: box average over frames x pixels x pixels'),
        _JSON, *_READING,
        ('--background-s', float, 0.0,
         "subtract each pixel's rolling median over this many seconds (0: off)"),
        ('--dff', bool, False, 'dF/F against that median instead'),
        ('--smooth-s', float, 0.0, 'Gaussian smoothing sigma in time (s)'),
        ('--smooth-mm', float, 0.0, 'Gaussian smoothing sigma in space (mm)')]),
    'survey': ('statistics of a folder of MEA recordings by age', [
        ('--folder', str, ..., 'folder of .h5 MEA spike files'),
        ('--groups', str, 'day', 'group by postnatal day, or by stage (II: <= P9, III: >= P10)',
         dict(choices=('day', 'stage'))),
        _JSON,
        ('--out', str, None, 'also write the survey JSON here'),
        *_MEASURE]),
    'compare': ('a simulator beside a recording', [
        ('--model', str, 'lansdell', 'lansdell | godfrey'),
        ('--batch', int, 2, 'simulated retinas'),
        ('--out', str, 'out/compare', 'output directory'),
        _JSON, *_sim_flags(300.0, "300 s of warm-up, the recording's duration")]),
    'fit': ('fit Lansdell model parameters to a recording', [
        ('--model', str, 'lansdell', 'lansdell (the only fittable model)'),
        ('--fit', list, None, f'parameter to fit (repeatable; default '
         f'{list(fit_lib.DEFAULT_NAMES)})', dict(metavar='NAME')),
        ('--bounds', list, None, 'search range of a fitted parameter (repeatable)',
         dict(metavar='NAME=LOW:HIGH')),
        ('--search', str, 'quick', _FIT_SEARCH_HELP, dict(choices=tuple(fit_lib.SEARCHES))),
        ('--candidates', int, None, 'parameter sets per generation'),
        ('--retinas', int, None, 'retinas per candidate'),
        ('--budget', float, None,
         'simulated retina-seconds for the whole fit (warm-up included)'),
        ('--tol', float, 0.05,
         'converged when every spread is below this (fraction of log-range)'),
        ('--out', str, 'out/fit', 'output directory'),
        *_sim_flags(None, "the --search's")]),
    'mea-dataset': ('several MEA recordings -> one movie directory', [
        ('--folder', str, None, 'folder of .h5 MEA spike files'),
        ('--mea', list, None, 'an .h5 file (repeatable)'),
        ('--ages', str, None, 'keep recordings of these postnatal days (inclusive)',
         dict(metavar='LOW:HIGH')),
        ('--segment-s', float, 600.0,
         'seconds per row of movie.npy (each row is z-scored on its own)'),
        ('--out', str, ..., 'output movie directory'),
        *_MEASURE]),
    'preview': ('animated GIF of any movie file', [
        ('--movie', str, ..., 'a movie file or a simulate --out directory'),
        ('--out', str, ..., 'the GIF to write'),
        ('--frame-dt', float, None, 'seconds per frame (default: meta.json, else 0.1)'),
        ('--seconds', float, 60.0, 'seconds of the movie shown'),
        ('--speedup', float, movie_io.GIF_SPEEDUP, 'playback speed / real time'),
        *_READING]),
    'noise': ('a noise movie like a saved movie, with its labels', [
        ('--like', str, ..., 'a saved movie directory (movie.npy, labels.npy)'),
        ('--out', str, ..., 'output directory'),
        _SEED,
        ('--refine', int, 2, 'corrections of the smoothing widths after the histogram mapping')]),
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog='python -m rwjax.waves', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest='command', required=True)
  for command, (summary, flags) in SUBCOMMANDS.items():
    p = sub.add_parser(command, help=summary)
    for flag, kind, default, text, *extra in flags:
      kw = dict(help=text, **(extra[0] if extra else {}))
      if kind is bool:
        p.add_argument(flag, action='store_true', **kw)
      elif kind is list:
        p.add_argument(flag, action='append', default=[], **kw)
      else:
        p.add_argument(flag, type=kind, default=None if default is ... else default,
                       required=default is ..., **kw)
  return parser.parse_args(argv)


def parse_params(mod, pairs: list[str]) -> dict[str, Any]:
  """`NAME=VALUE` strings -> Params overrides of the model module `mod`."""
  out = {}
  for pair in pairs:
    name, sep, value = pair.partition('=')
    if not sep:
      raise InputError(f'--param {pair!r}: need NAME=VALUE, e.g. --param diff=0.01')
    out[name] = value
  return simulate.typed_params(mod, out, '--param ')


def _check_measure_args(args) -> None:
  if args.min_size < 1 or args.smooth < 1 or not args.frame_dt > 0:
    raise InputError(f'need --min-size >= 1, --smooth >= 1 and --frame-dt > 0, got '
                     f'{args.min_size}, {args.smooth}, {args.frame_dt}')


def _check_out(out) -> None:
  """A bucket --out that cannot be written to: one message before the work (rwjax.paths)."""
  if out and paths.is_remote(out):
    paths.check_writable(out)


def _jsonable(x):
  if isinstance(x, dict):
    return {k: _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, (np.floating, float)):
    return float(x) if np.isfinite(x) else None
  if isinstance(x, np.integer):
    return int(x)
  return x


def _emit(args, result, text: str) -> None:
  """Prints `result` as one JSON object with --json, else `text`."""
  print(json.dumps(_jsonable(result), allow_nan=False) if args.json else text)


def _curve(m: compare.Measured, max_um: float = 1500.0) -> dict[str, list]:
  centres, mean, pairs = correlation.by_distance(m.pairs, max_um=max_um)
  return dict(distance_um=centres.tolist(), ci=mean.tolist(), pairs=pairs.tolist())


def _print_written(out: str, meta: dict[str, Any], gif: bool) -> None:
  print(f'wrote {out}/{{{movie_io.MOVIE_FILE},{movie_io.LABELS_FILE},'
        f'{movie_io.META_FILE}{",preview.gif" if gif else ""}}} '
        f'(movie {tuple(meta["shape"])})')
  print(wave_stats.table(meta['summary']))


def run_simulate(args) -> None:
  params = parse_params(waves.get_model(args.model), args.param)
  meta = simulate.write_movie(args.out, model=args.model, size=args.size, seconds=args.seconds,
                              batch=args.batch, warmup=args.warmup, seed=args.seed,
                              params=params, min_size=args.min_size,
                              gif_seconds=args.gif_seconds)
  _print_written(args.out, meta, args.gif_seconds > 0)


def run_convert(args) -> None:
  meta = recorded.write_movie(args.out, args.mea, frame_dt=args.frame_dt, smooth=args.smooth,
                              min_size=args.min_size, gif_seconds=args.gif_seconds)
  _print_written(args.out, meta, args.gif_seconds > 0)


def _meta(path: str) -> dict[str, Any]:
  """meta.json of a saved movie (directory or .npy); {} for other files."""
  if paths.isdir(path) or path.endswith('.npy'):
    return movie_io.load_meta(path)
  return {}


def _detection(args, frames: np.ndarray, settings: dict) -> np.ndarray:
  """frames (each retina) after stats' optional background subtraction and smoothing."""
  if not (args.background_s > 0 or args.dff or args.smooth_s > 0 or args.smooth_mm > 0):
    return frames
  one = lambda f: recorded_dataset.detection_movie(
      f, frame_dt=settings['frame_dt'], pixel_mm=settings['pixel_mm'],
      background_s=args.background_s, dff=args.dff, smooth_s=args.smooth_s,
      smooth_mm=args.smooth_mm, path=args.movie)
  return np.stack([one(f) for f in frames]) if frames.ndim == 4 else one(frames)


def run_stats(args) -> None:
  if args.recording is not None:
    return run_recording_stats(args)
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
  _emit(args, summary, wave_stats.table(summary))


def run_recording_stats(args) -> None:
  """`stats --recording=FILE.h5 [--json]`."""
  if args.frame_dt is None:
    args.frame_dt = recorded.FRAME_DT
  if args.min_size is None:
    args.min_size = wave_stats.DEFAULT_MIN_SIZE
  _check_measure_args(args)
  rec = recorded.load_mea(args.recording)
  m = compare.measure(rec, args.frame_dt, args.smooth, args.min_size)
  out = dict(m.summary, source=rec.source, array=rec.array, duration_s=rec.duration_s,
             ci_by_distance=_curve(m))
  _emit(args, out, f'{rec.source}: {rec.array or "?"} ({rec.layout}, {rec.shape[0]}x'
        f'{rec.shape[1]} raster, {rec.pitch_mm * 1000:g} um), P{rec.age_days}, '
        f'{rec.duration_s:.0f} s, {rec.n_trains} trains\n'
        + compare.table({'recording': m.summary}))


def run_preview(args) -> None:
  frame_dt = args.frame_dt or _meta(args.movie).get('frame_dt', 0.1)
  if not (frame_dt > 0 and args.seconds > 0 and args.speedup > 0):
    raise InputError('--frame-dt, --seconds and --speedup must be positive')
  stride = max(1, round(args.speedup / (movie_io.GIF_FPS * frame_dt)))
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
  movie_io.write_gif(args.out, frames, fps=movie_io.GIF_FPS,
                     scale=max(1, movie_io.GIF_MAX_PIXELS // width))
  print(f'wrote {args.out} ({frames.shape[-3]} frames of {frames.shape[-2]}x{frames.shape[-1]}, '
        f'every {stride} of the movie\'s, {args.speedup:g}x real time)')


def _age_group(age, groups: str) -> str:
  if age is None:
    return 'unknown'
  if groups == 'stage':
    return 'II (<=P9)' if age <= 9 else 'III (>=P10)'
  return f'P{age}'


def survey(folder: str, groups: str = 'day', frame_dt: float = recorded.FRAME_DT,
           smooth: int = recorded.DEFAULT_SMOOTH, min_size: int = wave_stats.DEFAULT_MIN_SIZE,
           progress: str | None = None) -> dict[str, Any]:
  """Per age group: pooled waves' median and IQR of speed, interval, duration and area;
  median and IQR over the recordings of their correlation index at 100/200/400 um."""
  if not paths.isdir(folder):
    raise InputError(f'--folder {folder!r} is not a directory of .h5 MEA spike files')
  files_h5 = paths.glob(paths.join(folder, '*.h5'))
  if not files_h5:
    raise InputError(f'no .h5 files in {folder!r}')
  per_group: dict[str, dict[str, list]] = {}
  files = []
  report = Progress(progress, len(files_h5), 'recordings')
  for i, path in enumerate(files_h5):
    rec = recorded.load_mea(path)
    m = compare.measure(rec, frame_dt, smooth, min_size)
    g = per_group.setdefault(_age_group(rec.age_days, groups),
                             {k: [] for k in compare.STATS + CI_KEYS + ('files',)})
    for key in compare.STATS:
      g[key].append(getattr(m.waves, key))
    for key in CI_KEYS:
      g[key].append(m.summary[key])
    g['files'].append(os.path.basename(path))
    files.append(dict(file=os.path.basename(path), age_days=rec.age_days,
                      **{k: m.summary.get(k) for k in ('n_waves', 'seconds') + CI_KEYS},
                      **{f'{k}_median': m.summary.get(f'{k}_median') for k in compare.STATS}))
    report(i + 1, f'{os.path.basename(path)} (P{rec.age_days}): {m.summary["n_waves"]} waves')
  report.finish()
  table = {}
  for name in sorted(per_group, key=lambda g: (len(g), g)):
    g = per_group[name]
    row: dict[str, Any] = dict(recordings=len(g['files']))
    for key in compare.STATS:
      x = np.concatenate(g[key])
      row['n_' + key] = int(np.isfinite(x).sum())
      row[key] = wave_stats.quantiles(x, (0.25, 0.5, 0.75))
    for key in CI_KEYS:
      row[key] = wave_stats.quantiles([v for v in g[key] if v is not None], (0.25, 0.5, 0.75))
    table[name] = row
  return dict(groups=table, files=files, grouping=groups, ci_dt_s=correlation.DT,
              note='wave statistics: q25, median, q75 over the pooled waves (intervals: '
              'pixels) of the group; ci_*: q25, median, q75 over the recordings of their '
              'mean CI in the 100 um bin around that distance')


def survey_table(result: dict[str, Any]) -> str:
  fmt = lambda q: 'n/a' if q is None else f'{q[1]:.3g} ({q[0]:.3g}-{q[2]:.3g})'
  cols = compare.STATS + CI_KEYS
  head = ['group', 'n'] + [compare.LABELS.get(k, k.replace('ci_', 'CI ')) for k in cols]
  lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
  for name, row in result['groups'].items():
    lines.append('| ' + ' | '.join([name, str(row['recordings'])] +
                                   [fmt(row[k]) for k in cols]) + ' |')
  return '\n'.join(lines)


def run_survey(args) -> None:
  _check_measure_args(args)
  _check_out(args.out and os.path.dirname(args.out))
  result = survey(args.folder, args.groups, args.frame_dt, args.smooth, args.min_size,
                  progress='survey')
  if args.out:
    paths.makedirs(os.path.dirname(paths.abspath(args.out)))
    paths.write_json(args.out, _jsonable(result))
  _emit(args, result, survey_table(result))


def _recording_and_target(args):
  """Loads and measures the recording; InputError if it is too short or sparse."""
  _check_measure_args(args)
  rec = recorded.load_mea(args.recording)
  m = compare.measure(rec, args.frame_dt, args.smooth, args.min_size)
  compare.check_measurable(m, args.recording)
  return rec, m


def run_compare(args) -> None:
  mod = waves.get_model(args.model)
  overrides = parse_params(mod, args.param)
  if args.batch < 1 or args.warmup < 0 or (args.seconds is not None and args.seconds <= 0):
    raise InputError('need --batch >= 1, --warmup >= 0 and --seconds > 0')
  _check_out(args.out)
  rec, m_rec = _recording_and_target(args)
  start = time.time()
  m_sim, params, rate = compare.simulate_matched(
      args.model, rec, overrides, batch=args.batch, seconds=args.seconds,
      warmup_s=args.warmup, seed=args.seed, size=args.size, rate_hz=args.rate_hz,
      frame_dt=args.frame_dt, smooth=args.smooth, min_size=args.min_size,
      progress='compare')
  wall = time.time() - start
  tested = compare.tests(m_rec, m_sim)
  paths.makedirs(args.out)
  result = dict(recording=dict(m_rec.summary, source=rec.source,
                               ci_by_distance=_curve(m_rec)),
                model=dict(m_sim.summary, name=args.model, params=params._asdict(),
                           batch=args.batch, warmup_s=args.warmup, rate_hz=rate,
                           ci_by_distance=_curve(m_sim), wall_s=wall),
                tests=tested,
                tests_note='mannwhitney_p: two-sided Mann-Whitney U; ks_p: two-sample '
                'Kolmogorov-Smirnov; per wave (speed, duration, area), per pixel '
                '(interval), per pair (CI); samples are not independent (module '
                'rwjax.waves.compare)')
  paths.write_json(paths.join(args.out, 'compare.json'), _jsonable(result))
  compare.figure(paths.join(args.out, 'compare.png'),
                 {f'recording P{rec.age_days}': m_rec, args.model: m_sim},
                 title=os.path.basename(rec.source))
  _emit(args, result, compare.table({'recording': m_rec.summary, args.model: m_sim.summary},
                                    tested) + f'\nwrote {args.out}/compare.json, compare.png '
        f'({args.batch} retinas of {params.size}x{params.size}, {wall:.0f} s)')


def _parse_bounds(pairs: list[str]) -> dict[str, tuple[float, float]]:
  out = {}
  for pair in pairs:
    name, sep, rng = pair.partition('=')
    lo, sep2, hi = rng.partition(':')
    try:
      if not (sep and sep2):
        raise ValueError
      out[name] = (float(lo), float(hi))
    except ValueError:
      raise InputError(f'--bounds {pair!r}: need NAME=LOW:HIGH, e.g. diff=0.001:0.03') \
          from None
  return out


def fit_flags(fitted: dict[str, float], model: str = 'lansdell') -> dict[str, list[str]]:
  """The fitted values as --param flags (simulate, compare) and config overrides (train)."""
  return dict(param=[f'--param={k}={v:.6g}' for k, v in fitted.items()],
              config=[f'--config.data.sim_params.{model}.{k}={v:.6g}'
                      for k, v in fitted.items()])


def run_fit(args) -> None:
  if args.model != 'lansdell':
    raise InputError(f'fit supports --model=lansdell only (its parameters batch on the '
                     f'accelerator), got {args.model!r}')
  overrides = parse_params(fit_lib.lansdell, args.param)
  names = tuple(args.fit) or fit_lib.DEFAULT_NAMES
  bounds = _parse_bounds(args.bounds)
  extra = [n for n in bounds if n not in names]
  if extra:
    raise InputError(f'--bounds given for {extra}, which are not fitted (--fit {names})')
  search = dict(fit_lib.SEARCHES[args.search])
  search.update({key: getattr(args, flag) for flag, key in _FIT_FLAGS.items()
                 if getattr(args, flag) is not None})
  if search['warmup_s'] < 0 or not search['seconds'] > 0 or not search['budget_s'] > 0:
    raise InputError('need --warmup >= 0, --seconds > 0 and --budget > 0')
  if not 0 < args.tol < 1:
    raise InputError(f'--tol must be in (0, 1), got {args.tol}')
  fit_lib.check_names_bounds(names, None, bounds)
  _check_out(args.out)
  rec, m_rec = _recording_and_target(args)
  _, base = compare.matched_params('lansdell', rec, overrides, args.size, args.frame_dt)
  start_values = {n: getattr(base, n) for n in names}
  fit_lib.check_names_bounds(names, start_values, bounds)
  rate = args.rate_hz or compare.burst_rate(rec, args.frame_dt, args.smooth, args.min_size)
  result = fit_lib.fit(
      m_rec.summary, rec, names, start_values, bounds, base=base, seed=args.seed,
      rate_hz=rate, tol=args.tol, frame_dt=args.frame_dt, smooth=args.smooth,
      min_size=args.min_size, progress='fit', **search)
  paths.makedirs(args.out)
  out = result.to_json()
  out.update(recording=rec.source, rate_hz=rate, flags=fit_flags(result.fitted),
             lattice=base.size, search=dict(search, name=args.search),
             distance_note='sum of squared log-ratios of median speed, interval, area and '
             '(weight 1/3 each) CI at 100/200/400 um (rwjax.waves.fit)')
  paths.write_json(paths.join(args.out, 'fit.json'), _jsonable(out))
  # One flag per line: `python -m rwjax.train ... $(cat DIR/config_flags.txt)`,
  # `python -m rwjax.waves simulate ... $(cat DIR/param_flags.txt)`.
  for kind in ('config', 'param'):
    paths.write_atomic(paths.join(args.out, f'{kind}_flags.txt'),
                       '\n'.join(out['flags'][kind]) + '\n')
  compare.figure(paths.join(args.out, 'fit.png'),
                 {f'recording P{rec.age_days}': m_rec, 'start': result.start_measured,
                  'fitted': result.fitted_measured},
                 title=f'fit of {", ".join(names)} to {os.path.basename(rec.source)}')
  print(compare.table({'recording': m_rec.summary, 'start': result.start_summary,
                       'fitted': result.fitted_summary}))
  print('parameter        start     fitted   bounds')
  for n in names:
    print(f'{n:12} {result.start[n]:10.4g} {result.fitted[n]:10.4g}   '
          f'[{result.bounds[n][0]:g}, {result.bounds[n][1]:g}]')
  print(f'distance {result.start_distance:.4f} -> {result.fitted_distance:.4f}; '
        f'{result.generations} generations x {search["candidates"]} candidates x '
        f'{search["retinas"]} retinas ({result.simulated_s:.0f} simulated s) in '
        f'{result.wall_s:.0f} s ({result.candidates_per_s:.2f} candidates/s)')
  print(f'wrote {args.out}/fit.json, fit.png, config_flags.txt, param_flags.txt; use: '
        f'{" ".join(out["flags"]["config"])}')
  if not result.converged:  # a result all the same: the best candidate of the budget
    print(f'warning: the fit did not converge within --budget={search["budget_s"]:g} '
          f'simulated s (largest spread {max(result.history[-1]["spread"]):.3f} > '
          f'--tol={args.tol}); {args.out}/fit.json holds its best result, marked '
          '"converged": false; raise --budget or --candidates, or use --search=full',
          file=sys.stderr)


def _ages(text: str | None) -> tuple[int, int] | None:
  if text is None:
    return None
  lo, sep, hi = text.partition(':')
  try:
    return int(lo), int(hi if sep else lo)
  except ValueError:
    raise InputError(f'--ages {text!r}: need LOW:HIGH postnatal days, e.g. 2:9') from None


def build_dataset(files: list[str], segment_s: float, ages=None,
                  frame_dt: float = recorded.FRAME_DT, smooth: int = recorded.DEFAULT_SMOOTH,
                  min_size: int = wave_stats.DEFAULT_MIN_SIZE, progress: str | None = None):
  """Recordings -> (movie f32[B, T, H, W], labels i32[B, T], sources): each recording's
  activity movie cut into segments of segment_s (a shorter tail is dropped), one row each;
  wave labels found per recording, unique across rows (-1 = no wave)."""
  n_seg = round(segment_s / frame_dt)
  if n_seg < 2:
    raise InputError(f'--segment-s={segment_s} is under two frames of {frame_dt} s')
  rows, labels, used, shape = [], [], [], None
  offset = 0
  report = Progress(progress, len(files), 'recordings')
  for i, path in enumerate(files):
    report(i, os.path.basename(path))
    rec = recorded.load_mea(path)
    if ages is not None and (rec.age_days is None or not ages[0] <= rec.age_days <= ages[1]):
      continue
    if shape is not None and rec.shape != shape:
      raise InputError(f'{path} has a {rec.shape} raster, the others {shape}; one dataset '
                       'needs one raster size')
    shape = rec.shape
    movie = recorded.activity_movie(rec, frame_dt, smooth)
    lab = wave_stats.frame_labels(movie, recorded.THRESHOLD, min_size)
    k = movie.shape[0] // n_seg
    if k == 0:
      continue
    lab = np.where(lab >= 0, lab + offset, -1)
    offset = int(lab.max()) + 1 if (lab >= 0).any() else offset
    rows.append(movie[:k * n_seg].reshape(k, n_seg, *movie.shape[1:]))
    labels.append(lab[:k * n_seg].reshape(k, n_seg))
    used.append(dict(file=rec.source, age_days=rec.age_days, segments=k))
  report.finish(note=f'{len(used)} used')
  if not rows:
    raise InputError(f'no recording (of {len(files)}) is at least --segment-s={segment_s} s '
                     f'long{"" if ages is None else f" at ages P{ages[0]}-P{ages[1]}"}')
  return np.concatenate(rows), np.concatenate(labels).astype(np.int32), used, shape


def run_dataset(args) -> None:
  _check_measure_args(args)
  _check_out(args.out)
  files = list(args.mea)
  if args.folder:
    if not paths.isdir(args.folder):
      raise InputError(f'--folder {args.folder!r} is not a directory')
    files += paths.glob(paths.join(args.folder, '*.h5'))
  if not files:
    raise InputError('dataset needs --folder=DIR or --mea=FILE.h5')
  movie, labels, used, _ = build_dataset(files, args.segment_s, _ages(args.ages),
                                         args.frame_dt, args.smooth, args.min_size,
                                         progress='mea-dataset')
  pitch = recorded.load_mea(used[0]['file']).pitch_mm
  meta = dict(model='recorded', sources=used, segment_s=args.segment_s, smooth=args.smooth,
              frame_dt=args.frame_dt, pixel_mm=pitch, threshold=recorded.THRESHOLD,
              min_size=args.min_size, shape=list(movie.shape),
              labels='per-frame wave id, unique across rows; -1 = no wave',
              units='spikes per electrode and frame, box-averaged (rwjax.waves.recorded)')
  movie_io.save_movie(args.out, movie, labels, meta)
  print(f'wrote {args.out}/movie.npy {movie.shape} and labels.npy from {len(used)} '
        f'recording(s); {int(labels.max()) + 1} waves, {(labels >= 0).mean():.3f} of frames '
        'in a wave')


def run_noise(args) -> None:
  """rwjax.waves.noise.write_movie of --like into --out."""
  _check_out(args.out)
  meta = noise.write_movie(args.like, args.out, seed=args.seed, refine=args.refine)
  print(f'wrote {args.out}/{{{movie_io.MOVIE_FILE},{movie_io.LABELS_FILE},{movie_io.META_FILE}}};'
        ' correlation lengths (frames, pixels) wanted -> obtained: ' + '; '.join(
            f"{r['want_frames']:.1f}, {r['want_pixels']:.2f} -> {r['got_frames']:.1f}, "
            f"{r['got_pixels']:.2f}" for r in meta['noise']['retinas']))


COMMANDS = {'simulate': run_simulate, 'convert': run_convert, 'stats': run_stats,
            'preview': run_preview, 'survey': run_survey, 'compare': run_compare,
            'fit': run_fit, 'mea-dataset': run_dataset, 'noise': run_noise}


def main(argv: list[str] | None = None) -> None:
  args = _parse(argv)
  COMMANDS[args.command](args)
