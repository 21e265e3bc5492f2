"""What `python -m rwjax.waves fit --search=quick` costs in accuracy against
`--search=full`, on the planted-parameter fit of tests/waves/test_fit.py.

Setup of that test: a 24x24 Lansdell lattice (tau_s 15 s, dt 2 ms) seen through one
electrode per cell, D fitted from 0.004 within [0.002, 0.03] mm^2/s, 80 s recorded per
retina, in-wave rate 10 Hz. The two searches' shapes at that scale (rwjax.waves.fit.SEARCHES;
warm-up in the ratio of their 150 / 300 s):
  quick: 8 candidates x 1 retina, 3 generations, 20 s warm-up;
  full: 16 candidates x 2 retinas, up to 10 generations, 40 s warm-up.
Targets: (a) the test's own (D* = 0.012, one retina, 20 s warm-up, on the fit's PRNG
stream: distance 0 at D*), (b) six on other streams (D* in {0.006, 0.012, 0.02} x two
seeds, 2 retinas x 80 s after 40 s), where the target's and the simulations' noise count.

  PYTHONPATH=. JAX_PLATFORMS=cpu python bench/fit_search.py
"""
import importlib.util
import json
import os
import time

import numpy as np

from rwjax.waves import compare, fit

spec = importlib.util.spec_from_file_location('test_fit', os.path.join(
    os.path.dirname(__file__), '..', 'tests', 'waves', 'test_fit.py'))
test_fit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(test_fit)
REC = test_fit.grid_recording()
BASE = test_fit.BASE._replace(tau_s=15.0)
SHAPES = {'quick': dict(candidates=8, retinas=1, generations=3, warmup_s=20.0),
          'full': dict(candidates=16, retinas=2, generations=10, warmup_s=40.0)}
TARGETS = [('test', 0.012, 0, 1, 20.0)] + [
    ('other streams', d, s, 2, 40.0) for d in (0.006, 0.012, 0.02) for s in (201, 202)]


def main():
  rows = []
  for case, truth, seed, retinas, warmup in TARGETS:
    act = fit.simulate_candidates(BASE, ('diff',), np.array([[truth]]), retinas, warmup,
                                  80.0, seed, np.arange(test_fit.SIZE ** 2))
    target = compare.measure(compare.simulated_recordings(act[0], REC, 10.0, 0.1,
                                                          seed)).summary
    for name, s in SHAPES.items():
      t0 = time.time()
      per_gen = s['candidates'] * s['retinas'] * (80.0 + s['warmup_s'])
      r = fit.fit(target, REC, ('diff',), {'diff': 0.004}, {'diff': (0.002, 0.03)},
                  base=BASE, candidates=s['candidates'], retinas=s['retinas'],
                  seconds=80.0, warmup_s=s['warmup_s'], budget_s=s['generations'] * per_gen,
                  seed=0, rate_hz=10.0, tol=0.05)
      rows.append(dict(case=case, search=name, truth=truth, target_seed=seed,
                       fitted=round(r.fitted['diff'], 5),
                       factor=round(float(np.exp(abs(np.log(r.fitted['diff'] / truth)))), 3),
                       distance=round(r.fitted_distance, 4), generations=r.generations,
                       wall_s=round(time.time() - t0, 1)))
      print(json.dumps(rows[-1]), flush=True)
  for name in SHAPES:
    f = np.array([r['factor'] for r in rows if r['search'] == name and r['case'] != 'test'])
    w = np.mean([r['wall_s'] for r in rows if r['search'] == name])
    print(f'{name}: other streams: D off by a factor {np.median(f):.2f} (median), '
          f'{f.max():.2f} (max); {w:.0f} s per fit')


if __name__ == '__main__':
  main()
