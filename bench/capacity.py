"""Benchmark of the mean-field manifold analysis on random Gaussian manifolds.

The whole analysis (P=100, N=5000, M=50, n_t=200 by default) is timed after compilation,
then the anchor points of the same draws are recomputed with a plain Python loop of
scipy.optimize.nnls calls (what the reference implementation does per draw) for the
speed-up and the agreement of alpha, R_M and D_M. Prints one JSON object.

  python bench/capacity.py [--P 100 --N 5000 --M 50 --n_t 200 --kappa 0 --seed 0]
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

from rwjax.eval import capacity as cap


def _scipy_anchors(s: np.ndarray, t: np.ndarray, kappa: float) -> np.ndarray:
  """Reference anchors: one NNLS per draw, with the exact interior test, in float64."""
  anchors = np.zeros_like(t)
  e = np.zeros(s.shape[1])
  e[-1] = 1
  for p in range(s.shape[0]):
    for i in range(t.shape[1]):
      proj = t[p, i] @ s[p]
      if proj.max() + kappa < 0:
        anchors[p, i] = s[p][:, proj.argmax()]
      else:
        a = optimize.nnls(s[p], t[p, i] + kappa * e)[0]
        anchors[p, i] = s[p] @ a / a.sum()
  return anchors


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  for name, default in [('P', 100), ('N', 5000), ('M', 50), ('n_t', 200), ('seed', 0),
                        ('repeats', 3)]:
    parser.add_argument(f'--{name}', type=int, default=default)
  parser.add_argument('--kappa', type=float, default=0.0)
  args = parser.parse_args()

  rng = np.random.default_rng(args.seed)
  points = jnp.asarray(rng.standard_normal((args.P, args.M, args.N)), jnp.float32)
  mask = jnp.ones((args.P, args.M), bool)
  key = jax.random.PRNGKey(args.seed)
  run = lambda: jax.block_until_ready(cap.analyze(points, mask, args.kappa, key, n_t=args.n_t))
  t0 = time.perf_counter()
  out = run()
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(args.repeats):
    t0 = time.perf_counter()
    out = run()
    times.append(time.perf_counter() - t0)

  # The same draws, step by step: center subspace and reduction, then both solvers.
  key_v, key_t = jax.random.split(key)
  centered = points - jnp.mean(points, axis=(0, 1))
  v, _, _ = cap.center_subspace(jnp.mean(centered, axis=1), key_v)
  s, row_mask, dims = cap.reduce_manifolds(centered, mask, v)
  t = jax.random.normal(key_t, (s.shape[0], args.n_t, s.shape[1]), s.dtype)
  t = t * row_mask[:, None, :]
  solve = jax.jit(lambda s, t: cap.anchor_points(s, t, args.kappa, mask))
  jax.block_until_ready(solve(s, t))
  t0 = time.perf_counter()
  anchors, res = jax.block_until_ready(solve(s, t))
  jax_solve_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  ref = _scipy_anchors(np.asarray(s, np.float64), np.asarray(t, np.float64), args.kappa)
  scipy_s = time.perf_counter() - t0
  geo = lambda a: [float(jnp.mean(x)) if i else float(1 / jnp.mean(1 / x)) for i, x in
                   enumerate(cap.manifold_geometry(t, jnp.asarray(a, s.dtype), args.kappa,
                                                   dims))]
  ours, theirs = geo(anchors), geo(ref)

  total = min(times)
  print(json.dumps(dict(
      bench='capacity', jax=jax.__version__, device=jax.devices()[0].device_kind,
      P=args.P, N=args.N, M=args.M, n_t=args.n_t, kappa=args.kappa, seed=args.seed,
      analysis_s=total, analysis_runs_s=times, compile_s=compile_s,
      nnls_jax_s=jax_solve_s, nnls_scipy_loop_s=scipy_s,
      speedup_analysis_vs_scipy_loop=scipy_s / total,
      speedup_nnls_vs_scipy_loop=scipy_s / jax_solve_s,
      alpha=float(out['alpha']), radius=float(out['radius']),
      dimension=float(out['dimension']), K=int(out['K']),
      center_corr=float(out['center_corr']), solver_residual=float(out['solver_residual']),
      same_draws_jax={'alpha': ours[0], 'radius': ours[1], 'dimension': ours[2]},
      same_draws_scipy={'alpha': theirs[0], 'radius': theirs[1], 'dimension': theirs[2]},
      max_rel_diff=max(abs(a - b) / abs(b) for a, b in zip(ours, theirs)),
      max_anchor_abs_diff=float(np.max(np.abs(np.asarray(anchors, np.float64) - ref))),
      targets_s={'H100': 2.0, 'cpu_2_cores': 60.0})))


if __name__ == '__main__':
  main()
