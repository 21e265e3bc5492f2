"""Correlation index of spike-train pairs against electrode distance.

For two trains A and B of a recording of length T (Wong, Meister & Shatz 1993, Neuron 11:923)

  CI_AB = N_AB(dt) T / (N_A N_B 2 dt),

N_A, N_B their spike counts and N_AB(dt) the spike pairs with |t_a - t_b| <= dt: how much more
often than chance (independent Poisson trains give 1 on average) they fire within dt of each
other; dt = DT = 0.05 s as Eglen et al. (2014). `pair_index` uses every pair of distinct trains,
same electrode included, and leaves out pairs with a silent train (CI undefined); `by_distance`
and `ci_at` average it over 100 um distance bins. `coincidences` counts pairs exactly with a
sliding window over the time-sorted spikes, in chunks of ~4M pairs, so memory stays bounded.
Simulations are measured by the same functions (rwjax.waves.compare).
"""

import dataclasses

import numpy as np

from rwjax.errors import InputError

DT = 0.05  # s, the coincidence window of Eglen et al. (2014)
BIN_UM = 100.0  # width of the distance bins
DISTANCES_UM = (100.0, 200.0, 400.0)  # where `ci_at` reports the index
_CHUNK_PAIRS = 4_000_000


@dataclasses.dataclass(frozen=True)
class PairIndex:
  """Correlation index of every pair of (non-silent) trains of one recording."""
  distance_um: np.ndarray  # f64[P]
  ci: np.ndarray           # f64[P]
  dt: float


def coincidences(times: np.ndarray, train: np.ndarray, n_trains: int,
                 dt: float = DT) -> np.ndarray:
  """N_AB(dt) for every pair of trains: f64[n, n], symmetric, diagonal = within-train pairs.

  Args:
    times: f64[S] spike times (s), in any order.
    train: int[S] train of each spike, in [0, n_trains).
  """
  order = np.argsort(times, kind='stable')
  t, c = np.asarray(times, np.float64)[order], np.asarray(train, np.int64)[order]
  s = t.size
  hi = np.searchsorted(t, t + dt, side='right')  # spikes j < hi[i] have t_j <= t_i + dt
  n_later = hi - np.arange(s) - 1                # partners j in (i, hi[i])
  counts = np.zeros(n_trains * n_trains, np.float64)
  start = 0
  cum = np.cumsum(n_later)
  while start < s:
    base = cum[start - 1] if start else 0
    stop = int(np.searchsorted(cum, base + _CHUNK_PAIRS, side='right'))
    stop = max(stop, start + 1)
    k = n_later[start:stop]
    i = np.repeat(np.arange(start, stop), k)
    # j runs over i+1 .. i+k for each i: offsets 1..k.
    first = np.repeat(np.cumsum(k) - k, k)
    j = i + 1 + (np.arange(i.size) - first)
    counts += np.bincount(c[i] * n_trains + c[j], minlength=n_trains * n_trains)
    start = stop
  m = counts.reshape(n_trains, n_trains)
  return m + m.T - np.diag(np.diag(m))


def pair_index(times: np.ndarray, train: np.ndarray, pos_um: np.ndarray, duration_s: float,
               dt: float = DT) -> PairIndex:
  """Correlation index of every pair of distinct, non-silent trains.

  Args:
    times: f64[S] spike times (s); train: int[S] train of each spike.
    pos_um: f64[C, 2] (x, y) electrode position of each train (um).
    duration_s: T, the recording's length.
  """
  if not dt > 0 or not duration_s > 0:
    raise InputError(f'dt and the duration must be positive, got dt={dt}, '
                     f'duration={duration_s}')
  pos_um = np.asarray(pos_um, np.float64)
  n = pos_um.shape[0]
  n_spikes = np.bincount(np.asarray(train, np.int64), minlength=n).astype(np.float64)
  live = np.flatnonzero(n_spikes > 0)
  if live.size < 2:
    raise InputError(f'only {live.size} train(s) have spikes; the correlation index needs '
                     'at least two spiking trains')
  remap = np.full(n, -1, np.int64)
  remap[live] = np.arange(live.size)
  nab = coincidences(times, remap[np.asarray(train, np.int64)], live.size, dt)
  a, b = np.triu_indices(live.size, k=1)
  na = n_spikes[live]
  ci = nab[a, b] * duration_s / (na[a] * na[b] * 2 * dt)
  dist = np.hypot(*(pos_um[live[a]] - pos_um[live[b]]).T)
  return PairIndex(distance_um=dist, ci=ci, dt=float(dt))


def recording_index(rec, dt: float = DT) -> PairIndex:
  """`pair_index` of a `rwjax.waves.recorded.Recording`."""
  return pair_index(rec.times, rec.channel, rec.positions_um(), rec.duration_s, dt)


def by_distance(p: PairIndex, bin_um: float = BIN_UM, max_um: float | None = None):
  """Mean CI per distance bin: (centres f64[K], mean f64[K], pairs i64[K]); bins are
  bin_um wide, centred on 0, bin_um, 2 bin_um, ...; empty bins are left out."""
  k = np.floor(p.distance_um / bin_um + 0.5).astype(np.int64)
  if max_um is not None:
    keep = k * bin_um <= max_um
    k, ci = k[keep], p.ci[keep]
  else:
    ci = p.ci
  if k.size == 0:
    return np.zeros(0), np.zeros(0), np.zeros(0, np.int64)
  pairs = np.bincount(k)
  sums = np.bincount(k, weights=ci)
  full = np.flatnonzero(pairs)
  return full * bin_um, sums[full] / pairs[full], pairs[full]


def ci_at(p: PairIndex, distances_um=DISTANCES_UM, bin_um: float = BIN_UM) -> dict:
  """{'ci_100um': mean CI of the pairs at [100 - bin_um/2, 100 + bin_um/2) um, ...} (the
  bins of `by_distance`); None where no pair is."""
  out = {}
  for d in distances_um:
    sel = (p.distance_um >= d - bin_um / 2) & (p.distance_um < d + bin_um / 2)
    out[f'ci_{d:g}um'] = float(p.ci[sel].mean()) if sel.any() else None
  return out
