"""Correlation index (Wong et al. 1993; dt = 0.05 s as in Eglen et al. 2014) on planted trains."""

import numpy as np
import pytest

import mea_files  # tests/waves/mea_files.py (on the path: conftest.py)
from rwjax.errors import InputError
from rwjax.waves import compare, correlation


def flatten(trains):
  times = np.concatenate([np.asarray(t, np.float64) for t in trains])
  train = np.repeat(np.arange(len(trains)), [len(t) for t in trains])
  return times, train


def test_hand_computed_pairs_the_50_ms_window_and_too_few_trains():
  # A and B fire within 50 ms of each other twice (0 / 0.03 s and 2 / 2.04 s); 1.0 and
  # 1.2 s are 0.2 s apart. N_AB = 2, T = 10 s: CI = 2 * 10 / (3 * 3 * 0.1) = 22.2.
  trains = [[0.0, 1.0, 2.0], [0.03, 1.2, 2.04], [5.0]]
  times, train = flatten(trains)
  pos = np.array([[0.0, 0.0], [30.0, 40.0], [300.0, 400.0]])
  p = correlation.pair_index(times, train, pos, 10.0)
  np.testing.assert_allclose(p.distance_um, [50.0, 500.0, 450.0])
  np.testing.assert_allclose(p.ci, [2 * 10 / 0.9, 0.0, 0.0])
  # The window is 50 ms either side: spikes 49 ms apart coincide, 51 ms apart do not.
  for gap, coincide in ((0.049, True), (0.051, False)):
    times, train = flatten([[1.0, 3.0], [1.0 + gap, 3.0 - gap]])
    p = correlation.pair_index(times, train, np.array([[0, 0], [100, 0]]), 10.0)
    assert p.ci[0] == pytest.approx(2 * 10 / (4 * 0.1) if coincide else 0.0)
  with pytest.raises(InputError, match='at least two spiking trains'):
    correlation.pair_index(np.array([1.0]), np.array([0]), np.zeros((3, 2)), 10.0)


def test_matches_the_definition_on_random_bursty_trains_in_one_or_many_chunks(monkeypatch):
  rng = np.random.default_rng(0)
  bursts = rng.uniform(0, 100, 12)
  trains = [np.sort(np.concatenate([rng.uniform(0, 100, 20),
                                    rng.choice(bursts, 6) + rng.normal(0, 0.03, 6)]))
            for _ in range(7)]
  times, train = flatten(trains)
  pos = rng.uniform(0, 500, (7, 2))
  # CI_AB = N_AB T / (N_A N_B 2 dt), N_AB counted pair by pair from the definition.
  want = [sum(abs(ta - tb) <= 0.05 for ta in a for tb in b) * 100.0 / (len(a) * len(b) * 0.1)
          for i, a in enumerate(trains) for b in trains[i + 1:]]
  np.testing.assert_allclose(correlation.pair_index(times, train, pos, 100.0).ci, want, rtol=1e-12)
  monkeypatch.setattr(correlation, '_CHUNK_PAIRS', 3)  # 74 pairs within dt: 25 chunks
  np.testing.assert_allclose(correlation.pair_index(times, train, pos, 100.0).ci, want, rtol=1e-12)


def test_independent_poisson_trains_have_index_one():
  # N_AB ~ Poisson(N_A N_B 2 dt / T) = 4,000 per pair here: CI = 1 +- 1.6%.
  rng = np.random.default_rng(1)
  duration, rate = 2000.0, 10.0
  trains = [rng.uniform(0, duration, rng.poisson(rate * duration)) for _ in range(6)]
  times, train = flatten(trains)
  p = correlation.pair_index(times, train, rng.uniform(0, 1000, (6, 2)), duration)
  assert p.ci.size == 15
  np.testing.assert_allclose(p.ci, 1.0, atol=0.08)


def test_by_distance_and_ci_at():
  p = correlation.PairIndex(distance_um=np.array([0.0, 90.0, 110.0, 149.0, 160.0, 420.0]),
                            ci=np.array([50.0, 10.0, 20.0, 30.0, 4.0, 2.0]), dt=0.05)
  centres, mean, pairs = correlation.by_distance(p)
  np.testing.assert_array_equal(centres, [0, 100, 200, 400])
  np.testing.assert_allclose(mean, [50, 20, 4, 2])
  np.testing.assert_array_equal(pairs, [1, 3, 1, 1])
  assert correlation.ci_at(p) == {'ci_100um': 20.0, 'ci_200um': 4.0, 'ci_400um': 2.0}


def test_simulated_movies_independent_pixels_give_one_and_shared_activity_more():
  # Pixels active in independent random frames (probability q): spikes drawn from them
  # are independent across pixels, CI ~ 1. All pixels active in the same frames (0.1 s
  # wide, window +-0.05 s): two spikes uniform in one frame coincide with probability
  # 1 - (1/2)^2 = 3/4, in adjacent active frames (probability q each side) 1/8, so
  # N_AB = n_active (r w)^2 (3/4 + q/4) and CI = (3/4 + q/4) / q.
  rng = np.random.default_rng(3)
  rec = mea_files.grid_recording(4, 0.1)
  q, n_t = 0.1, 20000
  independent = rng.random((n_t, 16)) < q
  shared = np.repeat(rng.random((n_t, 1)) < q, 16, axis=1)
  ind = compare.simulated_recording(independent, rec, 20.0, 0.1, rng)
  sh = compare.simulated_recording(shared, rec, 20.0, 0.1, rng)
  ci_ind = correlation.recording_index(ind).ci
  ci_sh = correlation.recording_index(sh).ci
  assert ci_ind.mean() == pytest.approx(1.0, abs=0.05)
  assert ci_sh.mean() == pytest.approx((0.75 + q / 4) / q, rel=0.03)
