"""Benchmark: Newton-MR speed and the full linear-autoencoder critical-point benchmark (CPU).

  python bench/landscape.py [--num_starts=50] [--skip_full]

Prints one JSON object: Newton-MR iterations/s for one start (jit-compiled, timed after
compilation), and the whole benchmark (Newton-MR, damped Newton, gradient-norm minimisation
from --num_starts starts each, configs/landscape_linear_ae.py defaults) with its success
fractions (||grad||^2 < 1e-10) and wall time including compilation.
Target: the whole benchmark under 20 minutes on a 2-core CPU. The paper (Frye et al. 2021)
found Newton-MR 80% +- 4, damped Newton 45% +- 5, gradient-norm minimisation 35% +- 6.
"""

import importlib.util
import json
import os
import pathlib
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from rwjax.landscape import benchmark
from rwjax.landscape import linear_ae
from rwjax.landscape import newton_mr

_NUM_STARTS = flags.DEFINE_integer('num_starts', 50, 'Starts per method in the full run.')
_STEPS = flags.DEFINE_integer('speed_steps', 50, 'Newton-MR iterations in the speed test.')
_SKIP_FULL = flags.DEFINE_bool('skip_full', False, 'Only the Newton-MR speed test.')

_CONFIG = pathlib.Path(__file__).resolve().parents[1] / 'configs' / 'landscape_linear_ae.py'


def _config():
  spec = importlib.util.spec_from_file_location('landscape_linear_ae', _CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _speed(config) -> dict:
  x = linear_ae.make_data(jax.random.PRNGKey(0), config.k, config.n)
  loss = linear_ae.make_loss(linear_ae.second_moment(x), config.p)
  dim = 2 * config.k * config.p
  settings = dict(config.newton_mr)
  settings.pop('num_steps')
  # A saddle region: a mid-trajectory start, where steps are not trivially converged.
  theta0 = benchmark.trajectory_starts(
      loss, jax.random.PRNGKey(1), dim, 3, steps=config.trajectory_steps,
      learning_rate=config.learning_rate, init_scale=config.init_scale, noise_std=0.0)[1]
  run = jax.jit(lambda t: newton_mr.run(loss, t, _STEPS.value, **settings))
  t = time.perf_counter()
  jax.block_until_ready(run(theta0))
  compile_s = time.perf_counter() - t
  t = time.perf_counter()
  theta, infos = jax.block_until_ready(run(theta0))
  seconds = time.perf_counter() - t
  taken = int(np.asarray(infos.accepted).sum())
  minres_iters = int(np.asarray(infos.minres_iterations)[np.asarray(infos.accepted)].sum())
  return {'steps': _STEPS.value, 'accepted_steps': taken, 'seconds': seconds,
          'compile_seconds': compile_s, 'iterations_per_s': taken / seconds,
          'minres_iterations_per_step': minres_iters / max(taken, 1),
          'hvps_per_s': minres_iters / seconds,
          'final_grad_norm_sq': float(jnp.sum(jax.grad(loss)(theta)**2)),
          'settings': settings}


def main(argv):
  del argv
  config = _config()
  config.num_starts = _NUM_STARTS.value
  out = {'jax_version': jax.__version__, 'device': jax.devices()[0].device_kind,
         'cpu_count': os.cpu_count(), 'k': config.k, 'p': config.p, 'n': config.n,
         'num_parameters': 2 * config.k * config.p}
  with jax.enable_x64(True):
    out['newton_mr_speed'] = _speed(config)
    if not _SKIP_FULL.value:
      t = time.perf_counter()
      results, _ = benchmark.run(config)
      out['full'] = {
          'wall_seconds': time.perf_counter() - t, 'num_starts': config.num_starts,
          'target_seconds': 1200,
          'methods': {name: {key: m[key] for key in (
              'success_fraction', 'success_stderr', 'gradient_flat_fraction', 'seconds')}
                      for name, m in results['methods'].items()},
          'paper_success': {'newton_mr': '0.80 +- 0.04', 'damped_newton': '0.45 +- 0.05',
                            'gradient_norm': '0.35 +- 0.06'},
          'config': results['config']}
  print(json.dumps(out))


if __name__ == '__main__':
  app.run(main)
