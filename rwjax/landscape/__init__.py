"""Loss-landscape analysis: critical-point finders and gradient-flat diagnostics.

Frye, Simon, Wadia, Ligeralde, DeWeese & Bouchard, "Critical point-finding methods reveal
gradient-flat regions of deep network losses" (Neural Computation 2021, arXiv:2003.10397).

Modules (all on `loss_fn(theta: f[D]) -> f[]`; `hvp.flatten_loss` adapts a pytree loss):
  hvp            gradients and Hessian-vector products (forward-over-reverse)
  minres         MINRES (Paige & Saunders 1975) for singular/indefinite symmetric systems
  lanczos        Lanczos norm and stochastic-Lanczos-quadrature index estimates
  newton_mr      Newton-MR with the Armijo search on ||g||^2
  damped_newton  Newton on H + gamma I over a gamma grid
  gradient_norm  gradient descent on 1/2 ||g||^2 with a weak-Wolfe search
  diagnostics    loss, ||g||^2, r, r_H, gradient-flatness, index at a point
  linear_ae      the deep linear autoencoder benchmark and its analytic critical points
  toy            the 2-D test functions with known gradient-flat points
  benchmark      the paper's benchmark; plot: its loss-vs-index figure
  __main__       the binary: python -m rwjax.landscape --config=configs/landscape_linear_ae.py

float64: these methods need it (||g||^2 < 1e-10 and residual ratios ~1e-4 are below float32
resolution), but the rest of rwjax runs in float32 and shares processes (tests) with this
package, so nothing here switches x64 on at import. Call the functions inside the scoped
`with jax.enable_x64(True):` (tests, benches, notebooks); only the binary's main enables it
globally, for its own process. Inputs built outside the scope are float32 and stay so.
"""
