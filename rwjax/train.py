"""Pre-trains a ResNet-18 with SimCLR on retinal waves.

  python -m rwjax.train --config=configs/pretrain_waves.py --workdir=DIR [--config.x.y=v ...]

The wave simulator runs inside the jitted, sharded training step on every device.
A workdir that holds a checkpoint is resumed; `--config.train.steps=0` writes the
freshly initialised network (the random-init baseline of the evaluation).
"""

import signal
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np

from rwjax import distributed
from rwjax import metrics as metrics_lib
from rwjax import models
from rwjax import waves
from rwjax.errors import InputError, cli_main, parse_flags
from rwjax.ssl import augment as augment_lib
from rwjax.ssl import checkpoint
from rwjax.ssl import monitor as monitor_lib
from rwjax.ssl import optim
from rwjax.ssl import pairs
from rwjax.ssl import sources
from rwjax.ssl import train_step as train_step_lib
from rwjax.waves import frames as frames_lib


def validate(config: ml_collections.ConfigDict, n_devices: int) -> None:
  """Every config value the trainer reads, checked once; InputError on the first bad one."""
  d, t = config.data, config.train

  def positive(name, value, integer=True):
    ok = (isinstance(value, int) and not isinstance(value, bool)) if integer else True
    if not ok or not value > 0:
      raise InputError(f'config.{name}={value!r} must be a positive '
                       f'{"integer" if integer else "number"}')

  if not isinstance(t.steps, int) or t.steps < 0:
    raise InputError(f'config.train.steps={t.steps!r} must be an integer >= 0')
  for name in ('train.batch_pairs', 'train.log_every', 'train.checkpoint_every',
               'train.keep_checkpoints', 'data.input_size', 'data.frame_separation'):
    positive(name, config[name.split('.')[0]][name.split('.')[1]])
  if isinstance(t.monitor_every, bool) or not isinstance(t.monitor_every, int) or (
      t.monitor_every < 0):
    raise InputError(f'config.train.monitor_every={t.monitor_every!r} must be an integer '
                     '>= 0 (0 = off)')
  if t.monitor_every and not (config.monitor.source == 'digits' or any(
      config.monitor.source.startswith(p) and len(config.monitor.source) > len(p)
      for p in ('tfds:', 'folder:'))):
    raise InputError(f'config.monitor.source={config.monitor.source!r} is unknown; use '
                     "digits, tfds:<name> or folder:<path> (or config.train.monitor_every=0)")
  if t.batch_pairs % n_devices:
    raise InputError(f'config.train.batch_pairs={t.batch_pairs} is not divisible by the '
                     f'{n_devices} devices; use a multiple of {n_devices}')
  positive('loss.temperature', config.loss.temperature, integer=False)
  if d.shuffle not in pairs.SHUFFLES:
    raise InputError(f'config.data.shuffle={d.shuffle!r} is unknown; use one of {pairs.SHUFFLES}')
  if d.source == 'sim':
    waves.get_model(d.simulator)
    for name in ('sim_size', 'retinas_per_device', 'frames_per_step', 'buffer_frames',
                 'sim_groups'):
      positive('data.' + name, d[name])
    if d.retinas_per_device % d.sim_groups:
      raise InputError(f'config.data.sim_groups={d.sim_groups} must divide '
                       f'config.data.retinas_per_device={d.retinas_per_device}')
    if d.sim_size % d.input_size:
      raise InputError(f'config.data.sim_size={d.sim_size} must be a multiple of '
                       f'config.data.input_size={d.input_size} (frames are block-pooled)')
    if d.frame_separation >= d.buffer_frames:
      raise InputError(f'config.data.frame_separation={d.frame_separation} must be smaller '
                       f'than config.data.buffer_frames={d.buffer_frames}')
    if d.warmup_s < 0 or d.calibration_s <= 0:
      raise InputError('config.data.warmup_s must be >= 0 and config.data.calibration_s > 0')
  elif d.source == 'file':
    if not d.movie:
      raise InputError("config.data.source='file' needs --config.data.movie=PATH.npy")
  else:
    raise InputError(f"config.data.source={d.source!r} is unknown; use 'sim' or 'file'")


def build_source(config: ml_collections.ConfigDict) -> sources.Source:
  """The frame source named by config.data (read here, once)."""
  d = config.data
  if d.source == 'file':
    from rwjax.waves import movie as movie_lib, stats  # host-side only
    movie = movie_lib.load_movie(d.movie)
    movie = movie[None] if movie.ndim == 3 else movie
    if d.frame_separation >= movie.shape[1]:
      raise InputError(f'config.data.frame_separation={d.frame_separation} is larger than '
                       f'the movie ({movie.shape[1]} frames)')
    if d.labels:
      labels = np.load(d.labels).astype(np.int32)
      if labels.size != np.prod(movie.shape[:2]):
        raise InputError(f'labels {d.labels} have shape {labels.shape}; the movie needs one '
                         f'label per frame, {movie.shape[:2]}')
      labels = labels.reshape(movie.shape[:2])
    else:  # find the waves (in the units of config.data.simulator unless a threshold is set)
      threshold = d.threshold if d.threshold is not None else waves.get_model(d.simulator).THRESHOLD
      labels = stats.frame_labels(movie, threshold)
    x = frames_lib.to_network_input(jnp.asarray(movie), d.input_size, 1)[..., 0]
    return sources.make_file_source(np.asarray(x), labels)
  model = waves.get_model(d.simulator)
  given = dict(d.sim_params.get(d.simulator, {}))
  fields = [f for f in model.Params._fields if f != 'size']
  unknown = [k for k in given if k not in fields]
  if unknown:
    raise InputError(f'config.data.sim_params.{d.simulator} has unknown keys {unknown}; '
                     f'{d.simulator} parameters are {fields} (data.sim_size sets the size)')
  params = model.Params(size=d.sim_size, **given)
  return sources.make_sim_source(
      model=model, params=params, input_size=d.input_size, retinas=d.retinas_per_device,
      frames_per_step=d.frames_per_step, buffer_frames=d.buffer_frames,
      groups=d.sim_groups, warmup_s=d.warmup_s, calibration_s=d.calibration_s,
      threshold=d.threshold if d.threshold is not None else model.THRESHOLD,
      active_fraction=d.active_fraction)


def make_batch_fn(source: sources.Source, config: ml_collections.ConfigDict,
                  n_pairs: int) -> train_step_lib.BatchFn:
  """Per-device batch: advance the source, sample positive pairs, augment, add channels."""
  d = config.data
  spatial = d.shuffle in ('spatial', 'spatiotemporal')
  # One fixed pixel permutation for the whole run (the spatial-shuffle control).
  perm = (pairs.make_pixel_perm(jax.random.PRNGKey(config.seed + 1), d.input_size,
                                d.input_size) if spatial else None)
  channels, aug = config.model.channels, d.augment

  def batch_fn(state, key):
    state, frames, labels = source.advance(state)
    # Simulated waves are device-local: offset ids by the device. A file movie is the
    # same on every device, so its ids are too.
    r, t = labels.shape
    offset = jax.lax.axis_index('data') * r * t if d.source == 'sim' else 0
    k_pairs, k_aug = jax.random.split(key)
    batch = pairs.sample_pairs(k_pairs, frames, labels, n_pairs,
                               separation=d.frame_separation, shuffle=d.shuffle, perm=perm,
                               id_offset=offset)
    views = augment_lib.augment(k_aug, batch['views'][..., None], max_shift=aug.translate,
                                flip=aug.flip, noise_std=aug.noise_std)
    return state, {**batch, 'views': jnp.repeat(views, channels, axis=-1)}

  return batch_fn


class NonFiniteLoss(Exception):
  pass


def _check_finite(pending: list) -> None:
  """Raises NonFiniteLoss naming the first step whose loss or gradient is not finite."""
  for step, m in pending:
    loss, grad_norm = float(m['loss']), float(m['grad_norm'])
    if not (np.isfinite(loss) and np.isfinite(grad_norm)):
      raise NonFiniteLoss(f'the loss is not finite at step {step} (loss={loss}, '
                          f'grad_norm={grad_norm})')


def source_init(source: sources.Source, mesh):
  """source.init over the mesh: f(key, *inputs) -> every device's state (P('data'))."""
  P = jax.sharding.PartitionSpec
  return jax.jit(jax.shard_map(source.init, mesh=mesh,
                               in_specs=(P(),) * (1 + len(source.inputs)),
                               out_specs=P('data'), check_vma=False))


def init_state(model, tx, source: sources.Source, mesh, seed: int,
               image_size: int) -> train_step_lib.TrainState:
  """Fresh state: the source initialised on every device (its own retinas and RNG
  stream), the replicated parts placed beside it."""
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  key_source, key_state = jax.random.split(jax.random.PRNGKey(seed))
  state = train_step_lib.create_train_state(model, tx, key_state, image_size, source=None)
  state = jax.device_put(state, replicated)
  inputs = [jax.device_put(x, replicated) for x in source.inputs]
  return state.replace(source=source_init(source, mesh)(key_source, *inputs))


def source_step(source: sources.Source, mesh):
  """The source's per-step advance alone, jitted over the mesh (to time the simulator)."""
  P = jax.sharding.PartitionSpec
  return jax.jit(jax.shard_map(lambda s: source.advance(s)[0], mesh=mesh,
                               in_specs=P('data'), out_specs=P('data')))


def time_call(fn, arg, repeats: int = 3) -> float:
  """Seconds per call of fn(arg) after a compiling call."""
  jax.block_until_ready(fn(arg))  # compile
  t0 = time.perf_counter()
  for _ in range(repeats):
    out = fn(arg)
  jax.block_until_ready(out)
  return (time.perf_counter() - t0) / repeats


def train(config: ml_collections.ConfigDict, workdir: str) -> train_step_lib.TrainState:
  """Runs (or resumes) pre-training; returns the final state."""
  if not workdir:
    raise InputError('--workdir is required: the directory for checkpoints and metrics')
  if config.multihost:
    distributed.initialize()
  n_devices = jax.device_count()
  validate(config, n_devices)
  lead = jax.process_index() == 0
  checkpoint.check_workdir(workdir)
  checkpoint.write_config(workdir, config, n_devices, write=lead)

  mesh = jax.sharding.Mesh(np.array(jax.devices()), ('data',))
  model = models.create_model(**config.model)
  o, t = config.optim, config.train
  schedule_args = dict(name=o.name, lr=o.lr, batch_pairs=t.batch_pairs,
                       warmup_steps=o.warmup_steps, total_steps=max(t.steps, 1),
                       schedule=o.schedule)
  tx = optim.make_optimizer(weight_decay=o.weight_decay, **schedule_args)
  source = build_source(config)

  t0 = time.perf_counter()
  state = jax.block_until_ready(
      init_state(model, tx, source, mesh, config.seed, config.data.input_size))
  init_s = time.perf_counter() - t0

  # Online natural-image accuracies, from the run's initial network. Every process
  # measures (local devices only, no collectives), so that none waits for process 0 at
  # the next collective; process 0 logs.
  monitor = None
  if t.monitor_every and t.monitor_every <= t.steps:
    monitor = monitor_lib.make_monitor(config, model, monitor_lib.variables_of(state))
  mngr = checkpoint.manager(workdir, t.keep_checkpoints)
  saveable = lambda s: s.replace(source=source.checkpoint_view(s.source))
  restored = checkpoint.restore(mngr, saveable(state))
  if restored is not None:
    state = restored.replace(source=source.restore_view(state.source, restored.source))
  start = int(state.step)
  if lead:
    what = f'resuming from step {start}' if restored is not None else 'starting'
    print(f'{what}: {n_devices} device(s), {jax.devices()[0].platform}, init {init_s:.1f}s',
          flush=True)
  if t.steps == 0 and restored is None:
    checkpoint.save(mngr, 0, saveable(state))  # the random-init baseline
  if start >= t.steps:
    mngr.wait_until_finished()
    mngr.close()
    return state

  batch_fn = make_batch_fn(source, config, t.batch_pairs // n_devices)
  step_fn = train_step_lib.make_train_step(
      model, tx, mesh, batch_fn, temperature=config.loss.temperature,
      separation=config.data.frame_separation,
      learning_rate_fn=optim.make_schedule(**schedule_args))
  sim_s = time_call(source_step(source, mesh), state.source)

  # One process: our SIGTERM handler. Several: JAX's preemption sync (started by
  # jax.distributed.initialize) agrees on a step at which every process saves and
  # stops; a handler here would replace its own and let one process stop alone.
  stop = {'signal': False}
  previous = None if config.multihost else signal.signal(
      signal.SIGTERM, lambda *_: stop.update(signal=True))
  writer = metrics_lib.MetricWriter(workdir, enabled=lead)
  pending, last_good = [], start if restored is not None else None
  monitored = start
  t_first = time.perf_counter()
  try:
    for step in range(start, t.steps):
      state, m = step_fn(state)
      pending.append((step, m))
      done = step + 1
      if step == start:
        jax.block_until_ready(m)
        compile_s = time.perf_counter() - t_first
        progress = metrics_lib.Progress(t.steps, done, enabled=lead)  # rates exclude compilation
        if lead:
          print(f'first step (compilation) {compile_s:.1f}s', flush=True)
      preempted = stop['signal'] or (config.multihost and mngr.reached_preemption(done))
      if done % t.log_every == 0 or done == t.steps or preempted:
        _check_finite(pending)
        vals = {k: float(np.mean([float(p[1][k]) for p in pending])) for k in pending[-1][1]}
        rate = progress.rate(done)
        vals.update(steps_per_s=rate, views_per_s=rate * 2 * t.batch_pairs,
                    sim_share=min(1.0, sim_s * rate))
        if monitor is not None and done // t.monitor_every > monitored // t.monitor_every:
          t_monitor = time.perf_counter()  # at the first log step of each interval
          vals.update(monitor(monitor_lib.variables_of(state)))
          vals['monitor/seconds'] = time.perf_counter() - t_monitor
          monitored = done
        writer.write(done, vals)
        progress.line(done, {k: vals[k] for k in ('loss', 'lr', 'views_per_s', 'sim_share')})
        pending = []
      if done % t.checkpoint_every == 0 or done == t.steps or preempted:
        _check_finite(pending)
        checkpoint.save(mngr, done, saveable(state))
        last_good = done
      if preempted:
        if lead:
          print(f'preempted: saved step {done}, exiting', flush=True)
        break
  except NonFiniteLoss as e:
    mngr.wait_until_finished()
    kept = (f'the last good checkpoint (step {last_good}) is kept' if last_good is not None
            else 'no checkpoint was written')
    raise NonFiniteLoss(f'{e}; {kept} in {mngr.directory}. Lower --config.optim.lr or check '
                        'the data') from None
  finally:
    if previous is not None:
      signal.signal(signal.SIGTERM, previous)
    writer.close()
  checkpoint.wait(mngr)  # SaveError (the last good checkpoint named) if a save failed
  mngr.close()
  return state


def define_flags() -> None:
  """The binary's flags; defined only when run as a program, so that importing the
  module (tests, the demo, benches) does not claim --config beside other binaries."""
  config_flags.DEFINE_config_file(
      'config', None, 'Pre-training config file (configs/pretrain_*.py).', lock_config=True)
  flags.DEFINE_string('workdir', None, 'Checkpoints, config.json and metrics go here.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments {argv[1:]}')

  def run():
    try:
      train(flags.FLAGS.config, flags.FLAGS.workdir)
    except (NonFiniteLoss, checkpoint.SaveError) as e:
      raise InputError(str(e)) from None

  cli_main(run)


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=parse_flags)
