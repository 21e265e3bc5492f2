"""Fitting the Lansdell model to a recording's wave statistics.

`fit` simulates many candidate parameter sets as one batch: the batch axis holds candidates x
retinas, and each fitted parameter is an f32[B, 1, 1] array broadcast against the f32[B, H, W]
fields inside `lansdell.step`, so one jitted program simulates every candidate. Every retina is
seen through the recording's electrodes and measured as the recording is (rwjax.waves.compare).

`distance` (TERMS): squared log-ratios of simulated to recorded median speed, interval and area,
plus those of the correlation index at 100, 200 and 400 um weighted 1/3 each; a factor e off in
one statistic costs 1, a statistic the candidate lacks costs MISSING.

Search: the cross-entropy method with a diagonal Gaussian over the log-parameters scaled to
[0, 1] between their bounds; every generation runs on the same `retinas` PRNG streams (common
random numbers). Converged when every spread is under `tol`; otherwise the budget (simulated
retina-seconds, warm-up included) ends it and the best candidate is returned unconverged.
SEARCHES sizes it for a CPU ('quick') or an accelerator ('full'). Why this search: docs/waves.md,
'How fit searches'. Only the Lansdell model is fitted: the Godfrey model's parameters size its
coupling kernel at trace time. Bad names, bounds or budgets raise InputError.
"""

import dataclasses
import functools
import math
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from rwjax.errors import InputError
from rwjax.waves import compare, lansdell, recorded
from rwjax.waves import stats as wave_stats
from rwjax.waves.progress import Progress

# Fields the gates, lattice or clock read as Python numbers at trace time: not fittable.
_STATIC = ('size', 'extent_mm', 'dt', 'frame_dt', 'kappa', 'v0', 'v1', 'v2', 'v3', 'v4')
FITTABLE = tuple(k for k, v in lansdell.Params()._asdict().items()
                 if isinstance(v, float) and k not in _STATIC)
DEFAULT_NAMES = ('diff', 'spont_prob', 'tau_s', 'g_ach')
# Search ranges: D spans fronts ~0.05-0.3 mm/s; the others a factor ~4 either side of the
# published values.
DEFAULT_BOUNDS = {'diff': (0.001, 0.03), 'spont_prob': (2e-5, 1e-3), 'tau_s': (15.0, 240.0),
                  'g_ach': (0.5, 8.0)}
TERMS = (('speed_mm_s_median', 1.0), ('iwi_s_median', 1.0), ('area_mm2_median', 1.0),
         ('ci_100um', 1 / 3), ('ci_200um', 1 / 3), ('ci_400um', 1 / 3))
MISSING = 25.0  # cost of a statistic the candidate does not have (a factor e^5 off)
ELITE_FRACTION = 0.25
SMOOTH = 0.7
INIT_SPREAD = 0.25
MIN_SPREAD = 0.01
CHUNK_FRAMES = 100
# Searches (`python -m rwjax.waves fit --search=NAME`): candidates per generation, retinas
# per candidate, simulated seconds of warm-up and of recording per retina, and the budget
# (simulated retina-seconds) that sets the number of generations. 'quick' (the default) is
# sized for 2 CPU cores, at the price of noisier distances (one retina) and fewer candidates;
# 'full' (up to 10 generations) for an accelerator. Times: docs/performance.md.
SEARCHES = {
    'quick': dict(candidates=8, retinas=1, warmup_s=150.0, seconds=300.0, budget_s=10800.0),
    'full': dict(candidates=16, retinas=2, warmup_s=300.0, seconds=300.0, budget_s=2e5),
}


def distance(sim: dict[str, Any], target: dict[str, Any]) -> float:
  """The distance minimised (module docstring) between two measured summaries."""
  total = 0.0
  for key, weight in TERMS:
    t, s = target.get(key), sim.get(key)
    if t is None or not t > 0:
      continue
    total += weight * (MISSING if s is None or not s > 0 else math.log(s / t) ** 2)
  return total


def check_names_bounds(names, start: dict | None,
                       bounds: dict) -> dict[str, tuple[float, float]]:
  """InputError for unknown names, bad bounds or a start outside them; the full bounds
  ({} when start is None: the names alone are checked)."""
  if not names:
    raise InputError('fit at least one parameter, e.g. --fit diff')
  unknown = [n for n in names if n not in FITTABLE]
  if unknown:
    raise InputError(f'cannot fit {unknown}: the Lansdell model has no such fittable '
                     f'parameter; choose from {list(FITTABLE)}')
  if start is None:  # names only
    return {}
  out = {}
  for n in names:
    lo, hi = bounds.get(n) or DEFAULT_BOUNDS.get(n) or (start[n] / 4, start[n] * 4)
    if not 0 < lo < hi:
      raise InputError(f'bounds of {n} must satisfy 0 < low < high, got ({lo}, {hi})')
    if not lo <= start[n] <= hi:
      raise InputError(f'the start {n}={start[n]} lies outside its bounds [{lo}, {hi}]; '
                       f'widen --bounds {n}=LOW:HIGH or change --param {n}=VALUE')
    out[n] = (float(lo), float(hi))
  return out


def _to_unit(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
  return (np.log(values) - np.log(lo)) / (np.log(hi) - np.log(lo))


def _from_unit(u: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
  return np.exp(np.log(lo) + np.clip(u, 0, 1) * (np.log(hi) - np.log(lo)))


@functools.partial(jax.jit, static_argnames=('base', 'names', 'n_frames', 'record'))
def _run(fields, keys, values, cells, base: lansdell.Params, names: tuple[str, ...],
         n_frames: int, record: bool):
  """Advances B retinas n_frames frames, each with its own values of `names`.

  Args:
    fields: (v, r, s, e) f32[B, H, W]; keys: u32[B, 2]; values: f32[B, P]; cells: i32[K].
  Returns:
    (fields, keys, active bool[n_frames, B, K] or None): V above threshold at the cells.
  """
  b = values.shape[0]
  p = base._replace(**{n: values[:, i, None, None] for i, n in enumerate(names)})
  spont = jnp.broadcast_to(jnp.reshape(jnp.asarray(p.spont_prob, jnp.float32), (-1,)), (b,))

  def draw(key, prob):
    key, sub = jax.random.split(key)
    return key, jax.random.bernoulli(sub, prob, (base.size, base.size))

  def one(carry, _):
    f, k = carry
    k, driven = jax.vmap(draw)(k, spont)
    f = lansdell._frame(f, driven, p)  # pylint: disable=protected-access
    out = f[0].reshape(b, -1)[:, cells] > lansdell.THRESHOLD if record else None
    return (f, k), out

  (fields, keys), active = jax.lax.scan(one, (fields, keys), None, length=n_frames)
  return fields, keys, active


def simulate_candidates(base: lansdell.Params, names: tuple[str, ...], values: np.ndarray,
                        retinas: int, warmup_s: float, seconds: float, seed: int,
                        cells: np.ndarray,
                        on_chunk: Callable[[float], None] | None = None) -> np.ndarray:
  """bool[N, R, T, K]: the cells' activity for N candidates (values f64[N, P]) x R retinas,
  all candidates on the same R PRNG streams (common random numbers). on_chunk(s) after
  each chunk: the retina-seconds simulated so far (N x R x simulated s)."""
  n = values.shape[0]
  rest = lansdell.init(jax.random.PRNGKey(seed), retinas, base)
  tile = lambda x: jnp.tile(x, (n,) + (1,) * (x.ndim - 1))
  fields = tuple(tile(x) for x in rest[:4])
  keys = tile(rest.key)
  vals = jnp.asarray(np.repeat(values, retinas, axis=0), jnp.float32)
  cells = jnp.asarray(cells, jnp.int32)
  chunk, n_warm, n_frames = CHUNK_FRAMES, round(warmup_s / base.frame_dt), round(
      seconds / base.frame_dt)
  report = lambda frames: on_chunk and on_chunk(n * retinas * frames * base.frame_dt)
  for i in range(n_warm // chunk):
    fields, keys, _ = jax.block_until_ready(
        _run(fields, keys, vals, cells, base, names, chunk, False))
    report((i + 1) * chunk)
  if n_warm % chunk:
    fields, keys, _ = _run(fields, keys, vals, cells, base, names, n_warm % chunk, False)
  out = []
  for i in range(math.ceil(n_frames / chunk)):
    fields, keys, active = _run(fields, keys, vals, cells, base, names, chunk, True)
    out.append(np.asarray(active))
    report(n_warm + min((i + 1) * chunk, n_frames))
  active = np.concatenate(out, axis=0)[:n_frames]          # [T, N * R, K]
  return np.moveaxis(active, 0, 1).reshape(n, retinas, n_frames, -1)


@dataclasses.dataclass
class FitResult:
  names: tuple[str, ...]
  bounds: dict[str, tuple[float, float]]
  start: dict[str, float]
  fitted: dict[str, float]
  start_distance: float
  fitted_distance: float
  start_summary: dict[str, Any]
  fitted_summary: dict[str, Any]
  target: dict[str, Any]
  converged: bool
  generations: int
  history: list[dict[str, Any]]
  simulated_s: float
  wall_s: float
  candidates_per_s: float
  base: dict[str, Any]
  fitted_measured: Any = None
  start_measured: Any = None

  def to_json(self) -> dict[str, Any]:
    out = {k: v for k, v in dataclasses.asdict(self).items()
           if k not in ('fitted_measured', 'start_measured')}
    out['bounds'] = {k: list(v) for k, v in self.bounds.items()}
    out['names'] = list(self.names)
    return out


def fit(target: dict[str, Any], rec: recorded.Recording, names, start: dict[str, float],
        bounds: dict | None = None, *, base: lansdell.Params, candidates: int = 8,
        retinas: int = 1, seconds: float = 300.0, warmup_s: float = 150.0,
        budget_s: float = 10800.0, seed: int = 0, rate_hz: float, tol: float = 0.05,
        frame_dt: float = recorded.FRAME_DT, smooth: int = recorded.DEFAULT_SMOOTH,
        min_size: int = wave_stats.DEFAULT_MIN_SIZE,
        progress: str | None = None) -> FitResult:
  """Fits `names` of the Lansdell model so that simulations seen through `rec`'s
  electrodes match the measured summary `target` (see the module docstring). The
  defaults are SEARCHES['quick'].

  Args:
    target: a `compare.measure(...).summary` (the recording's, or a planted one).
    rec: the recording whose electrodes, raster and pitch the simulations are seen through.
    start: every fitted parameter's starting value; base: the other parameters (lattice
      matched to rec: `compare.matched_params`).
    budget_s: simulated retina-seconds (warm-up included) the whole search may use.
    progress: label of a progress line on stderr (rwjax.waves.progress); None: silent.
  """
  names = tuple(names)
  bounds = check_names_bounds(names, start, bounds or {})
  if candidates < 4 or retinas < 1:
    raise InputError(f'need candidates >= 4 and retinas >= 1, got {candidates}, {retinas}')
  per_gen = candidates * retinas * (warmup_s + seconds)
  generations = int(budget_s // per_gen)
  if generations < 2:
    raise InputError(f'a budget of {budget_s:g} simulated s allows {generations} '
                     f'generation(s) of {candidates} candidates x {retinas} retinas x '
                     f'{warmup_s + seconds:g} s (warm-up included); need >= 2: raise '
                     '--budget or lower --candidates, --retinas, --seconds or --warmup')
  lo = np.array([bounds[n][0] for n in names])
  hi = np.array([bounds[n][1] for n in names])
  mean = _to_unit(np.array([start[n] for n in names], np.float64), lo, hi)
  spread = np.full(len(names), INIT_SPREAD)
  n_elite = max(2, int(round(candidates * ELITE_FRACTION)))
  cells_all = compare.electrode_cells(rec, lansdell, base)
  cells, train_cell = np.unique(cells_all, return_inverse=True)
  rng = np.random.default_rng(seed)
  best = dict(distance=math.inf)
  history, start_eval = [], None
  t0 = time.time()
  converged = False
  gen = 0
  report = Progress(progress, generations * per_gen)

  def note(measured: int) -> str:
    best_of = ('none yet' if 'values' not in best else f'{best["distance"]:.4g} at ' +
               ', '.join(f'{n}={v:.4g}' for n, v in zip(names, best['values'])))
    return (f'generation {gen + 1}/{generations}, candidates {measured}/'
            f'{generations * candidates}, best distance {best_of}')

  for gen in range(generations):
    u = np.clip(mean + spread * rng.standard_normal((candidates, len(names))), 0, 1)
    u[0] = mean
    values = _from_unit(u, lo, hi)
    active = simulate_candidates(base, names, values, retinas, warmup_s, seconds,
                                 seed, cells,
                                 lambda s: report(gen * per_gen + s, note(gen * candidates)))
    dists, summaries, measured = [], [], []
    for k in range(candidates):
      sims = compare.simulated_recordings(active[k][..., train_cell], rec, rate_hz, frame_dt,
                                          seed)
      m = compare.measure(sims, frame_dt, smooth, min_size)
      dists.append(distance(m.summary, target))
      summaries.append(m.summary)
      measured.append(m)
      if dists[k] < best['distance']:
        best = dict(distance=float(dists[k]), values=values[k], summary=summaries[k],
                    measured=measured[k])
      report((gen + 1) * per_gen, note(gen * candidates + k + 1))
    dists = np.asarray(dists)
    if gen == 0:
      start_eval = (float(dists[0]), summaries[0], measured[0])
    k = int(np.argmin(dists))
    elite = np.argsort(dists)[:n_elite]
    mean = u[elite].mean(0)
    spread = np.maximum(SMOOTH * u[elite].std(0) + (1 - SMOOTH) * spread, MIN_SPREAD)
    history.append(dict(generation=gen, best_distance=float(dists[k]),
                        median_distance=float(np.median(dists)),
                        mean={n: float(v) for n, v in zip(names, _from_unit(mean, lo, hi))},
                        spread=[float(s) for s in spread]))
    if spread.max() < tol:
      converged = True
      break
    if gen < generations - 1:  # a milestone (the last one is `finish`)
      report((gen + 1) * per_gen, note((gen + 1) * candidates), force=True)
  report.finish((gen + 1) * per_gen, note((gen + 1) * candidates) +
                (', converged' if converged else ''))
  wall = time.time() - t0
  n_gen = gen + 1
  return FitResult(
      names=names, bounds=bounds, start={n: float(start[n]) for n in names},
      fitted={n: float(v) for n, v in zip(names, best['values'])},
      start_distance=start_eval[0], fitted_distance=best['distance'],
      start_summary=start_eval[1], fitted_summary=best['summary'], target=target,
      converged=converged, generations=n_gen, history=history,
      simulated_s=n_gen * per_gen, wall_s=wall,
      candidates_per_s=n_gen * candidates / wall,
      base={k: v for k, v in base._asdict().items()},
      fitted_measured=best['measured'], start_measured=start_eval[2])

