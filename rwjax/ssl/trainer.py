"""The pre-training library: SimCLR on retinal waves, run or resumed in a workdir.

`train(config, workdir, hooks=())` runs it (the binary is `python -m rwjax.train`); the wave
simulator runs inside the jitted, sharded training step on every device. A workdir holding a
checkpoint is resumed (rwjax.checkpoint.restore); `config.train.steps=0` writes the freshly
initialised network (the evaluation's random-init baseline).

Hooks measure the network while it trains; the caller hands them in, as this library imports
no evaluation code (rwjax.eval.monitor.hooks(config) gives the online monitor):
  hook(model, init_variables) -> measure
      called once before the first step (also on resume), with the SimCLRModel and the
      run's initial network (from config.seed, whatever step the run resumes at);
  measure(step, variables) -> {name: float}
      called at the first log step of every config.train.monitor_every steps (0: never)
      with the current network; its values join that step's metrics record (metrics file
      and TensorBoard), with 'monitor/seconds', the time all measures took.
  variables = {'params', 'batch_stats'} on one local device (`variables_of`). Every process
  calls them (local devices only: a hook must not run collectives, or the processes would
  wait on each other); process 0's values are logged.
"""

import signal
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rwjax import checkpoint
from rwjax import defaults
from rwjax import distributed
from rwjax import metrics as metrics_lib
from rwjax import models
from rwjax import schema as S
from rwjax import waves
from rwjax.errors import InputError
from rwjax.ssl import augment as augment_lib
from rwjax.ssl import optim
from rwjax.ssl import pairs
from rwjax.ssl import placement
from rwjax.ssl import sources
from rwjax.ssl import train_step as train_step_lib
from rwjax.ssl import wave_batches
from rwjax.waves import frames as frames_lib

P = jax.sharding.PartitionSpec
Measure = Callable[[int, dict], dict]
Hook = Callable[[models.SimCLRModel, dict], Measure]  # see the module docstring


def validate(config: ml_collections.ConfigDict, n_devices: int) -> None:
  """Every config value the trainer reads, checked once; InputError on the first bad one: each
  key by its rule (rwjax.defaults.pretrain_rules), then the rules across keys."""
  S.check(config, defaults.pretrain_rules())
  d, t = config.data, config.train
  if t.batch_pairs % n_devices:
    raise InputError(f'config.train.batch_pairs={t.batch_pairs} is not divisible by the '
                     f'{n_devices} devices; use a multiple of {n_devices}')
  if d.batching == 'pairs' and t.epochs:
    raise InputError("config.train.epochs counts passes over a movie's waves: it needs "
                     "config.data.batching='waves' (set train.epochs=0 and use train.steps)")
  if d.source == 'sim':
    if d.batching == 'waves':  # the figures: docs/training.md
      raise InputError(
          "config.data.batching='waves' needs config.data.source='file': a whole-wave batch of "
          'data.wave_batch_frames frames needs far more finished waves than the on-device '
          'retinas produce per step, so successive batches would repeat nearly the same waves. '
          'Write a movie with `python -m rwjax.waves simulate` (see configs/pretrain_paper.py), '
          "or keep batching='pairs' for the on-device simulator")
    if d.retinas_per_device % d.sim_groups:
      raise InputError(f'config.data.sim_groups={d.sim_groups} must divide '
                       f'config.data.retinas_per_device={d.retinas_per_device}')
    if d.sim_size % d.input_size:
      raise InputError(f'config.data.sim_size={d.sim_size} must be a multiple of '
                       f'config.data.input_size={d.input_size} (frames are block-pooled)')
    if d.frame_separation >= d.buffer_frames:
      raise InputError(f'config.data.frame_separation={d.frame_separation} must be smaller '
                       f'than config.data.buffer_frames={d.buffer_frames}')
  elif not d.movie:
    raise InputError("config.data.source='file' needs --config.data.movie=PATH.npy")
  elif d.movie_format != 'saved':
    _validate_recorded(config)


def _validate_recorded(config: ml_collections.ConfigDict) -> None:
  """config.data.recorded (source='file' with recordings): the keys that need each other, and
  every movie's and interval file's header, so that a bad file fails before the workdir is
  touched."""
  from rwjax.waves import dataset, readers  # host-side only
  d, r = config.data, config.data.recorded
  needs_dt = [n for n in ('dff_window_s', 'background_s', 'smooth_s') if r[n] > 0]
  if needs_dt and not r.frame_dt > 0:
    raise InputError(f'config.data.recorded.{needs_dt[0]} is in seconds: set '
                     'config.data.recorded.frame_dt (seconds per frame)')
  if r.smooth_mm > 0 and not r.pixel_mm > 0:
    raise InputError('config.data.recorded.smooth_mm is in mm: set config.data.recorded.pixel_mm')
  if not r.intervals and d.threshold is None:
    raise InputError('recorded movies need wave labels: set config.data.recorded.intervals '
                     '(interval files) or config.data.threshold (to find the waves)')
  if d.labels:
    raise InputError('config.data.labels (per-frame labels of a saved movie) does not apply to '
                     'recordings; give [start, end) interval files in '
                     'config.data.recorded.intervals, or a threshold')
  paths, lengths = readers.movie_paths(d.movie, d.movie_format), []
  for path in paths:
    with readers.open_movie(path, fmt=d.movie_format, key=r.key, axes=r.axes) as movie:
      t, h, w = movie.shape
    lengths.append(t)
    if h % d.input_size or w % d.input_size:
      raise InputError(f'{path!r}: frames of {h}x{w} cannot be block-pooled to '
                       f'config.data.input_size={d.input_size}; choose a divisor of both')
    if d.frame_separation >= t:
      raise InputError(f'config.data.frame_separation={d.frame_separation} is not shorter than '
                       f'{path!r} ({t} frames)')
  if r.intervals:  # ranges and overlaps against the movies' lengths
    dataset.labels_from_intervals(readers.movie_paths(r.intervals), lengths)


def recorded_dataset(config: ml_collections.ConfigDict):
  """The recordings of config.data as network input (rwjax.waves.dataset.Dataset): each
  config.data.recorded key is the load_dataset argument of its name."""
  from rwjax.waves import dataset  # host-side only
  d = config.data
  return dataset.load_dataset(d.movie, out_size=d.input_size, fmt=d.movie_format,
                              threshold=d.threshold, norm=d.movie_norm,
                              **{**d.recorded, 'rotations': tuple(d.recorded.rotations)})


def build_source(config: ml_collections.ConfigDict) -> sources.Source:
  """The frame source named by config.data (read here, once)."""
  d = config.data
  model = waves.get_model(d.simulator)  # a saved movie's units too, without a threshold
  threshold = d.threshold if d.threshold is not None else model.THRESHOLD
  if d.source == 'file' and d.movie_format != 'saved':  # recordings (rwjax.waves.dataset)
    data = recorded_dataset(config)
    return placed_source(config, data.movie, data.labels)
  if d.source == 'file':
    from rwjax.waves import movie as movie_lib, stats  # host-side only
    movie = movie_lib.load_movie(d.movie)
    movie = movie[None] if movie.ndim == 3 else movie
    if d.frame_separation >= movie.shape[1]:
      raise InputError(f'config.data.frame_separation={d.frame_separation} is larger than '
                       f'the movie ({movie.shape[1]} frames)')
    if d.labels:
      from rwjax import paths as paths_lib  # pylint: disable=g-import-not-at-top
      labels = paths_lib.load_npy(d.labels).astype(np.int32)  # any path (gs://)
      if labels.size != np.prod(movie.shape[:2]):
        raise InputError(f'labels {d.labels} have shape {labels.shape}; the movie needs one '
                         f'label per frame, {movie.shape[:2]}')
      labels = labels.reshape(movie.shape[:2])
    else:  # find the waves
      labels = stats.frame_labels(movie, threshold, min_size=d.min_wave_size)
    x = frames_lib.to_network_input(jnp.asarray(movie), d.input_size, 1, d.movie_norm)[..., 0]
    return placed_source(config, np.asarray(x), labels)
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
      threshold=threshold, active_fraction=d.active_fraction, wave_labels=d.wave_labels,
      label_delay=d.label_delay, min_wave_size=d.min_wave_size, norm=d.movie_norm)


def placed_source(config: ml_collections.ConfigDict, movie: np.ndarray, labels: np.ndarray):
  """The file source of movie f32[B, T, h, w] and labels i32[B, T], placed as
  config.data.placement says: copied to every device, sharded over them, or streamed from the
  host (rwjax.ssl.placement); with its whole-wave schedule for data.batching='waves' (made
  here, so that bad labels fail before the workdir is touched)."""
  d, n = config.data, jax.device_count()
  where, layout = placement.choose(d.placement, movie, labels, n, d.device_bytes)
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ('data',))
  args = dict(budget=d.wave_batch_frames, val_fraction=d.val_fraction, seed=config.seed,
              order=d.wave_order, temporal=pairs.control_parts(d.shuffle)[0], n_devices=n)
  if d.batching == 'waves':
    if where == 'stream':
      source, schedule = placement.stream_schedule(movie, labels, d.device_bytes, mesh, **args)
    elif where == 'sharded':
      source = placement.sharded_source(movie, labels, layout)
      schedule = placement.sharded_schedule(np.asarray(source.inputs[1]), layout, **args)
    else:
      source = sources.make_file_source(movie, labels)
      schedule = wave_batches.make_schedule(np.asarray(source.inputs[1]), **args)
    return with_wave_plan(source, schedule, n)
  if where == 'replicated':
    return sources.make_file_source(movie, labels)
  if where == 'stream':
    source = placement.stream_source(movie, labels, layout, d.device_bytes, d.stream_steps, mesh)
    rows, what = source.feed.c, 'a streamed chunk'
  else:
    source, rows, what = placement.sharded_source(movie, labels, layout), layout.rows, 'a shard'
  placement.check_pairs(layout, rows, config.train.batch_pairs // n, d.frame_separation, what)
  return source


def make_batch_fn(source: sources.Source, config: ml_collections.ConfigDict,
                  n_pairs: int) -> train_step_lib.BatchFn:
  """Per-device batch: advance the source, take pairs (or the step's whole waves), augment,
  add channels, apply the spatial control."""
  d = config.data
  temporal, spatial = pairs.control_parts(d.shuffle)
  # One fixed pixel permutation for the whole run (the spatial_fixed control).
  perm = (pairs.make_pixel_perm(jax.random.PRNGKey(config.seed + 1), d.input_size,
                                d.input_size) if spatial == 'fixed' else None)
  # spatial_per_frame on a movie: each movie frame's permutations are fixed for the run (the
  # paper permutes its movie once); in the stream each view draws its own.
  frame_key = jax.random.PRNGKey(config.seed + 2)
  channels, aug = config.model.channels, d.augment

  def finish(batch, k_aug, view_keys=None):
    views = augment_lib.augment(k_aug, batch['views'][..., None], max_shift=aug.translate,
                                flip=aug.flip, noise_std=aug.noise_std)
    views = jnp.repeat(views, channels, axis=-1)
    if spatial == 'per_frame':
      if view_keys is None:
        view_keys = jax.random.split(jax.random.fold_in(k_aug, 1), views.shape[0])
      views = pairs.shuffle_pixels_per_frame(view_keys, views)
    return {**batch, 'views': views}

  def wave_batch_fn(state, key):
    state, frames, _ = source.advance(state)
    plan = state[1]
    if hasattr(plan, 'views'):  # streamed: the host gathered this device's views
      views = plan.views
    else:  # sharded: plan.frame counts the frames of all shards; this device holds its own
      flat = frames.reshape((-1,) + frames.shape[2:])
      views = flat[plan.frame - (jax.lax.axis_index('data') * flat.shape[0] if source.sharded
                                 else 0)]
    if perm is not None:
      views = views.reshape(views.shape[0], -1)[:, perm].reshape(views.shape)
    batch = {'views': views, 'wave_id': plan.wave_id, 'frame_idx': plan.frame_idx,
             'valid': plan.valid}
    view_keys = jax.vmap(lambda f: jax.random.fold_in(frame_key, f))(plan.frame)
    return state, finish(batch, key, view_keys)

  def batch_fn(state, key):
    state, frames, labels = source.advance(state)
    # Simulated waves are device-local: offset ids by the device. A file movie is the
    # same on every device, so its ids are too; a sharded one is not.
    r, t = labels.shape
    offset = jax.lax.axis_index('data') * r * t if d.source == 'sim' or source.sharded else 0
    k_pairs, k_aug = jax.random.split(key)
    batch = pairs.sample_pairs(k_pairs, frames, labels, n_pairs,
                               separation=d.frame_separation, shuffle=d.shuffle, perm=perm,
                               id_offset=offset)
    return state, finish(batch, k_aug)

  if d.batching == 'waves' and getattr(source, 'schedule', None) is None:
    raise InputError("config.data.batching='waves' is not available for this source; its "
                     'labels must go through trainer.placed_source')
  return wave_batch_fn if d.batching == 'waves' else batch_fn


class WaveSource(NamedTuple):
  """A file source with a slot for the step's whole-wave plan (a WavePlan of [capacity] arrays,
  sharded over 'data'); the training loop fills the slot before every step. Its state is
  (file source state, plan)."""
  init: Callable[..., Any]
  advance: Callable[[Any], tuple[Any, jax.Array, jax.Array]]
  checkpoint_view: Callable[[Any], Any]
  restore_view: Callable[[Any, Any], Any]
  inputs: tuple
  schedule: wave_batches.Schedule
  sharded: bool = False  # inputs split over 'data' (rwjax.ssl.placement)
  feed: Any = None


def with_wave_plan(source: sources.Source, schedule: wave_batches.Schedule,
                   n_devices: int) -> WaveSource:
  local = schedule.capacity // n_devices

  def init(key, *inputs):
    empty = wave_batches.WavePlan(*(jnp.zeros(local, dt) for dt in
                                    (jnp.int32, jnp.int32, jnp.int32, bool)))
    if hasattr(schedule, 'view_shape'):  # streamed: the plan carries its views
      empty = placement.StreamPlan(*empty, jnp.zeros((local,) + schedule.view_shape))
    return source.init(key, *inputs), empty

  def advance(state):
    inner, frames, labels = source.advance(state[0])
    return (inner, state[1]), frames, labels

  return WaveSource(init=init, advance=advance,
                    checkpoint_view=lambda s: source.checkpoint_view(s[0]),
                    restore_view=lambda fresh, saved: (source.restore_view(fresh[0], saved),
                                                       fresh[1]),
                    inputs=source.inputs, schedule=schedule, sharded=source.sharded)


def put_plan(state: train_step_lib.TrainState, plan: wave_batches.WavePlan, mesh):
  """`state` with `plan` (host arrays [capacity]) in its source's plan slot, split over 'data'."""
  sharding = jax.sharding.NamedSharding(mesh, P('data'))
  put = lambda x: x if isinstance(x, jax.Array) else jax.make_array_from_callback(
      x.shape, sharding, lambda i: x[i])  # (a streamed plan is on the devices already)
  return state.replace(source=(state.source[0], type(plan)(*map(put, plan))))


class NonFiniteLoss(Exception):
  """A step's loss or gradient norm is not finite."""


def _check_finite(pending: list) -> None:
  """Raises NonFiniteLoss naming the first step whose loss or gradient is not finite."""
  for step, m in pending:
    loss, grad_norm = float(m['loss']), float(m['grad_norm'])
    if not (np.isfinite(loss) and np.isfinite(grad_norm)):
      raise NonFiniteLoss(f'the loss is not finite at step {step} (loss={loss}, '
                          f'grad_norm={grad_norm})')


def source_init(source: sources.Source, mesh):
  """source.init over the mesh: f(key, *inputs) -> every device's state (P('data'))."""
  spec = P('data') if source.sharded else P()
  return jax.jit(jax.shard_map(source.init, mesh=mesh,
                               in_specs=(P(),) + (spec,) * len(source.inputs),
                               out_specs=P('data'), check_vma=False))


def init_state(model, tx, source: sources.Source, mesh, seed: int,
               image_size: int) -> train_step_lib.TrainState:
  """Fresh state: the source initialised on every device (its own retinas and RNG
  stream), the replicated parts placed beside it."""
  replicated = jax.sharding.NamedSharding(mesh, P())
  key_source, key_state = jax.random.split(jax.random.PRNGKey(seed))
  state = train_step_lib.create_train_state(model, tx, key_state, image_size, source=None)
  state = jax.device_put(state, replicated)
  inputs = [jax.device_put(x, replicated) for x in source.inputs] if not source.sharded else [
      jax.make_array_from_callback(x.shape, jax.sharding.NamedSharding(mesh, P('data')),
                                   lambda i, x=x: np.asarray(x[i]))
      for x in source.inputs]  # each device receives only its shard
  return state.replace(source=source_init(source, mesh)(key_source, *inputs))


def source_step(source: sources.Source, mesh):
  """The source's per-step advance alone, jitted over the mesh (to time the simulator)."""
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


def run_steps(config: ml_collections.ConfigDict, source) -> int:
  """Steps of the run: the batches of train.epochs epochs of whole waves when epochs > 0, else
  train.steps (train.steps = 0 always means: write the random-init network)."""
  schedule = getattr(source, 'schedule', None)
  if config.train.steps == 0 or not config.train.epochs or schedule is None:
    return config.train.steps
  return schedule.steps(config.train.epochs)


def validation_loss(eval_fn, state, plans: list, mesh) -> dict:
  """{'val_loss', 'val_loss_batch', 'val_anchors'}: the mean over validation batches (with an
  anchor) of their loss, with BatchNorm's running statistics as the paper's
  evaluate_val_loss_one_batch ('val_loss') and with each batch's own ('val_loss_batch': a
  network whose features lean on its batch's statistics reads well only here)."""
  losses, anchors = [], 0
  for plan in plans:
    m = eval_fn(put_plan(state, plan, mesh))
    if int(m['n_anchors']):
      losses.append((float(m['loss']), float(m['loss_batch'])))
      anchors += int(m['n_anchors'])
  running, batch = np.mean(losses, axis=0) if losses else (float('nan'),) * 2
  return {'val_loss': float(running), 'val_loss_batch': float(batch), 'val_anchors': anchors}


def variables_of(state: train_step_lib.TrainState) -> dict:
  """The network's {'params', 'batch_stats'} of a TrainState, on one local device (the
  replicated arrays' local copy), for a hook's single-device measurements."""
  local = lambda a: a.addressable_data(0)
  return jax.tree.map(local, {'params': state.params, 'batch_stats': state.batch_stats})


def train(config: ml_collections.ConfigDict, workdir: str,
          hooks: Sequence[Hook] = ()) -> train_step_lib.TrainState:
  """Runs (or resumes) pre-training; returns the final state.

  hooks: measurements of the network while it trains (module docstring), e.g.
    rwjax.eval.monitor.hooks(config).
  """
  if not workdir:
    raise InputError('--workdir is required: the directory for checkpoints and metrics')
  if config.multihost:
    distributed.initialize()
  n_devices = jax.device_count()
  validate(config, n_devices)
  lead = jax.process_index() == 0
  log = (lambda text: print(text, flush=True)) if lead else (lambda text: None)

  mesh = jax.sharding.Mesh(np.array(jax.devices()), ('data',))
  model = models.create_model(**config.model)
  source = build_source(config)
  n_steps = run_steps(config, source)  # epochs of whole-wave batches: the lr schedule spans them
  o, t = config.optim, config.train
  schedule_args = dict(name=o.name, lr=o.lr, batch_pairs=t.batch_pairs,
                       warmup_steps=o.warmup_steps, total_steps=max(n_steps, 1),
                       schedule=o.schedule)
  tx = optim.make_optimizer(weight_decay=o.weight_decay, **schedule_args)
  # A run that fails on bad input leaves the workdir's config.json as it was: it is written
  # only once the state is built (the simulator checks its settings as it starts), after the
  # quick checks of the workdir and of the config against its checkpoint.
  checkpoint.check_workdir(workdir)
  checkpoint.check_config(workdir, config, n_devices)
  t0 = time.perf_counter()
  state = jax.block_until_ready(
      init_state(model, tx, source, mesh, config.seed, config.data.input_size))
  init_s = time.perf_counter() - t0
  if lead:
    checkpoint.write_config(workdir, config, n_devices)

  # From the run's initial network, on every process (module docstring).
  measures = ([hook(model, variables_of(state)) for hook in hooks]
              if t.monitor_every and t.monitor_every <= n_steps else [])
  mngr = checkpoint.manager(workdir, t.keep_checkpoints)
  saveable = lambda s: s.replace(source=source.checkpoint_view(s.source))
  restored = checkpoint.restore(mngr, saveable(state))
  if restored is not None:
    state = restored.replace(source=source.restore_view(state.source, restored.source))
  start = int(state.step)
  what = f'resuming from step {start}' if restored is not None else 'starting'
  log(f'{what}: {n_devices} device(s), {jax.devices()[0].platform}, init {init_s:.1f}s')
  if t.steps == 0 and restored is None:
    checkpoint.save(mngr, 0, saveable(state))  # the random-init baseline
  if start >= n_steps:
    mngr.wait_until_finished()
    mngr.close()
    return state

  batch_fn = make_batch_fn(source, config, t.batch_pairs // n_devices)
  loss_args = dict(temperature=config.loss.temperature, denominator=config.loss.denominator,
                   separation=config.data.frame_separation)
  step_fn = train_step_lib.make_train_step(
      model, tx, mesh, batch_fn, learning_rate_fn=optim.make_schedule(**schedule_args),
      **loss_args)
  sim_s = time_call(source_step(source, mesh), state.source)
  schedule = getattr(source, 'schedule', None)  # whole-wave batches: the loop feeds each plan
  feed = getattr(source, 'feed', None)  # a host-streamed movie: the loop feeds its chunks
  if schedule is not None:
    plans, val_plans = schedule.plans_from(start), schedule.validation()
    eval_fn = train_step_lib.make_eval_step(model, mesh, batch_fn, **loss_args)
  views_per_step = schedule.capacity if schedule is not None else 2 * t.batch_pairs

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
    for step in range(start, n_steps):
      if schedule is not None:
        epoch, epoch_end, plan = next(plans)
        state = put_plan(state, plan, mesh)
      if feed is not None:
        state = feed(state, step)
      state, m = step_fn(state)
      pending.append((step, m))
      done = step + 1
      if step == start:
        jax.block_until_ready(m)
        compile_s = time.perf_counter() - t_first
        progress = metrics_lib.Progress(n_steps, done, enabled=lead)  # rates exclude compilation
        log(f'first step (compilation) {compile_s:.1f}s')
      preempted = stop['signal'] or (config.multihost and mngr.reached_preemption(done))
      if done % t.log_every == 0 or done == n_steps or preempted:
        _check_finite(pending)
        vals = {k: float(np.mean([float(p[1][k]) for p in pending])) for k in pending[-1][1]}
        rate = progress.rate(done)
        vals.update(steps_per_s=rate, views_per_s=rate * views_per_step,
                    sim_share=min(1.0, sim_s * rate))
        if measures and done // t.monitor_every > monitored // t.monitor_every:
          t_monitor = time.perf_counter()  # at the first log step of each interval
          variables = variables_of(state)
          for measure in measures:
            vals.update(measure(done, variables))
          vals['monitor/seconds'] = time.perf_counter() - t_monitor
          monitored = done
        writer.write(done, vals)
        progress.line(done, {k: vals[k] for k in ('loss', 'lr', 'views_per_s', 'sim_share')})
        pending = []
      if schedule is not None and epoch_end and val_plans:  # the paper's per-epoch val loss
        vals = {'epoch': epoch + 1, **validation_loss(eval_fn, state, val_plans, mesh)}
        writer.write(done, vals)
        log(f"epoch {epoch + 1}: validation loss {vals['val_loss']:.4g} (running statistics), "
            f"{vals['val_loss_batch']:.4g} (batch statistics), {vals['val_anchors']} anchors")
      if done % t.checkpoint_every == 0 or done == n_steps or preempted:
        _check_finite(pending)
        checkpoint.save(mngr, done, saveable(state))
        last_good = done
      if preempted:
        log(f'preempted: saved step {done}, exiting')
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
