"""Throughput of the pre-training step with the simulator inside it; prints one JSON.

  python bench/train_step.py [--stem=imagenet|cifar] [--batch_pairs=512] [--retinas=512]
                             [--frames_per_step=1] [--sim_groups=1] [--sim_dt=0.001]
                             [--steps=50] [--dtype=auto] [--wave_labels=components]

Measures, on the default device(s), for the paper's config (32x32x3 frames from the
Lansdell model, ResNet-18, projector 512-128): views/s end to end; views/s with the
simulator replaced by a fixed on-device frame buffer; the share of step time spent
simulating; fresh frames per step against views consumed; peak device memory; time
to the first step (compilation). Calibration is shortened (it does not affect the
step's cost).
"""

import argparse
import json
import time

import jax
import numpy as np

from rwjax import defaults
from rwjax import models
from rwjax import train
from rwjax.ssl import optim
from rwjax.ssl import sources
from rwjax.ssl import train_step as train_step_lib


def _config(args):
  c = defaults.pretrain_config()
  c.model.stem = args.stem
  c.model.dtype = args.dtype
  c.data.retinas_per_device = args.retinas
  c.data.frames_per_step = args.frames_per_step
  c.data.sim_groups = args.sim_groups
  if args.sim_dt:
    c.data.sim_params[c.data.simulator].dt = args.sim_dt
  c.data.buffer_frames = args.buffer_frames
  c.data.wave_labels = args.wave_labels
  c.data.warmup_s = 200.0  # past the refractory lull after the first wave
  c.data.calibration_s = 60.0
  c.train.batch_pairs = args.batch_pairs
  return c


def _fixed(source: sources.Source) -> sources.Source:
  """The same source without simulation: every step reuses the initial buffer."""
  def advance(state):
    return state, state.buffer, state.labels
  return source._replace(advance=advance)


def _measure(config, source, mesh, steps):
  model = models.create_model(**config.model)
  tx = optim.make_optimizer(name='adam', lr=1e-3)
  state = train.init_state(model, tx, source, mesh, config.seed, config.data.input_size)
  step = train_step_lib.make_train_step(
      model, tx, mesh, train.make_batch_fn(source, config,
                                           config.train.batch_pairs // mesh.size))
  t0 = time.perf_counter()
  state, m = step(state)
  jax.block_until_ready(m)
  first = time.perf_counter() - t0
  for _ in range(3):
    state, m = step(state)
  jax.block_until_ready(m)
  t0 = time.perf_counter()
  for _ in range(steps):
    state, m = step(state)
  jax.block_until_ready(m)
  dt = (time.perf_counter() - t0) / steps
  return state, dt, first, float(m['n_anchors'])


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--stem', default='imagenet')
  p.add_argument('--dtype', default='auto')
  p.add_argument('--batch_pairs', type=int, default=512)
  p.add_argument('--retinas', type=int, default=128)
  p.add_argument('--frames_per_step', type=int, default=1)
  p.add_argument('--sim_groups', type=int, default=1,
                 help='retinas advance in turns, 1/sim_groups of them per step')
  p.add_argument('--sim_dt', type=float, default=None,
                 help="simulator Euler step (s); default: the model's (1 ms)")
  p.add_argument('--buffer_frames', type=int, default=32)
  p.add_argument('--steps', type=int, default=50)
  p.add_argument('--wave_labels', default='components',
                 help="the stream's wave labels: 'components' | 'active_fraction' (the labeller's "
                      "cost is the difference in sim_ms)")
  args = p.parse_args()
  config = _config(args)
  train.validate(config, jax.device_count())
  source = train.build_source(config)
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ('data',))
  state, dt, first, anchors = _measure(config, source, mesh, args.steps)
  _, dt_fixed, _, _ = _measure(config, _fixed(source), mesh, args.steps)
  sim_s = train.time_call(train.source_step(source, mesh), state.source, repeats=20)
  views = 2 * args.batch_pairs
  fresh = args.retinas * args.frames_per_step * jax.device_count() // args.sim_groups
  stats = jax.devices()[0].memory_stats() or {}
  print(json.dumps(dict(
      bench='train_step', jax=jax.__version__, device=jax.devices()[0].device_kind,
      n_devices=jax.device_count(), stem=args.stem,
      dtype=jax.numpy.dtype(models.resolve_dtype(args.dtype)).name,
      batch_pairs=args.batch_pairs, retinas_per_device=args.retinas,
      frames_per_step=args.frames_per_step, sim_groups=args.sim_groups,
      sim_dt=config.data.sim_params[config.data.simulator].dt,
      buffer_frames=args.buffer_frames, wave_labels=args.wave_labels,
      step_ms=dt * 1e3, views_per_s=views / dt,
      fixed_buffer_step_ms=dt_fixed * 1e3, fixed_buffer_views_per_s=views / dt_fixed,
      sim_ms=sim_s * 1e3, sim_share=sim_s / dt,
      fresh_frames_per_step=fresh, views_per_step=views, reuse_ratio=views / fresh,
      anchors_last_step=anchors, first_step_s=first,
      peak_memory_gb=stats.get('peak_bytes_in_use', 0) / 2**30)))


if __name__ == '__main__':
  main()
