"""The pre-training library: SimCLR on retinal waves, run or resumed in a workdir.

`train(config, workdir, hooks=())` is what the binary (`python -m rwjax.train`), the
experiment, the demo and the benches call. The wave simulator runs inside the jitted,
sharded training step on every device. A workdir that holds a checkpoint is resumed (from
the newest readable one: see rwjax.checkpoint.restore); `config.train.steps=0` writes the
freshly initialised network (the random-init baseline of the evaluation).

Hooks measure the network while it trains; this library imports no evaluation code, the
caller hands them in (rwjax.eval.monitor.hooks(config) gives the online monitor):
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
from rwjax import distributed
from rwjax import metrics as metrics_lib
from rwjax import models
from rwjax import waves
from rwjax.errors import InputError
from rwjax.ssl import augment as augment_lib
from rwjax.ssl import loss as loss_lib
from rwjax.ssl import optim
from rwjax.ssl import pairs
from rwjax.ssl import placement
from rwjax.ssl import sources
from rwjax.ssl import train_step as train_step_lib
from rwjax.ssl import wave_batches
from rwjax.waves import frames as frames_lib

Measure = Callable[[int, dict], dict]
Hook = Callable[[models.SimCLRModel, dict], Measure]  # see the module docstring


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
  if t.batch_pairs % n_devices:
    raise InputError(f'config.train.batch_pairs={t.batch_pairs} is not divisible by the '
                     f'{n_devices} devices; use a multiple of {n_devices}')
  positive('loss.temperature', config.loss.temperature, integer=False)
  if d.shuffle not in pairs.SHUFFLES:
    raise InputError(f'config.data.shuffle={d.shuffle!r} is unknown; use one of {pairs.SHUFFLES}')
  frames_lib.check_norm(d.movie_norm)
  validate_protocol(config)
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
    if d.wave_labels not in sources.WAVE_LABELS:
      raise InputError(f'config.data.wave_labels={d.wave_labels!r} is unknown; use one of '
                       f'{sources.WAVE_LABELS}')
    positive('data.min_wave_size', d.min_wave_size)
    if not isinstance(d.label_delay, int) or isinstance(d.label_delay, bool) or d.label_delay < 0:
      raise InputError(f'config.data.label_delay={d.label_delay!r} must be an integer >= 0 '
                       '(frames simulated ahead of those returned, so their labels settle)')
  elif d.source == 'file':
    if not d.movie:
      raise InputError("config.data.source='file' needs --config.data.movie=PATH.npy")
    placement.check_config(d.placement, d.device_bytes, d.stream_steps)
    if d.movie_format != 'saved':
      _validate_recorded(config)
  else:
    raise InputError(f"config.data.source={d.source!r} is unknown; use 'sim' or 'file'")


def _validate_recorded(config: ml_collections.ConfigDict) -> None:
  """config.data.recorded (source='file' with recordings): values, and every movie's and
  interval file's header, so that a bad file fails before the workdir is touched."""
  from rwjax.waves import dataset, readers  # host-side only
  d, r = config.data, config.data.recorded
  if d.movie_format != 'auto' and d.movie_format not in readers.FORMATS:
    raise InputError(f"config.data.movie_format={d.movie_format!r} is unknown; use 'saved', "
                     f"'auto' or one of {readers.FORMATS}")
  if r.minmax not in dataset.MINMAX:
    raise InputError(f'config.data.recorded.minmax={r.minmax!r} is unknown; use one of '
                     f'{dataset.MINMAX}')
  bad_rot = [a for a in r.rotations if a not in (90, 180, 270)]
  if bad_rot:
    raise InputError(f'config.data.recorded.rotations has {bad_rot}; use 90, 180 and/or 270')
  for name in ('dff_window_s', 'frame_dt', 'pixel_mm', 'background_s', 'smooth_s', 'smooth_mm'):
    if not (isinstance(r[name], (int, float)) and r[name] >= 0):
      raise InputError(f'config.data.recorded.{name}={r[name]!r} must be a number >= 0')
  for name in ('min_size', 'chunk_frames'):
    if not (isinstance(r[name], int) and r[name] >= 1):
      raise InputError(f'config.data.recorded.{name}={r[name]!r} must be an integer >= 1')
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
  """The recordings of config.data as network input (rwjax.waves.dataset.Dataset)."""
  from rwjax.waves import dataset  # host-side only
  d, r = config.data, config.data.recorded
  return dataset.load_dataset(
      d.movie, out_size=d.input_size, fmt=d.movie_format, key=r.key, axes=r.axes,
      zscore=r.zscore, minmax=r.minmax, dff_window_s=r.dff_window_s, frame_dt=r.frame_dt,
      pixel_mm=r.pixel_mm, rotations=tuple(r.rotations), intervals=r.intervals,
      threshold=d.threshold, background_s=r.background_s, detect_dff=r.detect_dff,
      smooth_s=r.smooth_s, smooth_mm=r.smooth_mm, min_size=r.min_size,
      chunk_frames=r.chunk_frames, norm=d.movie_norm)


def build_source(config: ml_collections.ConfigDict) -> sources.Source:
  """The frame source named by config.data (read here, once)."""
  d = config.data
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
    else:  # find the waves (in the units of config.data.simulator unless a threshold is set)
      threshold = d.threshold if d.threshold is not None else waves.get_model(d.simulator).THRESHOLD
      labels = stats.frame_labels(movie, threshold, min_size=d.min_wave_size)
    x = frames_lib.to_network_input(jnp.asarray(movie), d.input_size, 1, d.movie_norm)[..., 0]
    return placed_source(config, np.asarray(x), labels)
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
      active_fraction=d.active_fraction, wave_labels=d.wave_labels,
      label_delay=d.label_delay, min_wave_size=d.min_wave_size, norm=d.movie_norm)


def placed_source(config: ml_collections.ConfigDict, movie: np.ndarray, labels: np.ndarray):
  """The file source of movie f32[B, T, h, w] and labels i32[B, T], placed as
  config.data.placement says: copied to every device, sharded over them, or streamed from the
  host (rwjax.ssl.placement); with its whole-wave schedule for data.batching='waves'."""
  d, n = config.data, jax.device_count()
  where, layout = placement.choose(d.placement, movie, labels, n, d.device_bytes)
  if where == 'replicated':
    return wave_batched(config, sources.make_file_source(movie, labels))
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ('data',))
  args = dict(budget=d.wave_batch_frames, val_fraction=d.val_fraction, seed=config.seed,
              order=d.wave_order, temporal=pairs.control_parts(d.shuffle)[0], n_devices=n)
  if d.batching == 'waves':
    if where == 'stream':
      source, schedule = placement.stream_schedule(movie, labels, d.device_bytes, mesh, **args)
    else:
      source = placement.sharded_source(movie, labels, layout)
      schedule = placement.sharded_schedule(np.asarray(source.inputs[1]), layout, **args)
    return with_wave_plan(source, schedule, n)
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
                     'labels must go through trainer.wave_batched')
  return wave_batch_fn if d.batching == 'waves' else batch_fn


def validate_protocol(config: ml_collections.ConfigDict) -> None:
  """The paper's-protocol keys: loss.denominator, data.batching and its wave keys, train.epochs."""
  d, t = config.data, config.train
  if config.loss.denominator not in loss_lib.DENOMINATORS:
    raise InputError(f'config.loss.denominator={config.loss.denominator!r} is unknown; use one of '
                     f"{loss_lib.DENOMINATORS} ('negatives' is the paper's)")
  if d.batching not in wave_batches.BATCHINGS:
    raise InputError(f'config.data.batching={d.batching!r} is unknown; use one of '
                     f"{wave_batches.BATCHINGS} ('waves' is the paper's)")
  if not isinstance(t.epochs, int) or isinstance(t.epochs, bool) or t.epochs < 0:
    raise InputError(f'config.train.epochs={t.epochs!r} must be an integer >= 0')
  if d.batching == 'pairs':
    if t.epochs:
      raise InputError("config.train.epochs counts passes over a movie's waves: it needs "
                       "config.data.batching='waves' (set train.epochs=0 and use train.steps)")
    return
  if d.source == 'sim':
    raise InputError(WAVES_FROM_SIM)
  if (not isinstance(d.wave_batch_frames, int) or isinstance(d.wave_batch_frames, bool)
      or d.wave_batch_frames < 1):
    raise InputError(f'config.data.wave_batch_frames={d.wave_batch_frames!r} must be a positive '
                     'integer (the paper: 3000)')
  if not isinstance(d.val_fraction, (int, float)) or not 0 <= d.val_fraction < 1:
    raise InputError(f'config.data.val_fraction={d.val_fraction!r} must be in [0, 1) (the paper: '
                     '0.2 of simulated waves, 0.1 of recorded)')
  if d.wave_order not in wave_batches.ORDERS:
    raise InputError(f'config.data.wave_order={d.wave_order!r} is unknown; use one of '
                     f'{wave_batches.ORDERS}')


# Why not from the stream (measured, see the notes): a batch of > 3,000 frames needs ~165 whole
# Lansdell waves (18 labelled frames each) while 128 retinas finish ~8 per step, so the buffer
# (>= 85 frames to hold the longest, 8.4 s, wave) would hand out nearly the same waves step after
# step; Godfrey retinas finish ~0.2 per step. A movie gives the paper's epochs instead.
WAVES_FROM_SIM = (
    "config.data.batching='waves' needs config.data.source='file': a whole-wave batch of "
    'data.wave_batch_frames frames needs far more finished waves than the on-device retinas '
    'produce per step, so successive batches would repeat nearly the same waves. Write a movie '
    "with `python -m rwjax.waves simulate` (see configs/pretrain_paper.py), or keep "
    "batching='pairs' for the on-device simulator")


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
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
  put = lambda x: x if isinstance(x, jax.Array) else jax.make_array_from_callback(
      x.shape, sharding, lambda i: x[i])  # (a streamed plan is on the devices already)
  return state.replace(source=(state.source[0], type(plan)(*map(put, plan))))


def wave_batched(config: ml_collections.ConfigDict, source: sources.Source):
  """A file source as is, or with whole-wave batches (config.data.batching='waves'): the plan is
  made here, from the source's labels, so bad input fails before the workdir is touched."""
  d = config.data
  if d.batching != 'waves':
    return source
  schedule = wave_batches.make_schedule(
      np.asarray(source.inputs[1]), budget=d.wave_batch_frames, val_fraction=d.val_fraction,
      seed=config.seed, order=d.wave_order, temporal=pairs.control_parts(d.shuffle)[0],
      n_devices=jax.device_count())
  return with_wave_plan(source, schedule, jax.device_count())


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
  spec = P('data') if source.sharded else P()
  return jax.jit(jax.shard_map(source.init, mesh=mesh,
                               in_specs=(P(),) + (spec,) * len(source.inputs),
                               out_specs=P('data'), check_vma=False))


def init_state(model, tx, source: sources.Source, mesh, seed: int,
               image_size: int) -> train_step_lib.TrainState:
  """Fresh state: the source initialised on every device (its own retinas and RNG
  stream), the replicated parts placed beside it."""
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  key_source, key_state = jax.random.split(jax.random.PRNGKey(seed))
  state = train_step_lib.create_train_state(model, tx, key_state, image_size, source=None)
  state = jax.device_put(state, replicated)
  inputs = [jax.device_put(x, replicated) for x in source.inputs] if not source.sharded else [
      jax.make_array_from_callback(x.shape, jax.sharding.NamedSharding(
          mesh, jax.sharding.PartitionSpec('data')), lambda i, x=x: np.asarray(x[i]))
      for x in source.inputs]  # each device receives only its shard
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

  mesh = jax.sharding.Mesh(np.array(jax.devices()), ('data',))
  model = models.create_model(**config.model)
  o, t = config.optim, config.train
  schedule_args = dict(name=o.name, lr=o.lr, batch_pairs=t.batch_pairs,
                       warmup_steps=o.warmup_steps, total_steps=max(t.steps, 1),
                       schedule=o.schedule)
  tx = optim.make_optimizer(weight_decay=o.weight_decay, **schedule_args)
  source = build_source(config)
  # Only now, with the model, optimizer and source built (every input checked), may the
  # workdir change: a run that fails on bad input leaves the workdir's config.json as it was.
  checkpoint.check_workdir(workdir)
  checkpoint.write_config(workdir, config, n_devices, write=lead)

  t0 = time.perf_counter()
  state = jax.block_until_ready(
      init_state(model, tx, source, mesh, config.seed, config.data.input_size))
  init_s = time.perf_counter() - t0
  n_steps = run_steps(config, source)
  if n_steps != t.steps:  # epochs of whole-wave batches: the lr schedule spans them
    schedule_args['total_steps'] = max(n_steps, 1)  # (the optimizer's state is the same)
    tx = optim.make_optimizer(weight_decay=o.weight_decay, **schedule_args)

  # The hooks start from the run's initial network. Every process measures (local devices
  # only, no collectives), so that none waits for process 0 at the next collective.
  measures = []
  if t.monitor_every and t.monitor_every <= n_steps:
    measures = [hook(model, variables_of(state)) for hook in hooks]
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
  if start >= n_steps:
    mngr.wait_until_finished()
    mngr.close()
    return state

  batch_fn = make_batch_fn(source, config, t.batch_pairs // n_devices)
  step_fn = train_step_lib.make_train_step(
      model, tx, mesh, batch_fn, temperature=config.loss.temperature,
      separation=config.data.frame_separation, denominator=config.loss.denominator,
      learning_rate_fn=optim.make_schedule(**schedule_args))
  sim_s = time_call(source_step(source, mesh), state.source)
  schedule = getattr(source, 'schedule', None)  # whole-wave batches: the loop feeds each plan
  feed = getattr(source, 'feed', None)  # a host-streamed movie: the loop feeds its chunks
  if schedule is not None:
    plans, val_plans = schedule.plans_from(start), schedule.validation()
    eval_fn = train_step_lib.make_eval_step(
        model, mesh, batch_fn, temperature=config.loss.temperature,
        separation=config.data.frame_separation, denominator=config.loss.denominator)
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
        if lead:
          print(f'first step (compilation) {compile_s:.1f}s', flush=True)
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
        if lead:
          print(f"epoch {epoch + 1}: validation loss {vals['val_loss']:.4g} (running "
                f"statistics), {vals['val_loss_batch']:.4g} (batch statistics), "
                f"{vals['val_anchors']} anchors", flush=True)
      if done % t.checkpoint_every == 0 or done == n_steps or preempted:
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
