"""Throughput of the pre-training step with the simulator inside it; prints one JSON.

  python bench/train_step.py [--stem=imagenet|cifar] [--batch_pairs=512] [--retinas=512]
                             [--frames_per_step=1] [--sim_groups=1] [--sim_dt=0.001]
                             [--steps=50] [--dtype=auto] [--conv=matmul_small]
                             [--wave_labels=components]

Measures, on the default device(s), for the paper's config (32x32x3 frames from the
Lansdell model, ResNet-18, projector 512-128): views/s end to end; views/s with the
simulator replaced by a fixed on-device frame buffer; the share of step time spent
simulating; fresh frames per step against views consumed; peak device memory; time
to the first step (compilation). Calibration is shortened (it does not affect the
step's cost).

  python bench/train_step.py --batching=waves [--wave_batch_frames=3000] [--movie_frames=20000]
                             [--shuffle=none] [--stem=...] [--width=64] [--steps=...]

--width: the ResNet-18 base width (64, the paper's). --batching=waves: the paper's whole-wave
batches from a fixed movie (the file source), the paper's loss ('negatives'): views/s over the
batch's slots (fixed size: the budget + the longest wave) and over its valid views. The movie is
synthetic (content does not change the cost): waves of 18 frames (the Lansdell default's mean
labelled frames per wave) separated by a quiet frame.
Beside it, the same network step on `--batch_pairs` random pairs from the same movie (the file
source, batching='pairs', the NT-Xent loss): `pairs_views_per_s`, the comparison without the
simulator's share.

  python bench/train_step.py --batching=recorded [--movie_rows=20] [--movie_frames=3600]
                             [--stream_bytes=0] [--stem=...] [--width=...] [--steps=...]

--batching=recorded: the same step (pairs, the NT-Xent loss, `--batch_pairs`) fed from a
recorded-size movie held in device memory (config.data.placement='sharded', and 'replicated'),
streamed from the host ('stream', chunks of `--stream_bytes` / 3 per device, a new chunk every
step; 0 = a quarter of a shard, at least one row), from the on-device simulator, and from the simulator's buffer
frozen (no simulation: the step without its data source's cost): views/s of each,
`sharded_to_sim` = sharded views/s / simulator-fed views/s (the issue's target: >= 0.9) and
`sharded_to_fixed_buffer`. The
movie is synthetic (content does not change the cost): `--movie_rows` rows (recordings x
rotations; the paper's 20) of `--movie_frames` frames, waves of 18 frames and a quiet frame.
"""

import argparse
import json
import time

import jax
import numpy as np

from rwjax import defaults
from rwjax import models
from rwjax.ssl import optim
from rwjax.ssl import pairs
from rwjax.ssl import sources
from rwjax.ssl import train_step as train_step_lib
from rwjax.ssl import trainer


def _config(args):
  c = defaults.pretrain_config()
  c.model.stem = args.stem
  c.model.dtype = args.dtype
  c.model.conv = args.conv
  c.data.retinas_per_device = args.retinas
  c.data.frames_per_step = args.frames_per_step
  c.data.sim_groups = args.sim_groups
  if args.sim_dt:
    c.data.sim_params[c.data.simulator].dt = args.sim_dt
  c.data.buffer_frames = args.buffer_frames
  c.data.wave_labels = args.wave_labels
  c.data.warmup_s = args.warmup_s  # 200: past the refractory lull after the first wave
  c.data.calibration_s = args.calibration_s
  c.train.batch_pairs = args.batch_pairs
  c.model.width = args.width
  c.data.input_size = args.input_size
  return c


def _measure_waves(args):
  """Steps/s of whole-wave batches from a synthetic movie (see the module docstring)."""
  from rwjax.ssl import wave_batches
  config = _config(args)
  config.data.source, config.data.batching = 'file', 'waves'
  config.data.shuffle = args.shuffle
  config.data.wave_batch_frames = args.wave_batch_frames
  config.loss.denominator = 'negatives'
  n, size = args.movie_frames, config.data.input_size
  labels = np.where(np.arange(n) % 19 < 18, np.arange(n) // 19, -1).astype(np.int32)[None]
  movie = np.random.default_rng(0).random((1, n, size, size), np.float32)
  n_dev = jax.device_count()
  schedule = wave_batches.make_schedule(
      labels, budget=args.wave_batch_frames, val_fraction=0.2, seed=0, order='shuffled',
      temporal=pairs.control_parts(args.shuffle)[0], n_devices=n_dev)
  source = trainer.with_wave_plan(sources.make_file_source(movie, labels), schedule, n_dev)
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ('data',))
  model = models.create_model(**config.model)
  tx = optim.make_optimizer(name='adam', lr=1e-4, weight_decay=1e-6)
  state = trainer.init_state(model, tx, source, mesh, config.seed, size)
  step = train_step_lib.make_train_step(
      model, tx, mesh, trainer.make_batch_fn(source, config, 0), denominator='negatives')
  plans = schedule.plans_from(0)
  put = lambda s: trainer.put_plan(s, next(plans)[2], mesh)
  t0 = time.perf_counter()
  state, m = step(put(state))
  jax.block_until_ready(m)
  first = time.perf_counter() - t0
  state, m = step(put(state))
  jax.block_until_ready(m)
  t0, valid = time.perf_counter(), 0
  for _ in range(args.steps):
    state, m = step(put(state))
    valid += int(m['n_anchors'])
  dt = (time.perf_counter() - t0) / args.steps
  # The same network on batch_pairs random pairs of the same movie.
  config.data.batching, config.loss.denominator = 'pairs', 'all'
  pair_source = sources.make_file_source(movie, labels)
  pair_state = trainer.init_state(model, tx, pair_source, mesh, config.seed, size)
  pair_step = train_step_lib.make_train_step(
      model, tx, mesh, trainer.make_batch_fn(pair_source, config, args.batch_pairs // n_dev))
  for _ in range(2):
    pair_state, m = pair_step(pair_state)
  jax.block_until_ready(m)
  t0 = time.perf_counter()
  for _ in range(args.steps):
    pair_state, m = pair_step(pair_state)
  jax.block_until_ready(m)
  dt_pairs = (time.perf_counter() - t0) / args.steps
  stats = jax.devices()[0].memory_stats() or {}
  print(json.dumps(dict(
      bench='train_step', batching='waves', jax=jax.__version__,
      device=jax.devices()[0].device_kind, n_devices=n_dev, stem=args.stem, width=args.width,
      dtype=jax.numpy.dtype(models.resolve_dtype(args.dtype)).name, conv=args.conv,
      shuffle=args.shuffle,
      wave_batch_frames=args.wave_batch_frames, batch_slots=schedule.capacity,
      anchors_per_step=valid / args.steps, step_ms=dt * 1e3,
      views_per_s=schedule.capacity / dt, anchor_views_per_s=valid / args.steps / dt,
      first_step_s=first, peak_memory_gb=stats.get('peak_bytes_in_use', 0) / 2**30,
      batch_pairs=args.batch_pairs, pairs_step_ms=dt_pairs * 1e3,
      pairs_views_per_s=2 * args.batch_pairs / dt_pairs)))


def _fixed(source: sources.Source) -> sources.Source:
  """The same source without simulation: every step reuses the initial buffer."""
  def advance(state):
    return state, state.buffer, state.labels
  return source._replace(advance=advance)


def _measure(config, source, mesh, steps):
  model = models.create_model(**config.model)
  tx = optim.make_optimizer(name='adam', lr=1e-3)
  state = trainer.init_state(model, tx, source, mesh, config.seed, config.data.input_size)
  step = train_step_lib.make_train_step(
      model, tx, mesh, trainer.make_batch_fn(source, config,
                                           config.train.batch_pairs // mesh.size))
  feed = source.feed or (lambda s, i: s)  # a host-streamed movie: its chunk of step i
  t0 = time.perf_counter()
  state, m = step(feed(state, 0))
  jax.block_until_ready(m)
  first = time.perf_counter() - t0
  for i in range(1, 4):
    state, m = step(feed(state, i))
  jax.block_until_ready(m)
  t0 = time.perf_counter()
  for i in range(4, 4 + steps):
    state, m = step(feed(state, i))
  jax.block_until_ready(m)
  dt = (time.perf_counter() - t0) / steps
  return state, dt, first, float(m['n_anchors'])


def _measure_recorded(args):
  """views/s of the pairs step fed by a recorded-size movie in device memory, streamed from the
  host, and by the simulator (see the module docstring)."""
  config = _config(args)
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ('data',))
  n_dev, size = jax.device_count(), config.data.input_size
  sim_source = trainer.build_source(config)
  _, dt_sim, _, _ = _measure(config, sim_source, mesh, args.steps)
  _, dt_fixed, _, _ = _measure(config, _fixed(sim_source), mesh, args.steps)
  t = args.movie_frames
  labels = np.where(np.arange(t) % 19 < 18, np.arange(t) // 19, -1).astype(np.int32)
  labels = np.tile(labels, (args.movie_rows, 1))
  movie = np.random.default_rng(0).random((args.movie_rows, t, size, size), np.float32)
  config.data.source = 'file'
  out = {}
  for where in ('sharded', 'replicated', 'stream'):
    config.data.placement = where
    if where == 'stream':  # default: chunks of a quarter of a shard (at least one row)
      lay = out['layout']
      row = lay.length * (size * size * 4 + 4)
      config.data.device_bytes = float(args.stream_bytes or 3 * row * max(1, lay.rows // 4))
    source = trainer.placed_source(config, movie, labels)
    if where == 'sharded':
      out['layout'] = source.inputs[0].layout
    _, dt, first, anchors = _measure(config, source, mesh, args.steps)
    out[where] = dict(step_ms=dt * 1e3, views_per_s=2 * args.batch_pairs / dt,
                      first_step_s=first, anchors_last_step=anchors,
                      device_bytes=int(sum(x.nbytes for x in source.inputs)
                                       // (1 if where == 'replicated' else n_dev)))
    if where == 'stream':
      out[where].update(chunk_rows=source.feed.c)
  layout = out.pop('layout')
  out['sharded'].update(shard_rows=layout.rows, row_frames=layout.length)
  print(json.dumps(dict(
      bench='train_step', batching='recorded', jax=jax.__version__,
      device=jax.devices()[0].device_kind, n_devices=n_dev, stem=args.stem, width=args.width,
      conv=args.conv,
      input_size=size, batch_pairs=args.batch_pairs, retinas_per_device=args.retinas,
      movie_rows=args.movie_rows, movie_frames=t, movie_bytes=movie.nbytes, steps=args.steps,
      sim=dict(step_ms=dt_sim * 1e3, views_per_s=2 * args.batch_pairs / dt_sim),
      sim_fixed_buffer=dict(step_ms=dt_fixed * 1e3, views_per_s=2 * args.batch_pairs / dt_fixed),
      **out, sharded_to_sim=dt_sim / (out['sharded']['step_ms'] / 1e3),
      sharded_to_fixed_buffer=dt_fixed / (out['sharded']['step_ms'] / 1e3),
      stream_to_sharded=out['sharded']['step_ms'] / out['stream']['step_ms'])))


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--width', type=int, default=64, help='ResNet-18 base width (64 = the paper)')
  p.add_argument('--batching', default='pairs',
                 help="'pairs' (the stream) | 'waves' | 'recorded'")
  p.add_argument('--wave_batch_frames', type=int, default=3000)
  p.add_argument('--movie_frames', type=int, default=20000)
  p.add_argument('--movie_rows', type=int, default=20, help='batching=recorded: movie rows')
  p.add_argument('--stream_bytes', type=float, default=0,
                 help='batching=recorded: config.data.device_bytes of the streamed run')
  p.add_argument('--input_size', type=int, default=32)
  p.add_argument('--warmup_s', type=float, default=200.0,
                 help='simulated warm-up (init only; shorten it on a CPU)')
  p.add_argument('--calibration_s', type=float, default=60.0)
  p.add_argument('--shuffle', default='none', help='control (batching=waves)')
  p.add_argument('--stem', default='imagenet')
  p.add_argument('--dtype', default='auto')
  p.add_argument('--conv', default='matmul_small', help="model.conv: 'matmul_small' | 'xla'")
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
  trainer.validate(config, jax.device_count())
  if args.batching == 'waves':
    return _measure_waves(args)
  if args.batching == 'recorded':
    return _measure_recorded(args)
  source = trainer.build_source(config)
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ('data',))
  state, dt, first, anchors = _measure(config, source, mesh, args.steps)
  _, dt_fixed, _, _ = _measure(config, _fixed(source), mesh, args.steps)
  sim_s = trainer.time_call(trainer.source_step(source, mesh), state.source, repeats=20)
  views = 2 * args.batch_pairs
  fresh = args.retinas * args.frames_per_step * jax.device_count() // args.sim_groups
  stats = jax.devices()[0].memory_stats() or {}
  print(json.dumps(dict(
      bench='train_step', jax=jax.__version__, device=jax.devices()[0].device_kind,
      batching='pairs', width=args.width,
      n_devices=jax.device_count(), stem=args.stem,
      dtype=jax.numpy.dtype(models.resolve_dtype(args.dtype)).name, conv=args.conv,
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
