"""Subcommands of `python -m rwjax.waves` that measure recordings and set simulators
beside them (rwjax.waves.compare, rwjax.waves.fit):

  stats --recording=FILE.h5 [--json]      wave statistics and correlation index of a recording
  survey --folder=DIR [--json]            per age group, median (IQR) over the recordings
  compare --model=lansdell|godfrey --recording=FILE.h5 [--param NAME=VALUE ...] [--out=DIR]
  fit --model=lansdell --recording=FILE.h5 [--fit NAME ...] [--bounds NAME=LOW:HIGH ...]
      [--budget=SIMULATED_S] [--out=DIR]
  mea-dataset --folder=DIR [--ages=2:9] --out=DIR  several recordings -> one movie directory
      (segments of --segment-s as the rows of movie.npy, labels unique), for
      configs/pretrain_mea.py

(`stats --recording` is the `stats` subcommand with a recording instead of a movie.)
"""

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np

from rwjax import paths
from rwjax import waves
from rwjax.errors import InputError
from rwjax.waves import compare, correlation, fit as fit_lib, recorded
from rwjax.waves import stats as wave_stats

SURVEY_KEYS = ('speed_mm_s', 'iwi_s', 'duration_s', 'area_mm2')
CI_KEYS = tuple(f'ci_{d:g}um' for d in correlation.DISTANCES_UM)


def _measure_args(p: argparse.ArgumentParser) -> None:
  p.add_argument('--frame-dt', type=float, default=recorded.FRAME_DT, help='seconds per frame')
  p.add_argument('--smooth', type=int, default=recorded.DEFAULT_SMOOTH,
                 help='box average over this many frames x pixels x pixels')
  p.add_argument('--min-size', type=int, default=wave_stats.DEFAULT_MIN_SIZE,
                 help='smallest wave (pixel-frames)')


def add_stats_args(st: argparse.ArgumentParser) -> None:
  """`stats --recording`: the flags the movie form does not have."""
  st.add_argument('--recording', default=None,
                  help='MEA spike file (.h5, any waverepo layout) instead of --movie')
  st.add_argument('--smooth', type=int, default=recorded.DEFAULT_SMOOTH,
                  help='--recording: box average over frames x pixels x pixels')


def _sim_args(p: argparse.ArgumentParser, seconds: float | None) -> None:
  p.add_argument('--recording', required=True, help='MEA spike file (.h5)')
  p.add_argument('--param', action='append', default=[], metavar='NAME=VALUE',
                 help='override a model parameter (repeatable), as for simulate')
  p.add_argument('--size', type=int, default=None,
                 help='lattice side; default: the model spacing over the recording field')
  p.add_argument('--warmup', type=float, default=300.0, help='simulated s before recording')
  p.add_argument('--seconds', type=float, default=seconds,
                 help='simulated s per retina (default: the recording\'s duration)')
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--rate-hz', type=float, default=None,
                 help='firing rate of a simulated train inside a wave (default: the '
                 "recording's burst rate)")
  _measure_args(p)


def add_commands(sub) -> None:
  """Adds survey, compare and fit to the subparsers of `python -m rwjax.waves`."""
  sv = sub.add_parser('survey', help='statistics of a folder of MEA recordings by age')
  sv.add_argument('--folder', required=True, help='folder of .h5 MEA spike files')
  sv.add_argument('--groups', default='day', choices=('day', 'stage'),
                  help='group by postnatal day, or by stage (II: <= P9, III: >= P10)')
  sv.add_argument('--json', action='store_true', help='print one JSON object')
  sv.add_argument('--out', default=None, help='also write the survey JSON here')
  _measure_args(sv)
  cp = sub.add_parser('compare', help='a simulator beside a recording')
  cp.add_argument('--model', default='lansdell', help='lansdell | godfrey')
  cp.add_argument('--batch', type=int, default=2, help='simulated retinas')
  cp.add_argument('--out', default='out/compare', help='output directory')
  cp.add_argument('--json', action='store_true', help='print one JSON object')
  _sim_args(cp, seconds=None)
  ft = sub.add_parser('fit', help='fit Lansdell model parameters to a recording')
  ft.add_argument('--model', default='lansdell', help='lansdell (the only fittable model)')
  ft.add_argument('--fit', action='append', default=[], metavar='NAME',
                  help=f'parameter to fit (repeatable; default {list(fit_lib.DEFAULT_NAMES)})')
  ft.add_argument('--bounds', action='append', default=[], metavar='NAME=LOW:HIGH',
                  help='search range of a fitted parameter (repeatable)')
  ft.add_argument('--candidates', type=int, default=16, help='parameter sets per generation')
  ft.add_argument('--retinas', type=int, default=2, help='retinas per candidate')
  ft.add_argument('--budget', type=float, default=2e5,
                  help='simulated retina-seconds for the whole fit (warm-up included)')
  ft.add_argument('--tol', type=float, default=0.05,
                  help='converged when every spread is below this (fraction of log-range)')
  ft.add_argument('--out', default='out/fit', help='output directory')
  _sim_args(ft, seconds=300.0)
  ds = sub.add_parser('mea-dataset', help='several MEA recordings -> one movie directory')
  ds.add_argument('--folder', default=None, help='folder of .h5 MEA spike files')
  ds.add_argument('--mea', action='append', default=[], help='an .h5 file (repeatable)')
  ds.add_argument('--ages', default=None, metavar='LOW:HIGH',
                  help='keep recordings of these postnatal days (inclusive)')
  ds.add_argument('--segment-s', type=float, default=600.0,
                  help='seconds per row of movie.npy (each row is z-scored on its own)')
  ds.add_argument('--out', required=True, help='output movie directory')
  _measure_args(ds)


def _check_measure_args(args) -> None:
  if args.min_size < 1 or args.smooth < 1 or not args.frame_dt > 0:
    raise InputError(f'need --min-size >= 1, --smooth >= 1 and --frame-dt > 0, got '
                     f'{args.min_size}, {args.smooth}, {args.frame_dt}')


def _check_out(out) -> None:
  """A bucket --out that cannot be written to: one message before the work (rwjax.paths)."""
  if out and paths.is_remote(out):
    paths.check_writable(out)


def _curve(m: compare.Measured, max_um: float = 1500.0) -> dict[str, list]:
  centres, mean, pairs = correlation.by_distance(m.pairs, max_um=max_um)
  return dict(distance_um=centres.tolist(), ci=mean.tolist(), pairs=pairs.tolist())


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


def run_recording_stats(args) -> None:
  """`stats --recording=FILE.h5 [--json]`."""
  frame_dt = args.frame_dt if args.frame_dt is not None else recorded.FRAME_DT
  min_size = args.min_size if args.min_size is not None else wave_stats.DEFAULT_MIN_SIZE
  if min_size < 1 or args.smooth < 1 or not frame_dt > 0:
    raise InputError('need --min-size >= 1, --smooth >= 1 and --frame-dt > 0')
  rec = recorded.load_mea(args.recording)
  m = compare.measure(rec, frame_dt, args.smooth, min_size)
  out = dict(m.summary, source=rec.source, array=rec.array, duration_s=rec.duration_s,
             ci_by_distance=_curve(m))
  if args.json:
    print(json.dumps(_jsonable(out), allow_nan=False))
  else:
    print(f'{rec.source}: {rec.array or "?"} ({rec.layout}, {rec.shape[0]}x{rec.shape[1]} '
          f'raster, {rec.pitch_mm * 1000:g} um), P{rec.age_days}, {rec.duration_s:.0f} s, '
          f'{rec.n_trains} trains')
    print(compare.table({'recording': m.summary}))


def _age_group(age, groups: str) -> str:
  if age is None:
    return 'unknown'
  if groups == 'stage':
    return 'II (<=P9)' if age <= 9 else 'III (>=P10)'
  return f'P{age}'


def survey(folder: str, groups: str = 'day', frame_dt: float = recorded.FRAME_DT,
           smooth: int = recorded.DEFAULT_SMOOTH,
           min_size: int = wave_stats.DEFAULT_MIN_SIZE, log=None) -> dict[str, Any]:
  """Per age group: pooled waves' median and IQR of speed, interval, duration and area;
  median and IQR over the recordings of their correlation index at 100/200/400 um."""
  if not paths.isdir(folder):
    raise InputError(f'--folder {folder!r} is not a directory of .h5 MEA spike files')
  files_h5 = paths.glob(paths.join(folder, '*.h5'))
  if not files_h5:
    raise InputError(f'no .h5 files in {folder!r}')
  per_group: dict[str, dict[str, list]] = {}
  files = []
  for path in files_h5:
    start = time.time()
    rec = recorded.load_mea(path)
    m = compare.measure(rec, frame_dt, smooth, min_size)
    g = per_group.setdefault(_age_group(rec.age_days, groups),
                             {k: [] for k in SURVEY_KEYS + CI_KEYS + ('files',)})
    for key in SURVEY_KEYS:
      g[key].append(getattr(m.waves, key))
    for key in CI_KEYS:
      g[key].append(m.summary[key])
    g['files'].append(os.path.basename(path))
    files.append(dict(file=os.path.basename(path), age_days=rec.age_days,
                      **{k: m.summary.get(k) for k in ('n_waves', 'seconds') + CI_KEYS},
                      **{f'{k}_median': m.summary.get(f'{k}_median') for k in SURVEY_KEYS}))
    if log:
      log(f'survey: {os.path.basename(path)} (P{rec.age_days}): {m.summary["n_waves"]} '
          f'waves, {time.time() - start:.0f} s')
  table = {}
  order = sorted(per_group, key=lambda g: (len(g), g))
  for name in order:
    g = per_group[name]
    row: dict[str, Any] = dict(recordings=len(g['files']))
    for key in SURVEY_KEYS:
      x = np.concatenate(g[key])
      x = x[np.isfinite(x)]
      row['n_' + key] = int(x.size)
      row[key] = [float(v) for v in np.quantile(x, (0.25, 0.5, 0.75))] if x.size else None
    for key in CI_KEYS:
      x = np.asarray([v for v in g[key] if v is not None], np.float64)
      row[key] = [float(v) for v in np.quantile(x, (0.25, 0.5, 0.75))] if x.size else None
    table[name] = row
  return dict(groups=table, files=files, grouping=groups, ci_dt_s=correlation.DT,
              note='wave statistics: q25, median, q75 over the pooled waves (intervals: '
              'pixels) of the group; ci_*: q25, median, q75 over the recordings of their '
              'mean CI in the 100 um bin around that distance')


def survey_table(result: dict[str, Any]) -> str:
  fmt = lambda q: 'n/a' if q is None else f'{q[1]:.3g} ({q[0]:.3g}-{q[2]:.3g})'
  cols = SURVEY_KEYS + CI_KEYS
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
                  log=lambda s: print(s, file=sys.stderr, flush=True))
  if args.out:
    paths.makedirs(os.path.dirname(paths.abspath(args.out)))
    paths.write_json(args.out, _jsonable(result))
  if args.json:
    print(json.dumps(_jsonable(result), allow_nan=False))
  else:
    print(survey_table(result))


def _progress(prefix: str):
  last = [0.0]

  def report(done, total):
    now = time.time()
    if done < total and now - last[0] < 5:
      return
    last[0] = now
    print(f'{prefix}: {100 * done / total:5.1f}% ({done:.0f}/{total:.0f} simulated s)',
          file=sys.stderr, flush=True)
  return report


def _recording_and_target(args):
  """Loads and measures the recording; InputError if it is too short or sparse."""
  _check_measure_args(args)
  rec = recorded.load_mea(args.recording)
  m = compare.measure(rec, args.frame_dt, args.smooth, args.min_size)
  compare.check_measurable(m, args.recording)
  return rec, m


def run_compare(args) -> None:
  from rwjax.waves.__main__ import parse_params  # pylint: disable=g-import-not-at-top
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
      progress=_progress('compare'))
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
  if args.json:
    print(json.dumps(_jsonable(result), allow_nan=False))
  else:
    print(compare.table({'recording': m_rec.summary, args.model: m_sim.summary}, tested))
    print(f'wrote {args.out}/compare.json, compare.png ({args.batch} retinas of '
          f'{params.size}x{params.size}, {wall:.0f} s)')


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
  from rwjax.waves.__main__ import parse_params  # pylint: disable=g-import-not-at-top
  if args.model != 'lansdell':
    raise InputError(f'fit supports --model=lansdell only (its parameters batch on the '
                     f'accelerator), got {args.model!r}')
  overrides = parse_params(fit_lib.lansdell, args.param)
  names = tuple(args.fit) or fit_lib.DEFAULT_NAMES
  bounds = _parse_bounds(args.bounds)
  extra = [n for n in bounds if n not in names]
  if extra:
    raise InputError(f'--bounds given for {extra}, which are not fitted (--fit {names})')
  if args.warmup < 0 or not args.seconds > 0 or not args.budget > 0:
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
      m_rec.summary, rec, names, start_values, bounds, base=base,
      candidates=args.candidates, retinas=args.retinas, seconds=args.seconds,
      warmup_s=args.warmup, budget_s=args.budget, seed=args.seed, rate_hz=rate,
      tol=args.tol, frame_dt=args.frame_dt, smooth=args.smooth, min_size=args.min_size,
      log=lambda s: print(s, file=sys.stderr, flush=True))
  paths.makedirs(args.out)
  out = result.to_json()
  out.update(recording=rec.source, rate_hz=rate, flags=fit_flags(result.fitted),
             lattice=base.size,
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
        f'{result.generations} generations x {args.candidates} candidates x {args.retinas} '
        f'retinas ({result.simulated_s:.0f} simulated s) in {result.wall_s:.0f} s '
        f'({result.candidates_per_s:.2f} candidates/s)')
  print(f'wrote {args.out}/fit.json, fit.png, config_flags.txt, param_flags.txt; use: '
        f'{" ".join(out["flags"]["config"])}')
  if not result.converged:
    print(f'error: the fit did not converge within --budget={args.budget:g} simulated s '
          f'(largest spread {max(result.history[-1]["spread"]):.3f} > --tol={args.tol}); '
          f'{args.out}/fit.json holds its best result, marked "converged": false; raise '
          '--budget or --candidates', file=sys.stderr)
    sys.exit(3)


def _ages(text: str | None) -> tuple[int, int] | None:
  if text is None:
    return None
  lo, sep, hi = text.partition(':')
  try:
    return int(lo), int(hi if sep else lo)
  except ValueError:
    raise InputError(f'--ages {text!r}: need LOW:HIGH postnatal days, e.g. 2:9') from None


def build_dataset(paths: list[str], segment_s: float, ages=None,
                  frame_dt: float = recorded.FRAME_DT, smooth: int = recorded.DEFAULT_SMOOTH,
                  min_size: int = wave_stats.DEFAULT_MIN_SIZE):
  """Recordings -> (movie f32[B, T, H, W], labels i32[B, T], sources): each recording's
  activity movie cut into segments of segment_s (a shorter tail is dropped), one row each;
  wave labels found per recording, unique across rows (-1 = no wave)."""
  n_seg = round(segment_s / frame_dt)
  if n_seg < 2:
    raise InputError(f'--segment-s={segment_s} is under two frames of {frame_dt} s')
  rows, labels, used, shape = [], [], [], None
  offset = 0
  for path in paths:
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
  if not rows:
    raise InputError(f'no recording (of {len(paths)}) is at least --segment-s={segment_s} s '
                     f'long{"" if ages is None else f" at ages P{ages[0]}-P{ages[1]}"}')
  return np.concatenate(rows), np.concatenate(labels).astype(np.int32), used, shape


def run_dataset(args) -> None:
  from rwjax.waves import movie as movie_io  # pylint: disable=g-import-not-at-top
  _check_measure_args(args)
  _check_out(args.out)
  files = list(args.mea)
  if args.folder:
    if not paths.isdir(args.folder):
      raise InputError(f'--folder {args.folder!r} is not a directory')
    files += paths.glob(paths.join(args.folder, '*.h5'))
  if not files:
    raise InputError('dataset needs --folder=DIR or --mea=FILE.h5')
  movie, labels, used, shape = build_dataset(files, args.segment_s, _ages(args.ages),
                                             args.frame_dt, args.smooth, args.min_size)
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


COMMANDS = {'survey': run_survey, 'compare': run_compare, 'fit': run_fit,
            'mea-dataset': run_dataset}
