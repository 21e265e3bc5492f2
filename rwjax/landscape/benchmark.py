"""The linear-autoencoder critical-point benchmark of Frye et al. (2021), Sec. 4.

Each method runs from start points on a gradient-descent trajectory (vmapped, jit-compiled)
and every final point is diagnosed against the analytic critical points. `run` needs float64
(InputError otherwise); `validate_config` raises InputError for unusable values. The protocol:
docs/landscape.md, 'The benchmark'.
"""

import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rwjax.errors import InputError
from rwjax.landscape import damped_newton
from rwjax.landscape import diagnostics
from rwjax.landscape import gradient_norm
from rwjax.landscape import hvp as hvp_lib
from rwjax.landscape import linear_ae
from rwjax.landscape import newton_mr
from rwjax.landscape import toy

METHODS = {'newton_mr': newton_mr.run, 'damped_newton': damped_newton.run,
           'gradient_norm': gradient_norm.run}


def method_names(config: ml_collections.ConfigDict) -> list[str]:
  names = [m.strip() for m in config.methods.split(',') if m.strip()]
  unknown = [m for m in names if m not in METHODS]
  if not names or unknown:
    raise InputError(f'config.methods={config.methods!r} has unknown or no methods {unknown}; '
                     f'use a comma-separated subset of {",".join(METHODS)}')
  return names


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises InputError for values the benchmark cannot run with."""
  positive_ints = {k: config[k] for k in ('k', 'p', 'n', 'num_starts', 'trajectory_steps')}
  positive_ints.update({f'{m}.num_steps': config[m].num_steps for m in method_names(config)})
  for name, value in positive_ints.items():
    if not isinstance(value, int) or value < 1:
      raise InputError(f'config.{name}={value!r} must be a positive integer')
  if config.p >= config.k or config.n <= config.k:
    raise InputError(f'need p < k < n, got p={config.p}, k={config.k}, n={config.n}; '
                     'the paper uses p=4, k=16, n=10000')
  for name in ('learning_rate', 'success_threshold', 'index_tol', 'max_variance', 'init_scale'):
    if not config[name] > 0:
      raise InputError(f'config.{name}={config[name]!r} must be > 0')
  if config.start_selection not in ('loss', 'time'):
    raise InputError(f"config.start_selection={config.start_selection!r}; use 'loss' or 'time'")
  if config.noise_std < 0:
    raise InputError(f'config.noise_std={config.noise_std!r} must be >= 0')
  if any(not g > 0 for g in config.damped_newton.gammas):
    raise InputError(f'config.damped_newton.gammas={config.damped_newton.gammas!r} must be > 0')


def trajectory_starts(loss_fn: hvp_lib.LossFn, key: jax.Array, dim: int, num_starts: int, *,
                      steps: int, learning_rate: float, init_scale: float,
                      noise_std: float, selection: str = 'loss') -> jax.Array:
  """Start points f[num_starts, dim] from one gradient-descent trajectory.

  selection='loss': evenly in loss between the trajectory's first and last loss (the nearest
  point each, as autocrit's uniform_f); 'time': evenly spaced steps. Odd-numbered starts get
  N(0, noise_std^2) noise.
  """
  k_init, k_noise = jax.random.split(key)
  theta0 = init_scale * jax.random.normal(k_init, (dim,), jnp.float64)
  grad = jax.value_and_grad(loss_fn)

  def gd(theta, _):
    loss, g = grad(theta)
    return theta - learning_rate * g, (theta, loss)

  _, (thetas, losses) = jax.lax.scan(gd, theta0, None, length=steps)
  if selection == 'loss':
    targets = jnp.linspace(losses[0], losses[-1], num_starts)
    picks = jnp.argmin(jnp.abs(losses[None, :] - targets[:, None]), axis=1)
  else:
    picks = jnp.linspace(0, steps - 1, num_starts).astype(jnp.int32)
  noise = noise_std * jax.random.normal(k_noise, (num_starts, dim), jnp.float64)
  return thetas[picks] + noise * (jnp.arange(num_starts) % 2 == 1)[:, None]


def method_runner(name: str, loss_fn: hvp_lib.LossFn,
                  settings: ml_collections.ConfigDict) -> Callable[[jax.Array], Any]:
  """jit(vmap(run)) of one method over start points f[S, D] -> (thetas f[S, D], infos)."""
  kwargs = dict(settings)
  num_steps = kwargs.pop('num_steps')
  if 'gammas' in kwargs:
    kwargs['gammas'] = tuple(kwargs['gammas'])
  run = METHODS[name]
  return jax.jit(jax.vmap(lambda theta: run(loss_fn, theta, num_steps, **kwargs)))


def analytic_reference(loss_fn: hvp_lib.LossFn, s: np.ndarray, p: int,
                       index_tol: float) -> dict[str, np.ndarray]:
  """Loss, index and ||g||^2 of every Baldi-Hornik critical class.

  Eigenvalues from NumPy's LAPACK: several times faster than XLA's eigh on CPU for thousands
  of small matrices.
  """
  thetas, losses, _ = linear_ae.critical_points(s, p)
  hessians = jax.jit(jax.vmap(lambda t: hvp_lib.dense_hessian(loss_fn, t)))
  g2 = jax.jit(jax.vmap(lambda t: hvp_lib.grad_norm_sq(loss_fn, t)))(jnp.asarray(thetas))
  index = jax.vmap(diagnostics.index_from_eigenvalues, (0, None))
  eigenvalues = [np.linalg.eigvalsh(np.asarray(hessians(jnp.asarray(chunk))))
                 for chunk in np.array_split(thetas, max(1, len(thetas) // 256))]
  return {'loss': losses, 'index': np.asarray(index(np.concatenate(eigenvalues), index_tol)),
          'grad_norm_sq': np.asarray(g2)}


def toy_report() -> dict[str, dict[str, float]]:
  """Diagnostics of the toy function at its critical point and gradient-flat points."""
  out = {}
  for point in (toy.CRITICAL_POINT,) + toy.GRADIENT_FLAT_POINTS:
    d = diagnostics.diagnose(toy.toy, jnp.asarray(point, jnp.float64))
    out[f'({point[0]:.4f}, {point[1]:.1f})'] = {
        'grad_norm_sq': float(d.grad_norm_sq), 'r': float(d.r), 'r_h': float(d.r_h),
        'gradient_flat': bool(d.gradient_flat)}
  return out


def run(config: ml_collections.ConfigDict) -> tuple[dict[str, Any], dict[str, Any]]:
  """Runs the benchmark. Returns (JSON-able results, arrays for `plot.loss_vs_index`)."""
  if not jax.config.jax_enable_x64:
    raise InputError('the landscape benchmark needs float64; run it inside '
                     'jax.enable_x64(True) (the rwjax.landscape binary does)')
  validate_config(config)
  names = method_names(config)
  k_data, k_starts = jax.random.split(jax.random.PRNGKey(config.seed))
  x = linear_ae.make_data(k_data, config.k, config.n, config.max_variance)
  s = linear_ae.second_moment(x)
  loss_fn = linear_ae.make_loss(s, config.p)
  dim = 2 * config.k * config.p

  t0 = time.perf_counter()
  reference = analytic_reference(loss_fn, np.asarray(s), config.p, config.index_tol)
  starts = trajectory_starts(
      loss_fn, k_starts, dim, config.num_starts, steps=config.trajectory_steps,
      learning_rate=config.learning_rate, init_scale=config.init_scale,
      noise_std=config.noise_std, selection=config.start_selection)
  diagnose = jax.jit(jax.vmap(lambda t: diagnostics.diagnose(
      loss_fn, t, method='dense', index_tol=config.index_tol)))
  results = {
      'config': config.to_dict(), 'jax_version': jax.__version__,
      'device': jax.devices()[0].device_kind, 'num_parameters': dim,
      'analytic': {'num_classes': int(len(reference['loss'])),
                   'max_grad_norm_sq': float(reference['grad_norm_sq'].max()),
                   'min_loss': float(reference['loss'].min()),
                   'max_loss': float(reference['loss'].max())},
      'start_losses': np.asarray(jax.vmap(loss_fn)(starts)).tolist(),
      'methods': {}, 'toy': toy_report()}
  plot_data = {'analytic': reference, 'methods': {}}
  for name in names:
    t = time.perf_counter()
    finals, infos = method_runner(name, loss_fn, config[name])(starts)
    d = diagnose(jax.block_until_ready(finals))
    seconds = time.perf_counter() - t
    success = np.asarray(d.grad_norm_sq) < config.success_threshold
    fraction = float(success.mean())
    results['methods'][name] = {
        'success_fraction': fraction,
        'success_stderr': float(np.sqrt(fraction * (1 - fraction) / len(success))),  # binomial
        'num_starts': int(len(success)), 'seconds': seconds,
        'gradient_flat_fraction': float(np.asarray(d.gradient_flat).mean()),
        **{f'final_{k}': np.asarray(getattr(d, k)).tolist()
           for k in ('loss', 'grad_norm_sq', 'index', 'r', 'r_h')},
        'gradient_flat': np.asarray(d.gradient_flat).tolist(),
        'accepted_steps': np.asarray(infos.accepted).sum(axis=1).tolist()}
    plot_data['methods'][name] = {'loss': np.asarray(d.loss), 'index': np.asarray(d.index),
                                  'success': success}
  results['total_seconds'] = time.perf_counter() - t0
  return results, plot_data
