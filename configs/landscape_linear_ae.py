"""Critical-point finding on the deep linear autoencoder (Frye et al. 2021, arXiv:2003.10397).

Run (CPU, float64; a few minutes on 2 cores):
  python -m rwjax.landscape --config=configs/landscape_linear_ae.py --workdir=out/landscape

Override any field, e.g. --config.num_starts=100 --config.newton_mr.num_steps=200.

Expected outcome: results.json and loss_vs_index.png in the workdir and a summary table with,
per method, the fraction of starts that reach ||grad||^2 < 1e-10. Newton-MR should succeed
most often, then damped Newton, then gradient-norm minimisation (the paper: 80% +- 4,
45% +- 5, 35% +- 6); the converged points sit on the analytic Baldi-Hornik loss/index values,
and the failures are mostly gradient-flat (r_H < 5e-4, r > 0.9) or slow. The toy function's
(sqrt 2, 0) reports r = 1, r_H ~ 0.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  # Data: X ~ N(0, diag(linspace(1, max_variance, k))), n samples, exactly zero-mean.
  c.k = 16
  c.p = 4
  c.n = 10_000
  c.max_variance = 16.0
  # Starting points: gradient descent from N(0, init_scale^2) for trajectory_steps steps;
  # num_starts points chosen evenly in loss ('loss') or in steps ('time') along the
  # trajectory, every other one plus N(0, noise_std^2) noise.
  c.num_starts = 50
  c.init_scale = 0.1
  c.trajectory_steps = 2000
  c.learning_rate = 0.05
  c.noise_std = 0.01
  c.start_selection = 'loss'
  # Methods, comma-separated: newton_mr, damped_newton, gradient_norm.
  c.methods = 'newton_mr,damped_newton,gradient_norm'
  c.success_threshold = 1e-10   # on ||grad||^2
  c.index_tol = 1e-4            # eigenvalues below -index_tol ||H|| count as negative

  c.newton_mr = ml_collections.ConfigDict(dict(
      num_steps=200, rtol=1e-10, maxiter=50, acondlim=1e7, maxxnorm=1e4, rho=1e-4,
      rho_pure=0.5, beta=0.5, max_backtracks=40))
  c.damped_newton = ml_collections.ConfigDict(dict(
      num_steps=100, gammas=(1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6), rtol=1e-10, maxiter=50,
      acondlim=1e7, maxxnorm=1e4))
  c.gradient_norm = ml_collections.ConfigDict(dict(
      num_steps=2000, alpha0=0.1, c1=1e-4, c2=0.9, max_trials=40))
  return c
