"""Simulators beside recordings: one measurement path for both, side-by-side statistics.

`simulate_matched(model, rec)` simulates retinas matched to a recording and converts them
exactly as the recording:

1. `matched_params`: a lattice covering the recording's raster at the recording's frame_dt,
   simulated for the recording's duration (or `seconds`) after `warmup_s` from rest.
2. `electrode_cells`: every spike train sits at its electrode's raster position (nearest
   cell), silent and duplicated electrodes included.
3. `simulated_recording`: a train fires as a Poisson process of rate `rate_hz` while its cell
   is above the model's threshold (the recordings hold burst spikes only); `rate_hz` defaults
   to the recording's `burst_rate`, so spike densities and the density threshold mean the same.
4. `measure`: `recorded.activity_movie`, `stats.wave_stats` at recorded.THRESHOLD and
   `correlation.pair_index`, for recordings and simulations alike.

`two_sample` gives two-sided Mann-Whitney U and Kolmogorov-Smirnov p-values; waves of one
recording are not independent draws, so they rank differences rather than give calibrated
error rates. Too short or sparse inputs raise InputError.
"""

import dataclasses
import math
from typing import Any

import numpy as np
from scipy import stats as sp_stats

from rwjax import paths
from rwjax import waves
from rwjax.errors import InputError
from rwjax.waves import correlation, recorded, simulate
from rwjax.waves import stats as wave_stats

MIN_WAVES = 3  # fewer waves with a speed than this: too sparse to compare or fit
MIN_SECONDS = 30.0
LABELS = wave_stats.LABELS
STATS = tuple(LABELS)


@dataclasses.dataclass(frozen=True)
class Measured:
  """What one recording (or a batch of simulated ones) measures."""
  summary: dict[str, Any]          # stats.summary + ci_100um, ci_200um, ci_400um, ...
  waves: wave_stats.WaveStats
  pairs: correlation.PairIndex
  frames: np.ndarray               # f32[k, H, W] example frames (the largest waves' peaks)


def measure(recs, frame_dt: float = recorded.FRAME_DT, smooth: int = recorded.DEFAULT_SMOOTH,
            min_size: int = wave_stats.DEFAULT_MIN_SIZE, dt: float = correlation.DT,
            n_examples: int = 3) -> Measured:
  """Wave statistics and correlation index of one Recording or a list on one raster."""
  recs = [recs] if isinstance(recs, recorded.Recording) else list(recs)
  movies = np.stack([recorded.activity_movie(r, frame_dt, smooth) for r in recs])
  w = wave_stats.wave_stats(movies, threshold=recorded.THRESHOLD, frame_dt=frame_dt,
                            pixel_mm=recs[0].pitch_mm, min_size=min_size)
  parts = [correlation.recording_index(r, dt) for r in recs]
  pairs = correlation.PairIndex(distance_um=np.concatenate([p.distance_um for p in parts]),
                                ci=np.concatenate([p.ci for p in parts]), dt=dt)
  summary = wave_stats.summary(w)
  summary.update(correlation.ci_at(pairs))
  summary.update(n_trains=recs[0].n_trains, pitch_mm=recs[0].pitch_mm,
                 raster=list(recs[0].shape), layout=recs[0].layout, ci_dt_s=dt,
                 age_days=recs[0].age_days)
  for key in STATS:  # interquartile ranges, for the survey
    summary[f'{key}_q25'], summary[f'{key}_q75'] = (
        wave_stats.quantiles(getattr(w, key), (0.25, 0.75)) or (None, None))
  # Example frames: the frame where each of the largest waves is the largest.
  labels = w.frame_labels.reshape(-1)
  active = w.active_fraction.reshape(-1)
  picks = []
  for wave in np.argsort(w.area_mm2)[::-1][:n_examples]:
    frames_of = np.flatnonzero(labels == wave)
    if frames_of.size:
      picks.append(frames_of[np.argmax(active[frames_of])])
  if not picks:
    picks = [int(np.argmax(active))]
  frames = movies.reshape(-1, *movies.shape[2:])[np.asarray(picks)]
  return Measured(summary=summary, waves=w, pairs=pairs, frames=frames)


def check_measurable(m: Measured, what: str) -> None:
  """InputError when a recording is too short or too sparse to compare or fit."""
  s = m.summary
  if s['seconds'] < MIN_SECONDS or s['n_waves_with_speed'] < MIN_WAVES:
    raise InputError(
        f'{what} is too short or too sparse to measure: {s["seconds"]:.0f} s with '
        f'{s["n_waves_with_speed"]} wave(s) whose speed could be measured (need at least '
        f'{MIN_SECONDS:g} s and {MIN_WAVES} waves); use a longer recording, or a smaller '
        '--min-size or --smooth')


def burst_rate(rec: recorded.Recording, frame_dt: float = recorded.FRAME_DT,
               smooth: int = recorded.DEFAULT_SMOOTH,
               min_size: int = wave_stats.DEFAULT_MIN_SIZE) -> float:
  """Spikes per second of a train while its electrode's pixel is inside a detected wave."""
  labels, n = wave_stats.label_waves(recorded.activity_movie(rec, frame_dt, smooth),
                                     recorded.THRESHOLD, min_size)
  if n == 0:
    raise InputError(f'{rec.source}: no wave found, so no burst rate to match; pass '
                     '--rate-hz')
  inside = labels > 0                                   # [T, H, W]
  t = np.clip((rec.times / frame_dt).astype(np.int64), 0, inside.shape[0] - 1)
  spikes_in = inside[t, rec.row[rec.channel], rec.col[rec.channel]].sum()
  frames_in = inside[:, rec.row, rec.col].sum()         # wave frames of each train
  return float(spikes_in / (frames_in * frame_dt))


def matched_params(model: str, rec: recorded.Recording, overrides: dict | None = None,
                   size: int | None = None, frame_dt: float = recorded.FRAME_DT):
  """(module, Params) for a lattice covering the recording's raster ((H-1) x (W-1) pitches).

  The lattice keeps the model's own spacing (Lansdell 2/63 mm, Godfrey 34 um) and grows to
  cover the raster; an explicit `size` stretches the spacing instead (Lansdell: extent_mm,
  Godfrey: spacing_um), for quick runs.
  """
  mod = waves.get_model(model)
  overrides = dict(overrides or {})
  side_mm = (max(rec.shape) - 1) * rec.pitch_mm
  base = mod.Params(frame_dt=frame_dt, **overrides)
  h = mod.pixel_mm(base)
  if size is None:
    size = int(math.ceil(side_mm / h - 1e-9)) + 1
    if model == 'lansdell':
      overrides.setdefault('extent_mm', (size - 1) * h)
  elif size < 2:
    raise InputError(f'size={size} must be >= 2')
  elif model == 'lansdell':
    overrides.setdefault('extent_mm', side_mm)
  else:
    overrides.setdefault('spacing_um', side_mm * 1000 / (size - 1))
  return mod, mod.Params(size=size, frame_dt=frame_dt, **overrides)


def electrode_cells(rec: recorded.Recording, mod, params) -> np.ndarray:
  """i64[C]: flat lattice cell (row * size + col) under each train's electrode."""
  h = mod.pixel_mm(params)
  r = np.clip(np.round(rec.row * rec.pitch_mm / h), 0, params.size - 1).astype(np.int64)
  c = np.clip(np.round(rec.col * rec.pitch_mm / h), 0, params.size - 1).astype(np.int64)
  return r * params.size + c


def simulate_active(mod, params, batch: int, warmup_s: float, seconds: float, seed: int,
                    cells: np.ndarray, progress: str | None = None) -> np.ndarray:
  """bool[B, T, K]: whether each of the `cells` (flat lattice indices, [K]) is above the
  model's activity threshold in each frame of `batch` simulated retinas (progress: a
  label, rwjax.waves.simulate.run)."""
  above = lambda f: f.reshape(*f.shape[:2], -1)[:, :, cells] > mod.THRESHOLD
  return simulate.run(mod, params, batch, warmup_s, seconds, seed, keep=above,
                      progress=progress)


def simulated_recording(active: np.ndarray, rec: recorded.Recording, rate_hz: float,
                        frame_dt: float, rng: np.random.Generator) -> recorded.Recording:
  """Spike trains on the recording's electrodes from one simulated retina.

  Args:
    active: bool[T, C] whether each train's cell is in a wave in each frame.
    rate_hz: firing rate of a train while active (Poisson; spikes uniform in the frame).
  """
  n_t, n_c = active.shape
  if n_c != rec.n_trains:
    raise InputError(f'active has {n_c} trains, the recording {rec.n_trains}')
  counts = rng.poisson(rate_hz * frame_dt, size=active.shape) * active   # [T, C]
  t_idx, c_idx = np.nonzero(counts)
  k = counts[t_idx, c_idx]
  frame = np.repeat(t_idx, k)
  train = np.repeat(c_idx, k)
  times = (frame + rng.random(frame.size)) * frame_dt
  order = np.lexsort((times, train))   # train after train, each sorted
  return dataclasses.replace(rec, times=times[order], channel=train[order].astype(np.int32),
                             duration_s=n_t * frame_dt, source='simulated')


def simulated_recordings(active: np.ndarray, rec: recorded.Recording, rate_hz: float,
                         frame_dt: float, seed: int) -> list[recorded.Recording]:
  """One Recording per retina of active bool[B, T, C]."""
  rng = np.random.default_rng(seed)
  return [simulated_recording(a, rec, rate_hz, frame_dt, rng) for a in active]


def two_sample(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
  """Medians, Mann-Whitney U (two-sided) and Kolmogorov-Smirnov p-values of finite a vs b."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  a, b = a[np.isfinite(a)], b[np.isfinite(b)]
  out: dict[str, Any] = dict(n_a=int(a.size), n_b=int(b.size),
                             median_a=float(np.median(a)) if a.size else None,
                             median_b=float(np.median(b)) if b.size else None,
                             mannwhitney_p=None, ks_stat=None, ks_p=None)
  if a.size and b.size:
    out['mannwhitney_p'] = float(sp_stats.mannwhitneyu(a, b, alternative='two-sided').pvalue)
    ks = sp_stats.ks_2samp(a, b)
    out['ks_stat'], out['ks_p'] = float(ks.statistic), float(ks.pvalue)
  return out


def tests(rec: Measured, sim: Measured) -> dict[str, dict[str, Any]]:
  """two_sample for each wave statistic and each correlation-index distance."""
  out = {key: two_sample(getattr(rec.waves, key), getattr(sim.waves, key)) for key in STATS}
  for d in correlation.DISTANCES_UM:
    half = correlation.BIN_UM / 2
    sel = lambda p: p.ci[(p.distance_um >= d - half) & (p.distance_um < d + half)]
    out[f'ci_{d:g}um'] = two_sample(sel(rec.pairs), sel(sim.pairs))
  return out


def table(columns: dict[str, dict[str, Any]], tested: dict | None = None) -> str:
  """Side-by-side medians (IQR) of the wave statistics and CI, with test p-values."""
  fmt = lambda v: 'n/a' if v is None else f'{v:.3g}'
  value = lambda c, key: fmt(c.get(key))
  iqr = lambda c, key: (f"{fmt(c.get(key + '_median'))} ({fmt(c.get(key + '_q25'))}-"
                        f"{fmt(c.get(key + '_q75'))})")
  rows = ([('waves', 'n_waves', value), ('waves/min', 'waves_per_min', value)]
          + [(LABELS[key], key, iqr) for key in STATS]
          + [(f'CI {d:g} um', f'ci_{d:g}um', value) for d in correlation.DISTANCES_UM])
  lines = [f"{'':16}" + ''.join(f'{n:>22}' for n in columns)
           + (f"{'MWU p':>10}{'KS p':>10}" if tested else '')]
  for label, key, cell in rows:
    line = f'{label:16}' + ''.join(cell(c, key).rjust(22) for c in columns.values())
    if tested and key in tested:  # the wave and CI rows
      line += f"{fmt(tested[key]['mannwhitney_p']):>10}{fmt(tested[key]['ks_p']):>10}"
    lines.append(line)
  return '\n'.join(lines)


def figure(path: str, measured: dict[str, Measured], title: str = '') -> None:
  """Distributions side by side, correlation index against distance, example frames."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.ticker  # pylint: disable=g-import-not-at-top
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  names = list(measured)
  n_ex = max(m.frames.shape[0] for m in measured.values())
  fig = plt.figure(figsize=(3.2 * 5, 3.0 * (1 + len(names))))
  grid = fig.add_gridspec(1 + len(names), max(5, n_ex))
  for i, key in enumerate(STATS):
    ax = fig.add_subplot(grid[0, i])
    vals = [getattr(m.waves, key) for m in measured.values()]
    vals = [v[np.isfinite(v) & (v > 0)] for v in vals]
    allv = np.concatenate(vals)
    if allv.size:
      bins = np.geomspace(allv.min(), allv.max() * 1.001, 25) if allv.min() > 0 else 25
      for name, v in zip(names, vals):  # fraction of the values per (log-spaced) bin
        ax.hist(v, bins=bins, weights=np.full(v.size, 1 / max(v.size, 1)), histtype='step',
                label=f'{name} (n={v.size})')
      ax.set_xscale('log')
      ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(LABELS[key])
    if i == 0:
      ax.legend(fontsize=7)
  ax = fig.add_subplot(grid[0, 4])
  for name, m in measured.items():
    centres, mean, _ = correlation.by_distance(m.pairs, max_um=1500)
    ax.plot(centres, mean, 'o-', ms=3, label=name)
  ax.set_yscale('log')
  ax.set_xlabel('electrode distance (um)')
  ax.set_ylabel(f'correlation index (dt {correlation.DT:g} s)')
  ax.legend(fontsize=7)
  for r, (name, m) in enumerate(measured.items(), start=1):
    for k, frame in enumerate(m.frames):
      ax = fig.add_subplot(grid[r, k])
      ax.imshow(frame, cmap='magma', vmin=0, vmax=max(recorded.THRESHOLD * 4, frame.max()))
      ax.set_xticks([])
      ax.set_yticks([])
      if k == 0:
        ax.set_ylabel(name)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  with paths.open_write(path) as f:  # any path (gs://)
    fig.savefig(f, format='png', dpi=80)
  plt.close(fig)


def simulate_matched(model: str, rec: recorded.Recording, overrides: dict | None = None, *,
                     batch: int = 2, seconds: float | None = None, warmup_s: float = 300.0,
                     seed: int = 0, size: int | None = None, rate_hz: float | None = None,
                     frame_dt: float = recorded.FRAME_DT, smooth: int = recorded.DEFAULT_SMOOTH,
                     min_size: int = wave_stats.DEFAULT_MIN_SIZE,
                     progress: str | None = None):
  """Simulates `batch` retinas matched to `rec` and measures them as `rec` is measured.

  Returns (Measured, params, rate_hz); progress: a label (rwjax.waves.simulate.run).
  """
  if batch < 1:
    raise InputError(f'batch={batch} must be >= 1')
  mod, params = matched_params(model, rec, overrides, size, frame_dt)
  if rate_hz is None:
    rate_hz = burst_rate(rec, frame_dt, smooth, min_size)
  if not rate_hz > 0:
    raise InputError(f'rate_hz must be > 0, got {rate_hz}')
  seconds = rec.duration_s if seconds is None else seconds
  active = simulate_active(mod, params, batch, warmup_s, seconds, seed,
                           electrode_cells(rec, mod, params), progress=progress)
  sims = simulated_recordings(active, rec, rate_hz, frame_dt, seed)
  return measure(sims, frame_dt, smooth, min_size), params, rate_hz
