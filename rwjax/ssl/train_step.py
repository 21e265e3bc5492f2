"""The data-parallel SimCLR training step: one `jax.shard_map` over a ('data',) mesh.

Per device and step: draw a key, let the data source produce this device's views (the source's
state, e.g. a simulator and its frame buffer, lives in the training state, sharded along 'data'),
run the network with BatchNorm synced over 'data', score local anchors against the all-gathered
global batch, and apply the optimiser to replicated parameters. Gradients come out of autodiff
already summed over devices: the replicated parameters enter the per-device computation through
an implicit broadcast whose transpose is a psum, so the step adds no explicit gradient all-reduce.
"""

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, PartitionSpec as P

from rwjax.models import SimCLRModel, init_variables
from rwjax.ssl.loss import sharded_simclr_loss

# batch_fn(source_local, key) -> (source_local, batch); batch holds the device's views
# f32[n_local, H, W, C] and their 'wave_id' i32[n_local], 'frame_idx' i32[n_local],
# 'valid' bool[n_local] (e.g. the output of rwjax.ssl.pairs.sample_pairs).
BatchFn = Callable[[Any, jax.Array], tuple[Any, dict[str, jax.Array]]]


@flax.struct.dataclass
class TrainState:
  """Everything a run needs to continue; a pytree (checkpointable as is).

  Attributes:
    step: i32[] number of updates done.
    params, batch_stats: the SimCLRModel variables (replicated).
    opt_state: optax state (replicated).
    rng: u32[2] run key (replicated); each step and device fold in their index.
    source: opaque data-source state; every leaf has the device axis first and is sharded
      along 'data' (leading size a multiple of the device count).
  """
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array
  source: Any


def create_train_state(model: SimCLRModel, tx: optax.GradientTransformation, key: jax.Array,
                       image_size: int, source: Any) -> TrainState:
  """A fresh state, not yet placed on a mesh (rwjax.ssl.trainer.init_state places it)."""
  init_key, rng = jax.random.split(key)
  variables = init_variables(model, init_key, image_size)  # jitted, model and size static
  return TrainState(step=jnp.zeros((), jnp.int32), params=variables['params'],
                    batch_stats=variables['batch_stats'], opt_state=tx.init(variables['params']),
                    rng=rng, source=source)


def state_specs(state: TrainState, axis_name: str = 'data') -> TrainState:
  """PartitionSpecs (a prefix tree of `state`): all replicated except `source`."""
  return TrainState(step=P(), params=P(), batch_stats=P(), opt_state=P(), rng=P(),
                    source=jax.tree.map(lambda _: P(axis_name), state.source))


def make_train_step(model: SimCLRModel, tx: optax.GradientTransformation, mesh: Mesh,
                    batch_fn: BatchFn, *, temperature: float = 0.5, separation: int = 1,
                    denominator: str = 'all',
                    learning_rate_fn: Callable[[jax.Array], jax.Array] | None = None,
                    axis_name: str = 'data') -> Callable[[TrainState], tuple[TrainState, dict]]:
  """Builds the jitted step `state -> (state, metrics)`; `state` is donated.

  Args:
    model: the SimCLRModel (its BatchNorm is synced over `axis_name` whatever it was built with).
    tx: optax transformation (from rwjax.ssl.optim.make_optimizer).
    mesh: a mesh with axis `axis_name` spanning the devices.
    batch_fn: per-device data source, see `BatchFn`; it gets
      key = fold_in(fold_in(state.rng, state.step), device index).
    temperature, separation, denominator: loss settings (see rwjax.ssl.loss).
    learning_rate_fn: if given, metrics include 'lr' = learning_rate_fn(state.step).
    axis_name: the mesh's data axis.

  Returns:
    step(state) -> (new state, metrics): 'loss' f32[] (global batch), 'n_anchors' i32[],
    'grad_norm' f32[] and optionally 'lr', all replicated.
  """
  model = model.clone(axis_name=axis_name)

  def per_device(state: TrainState) -> tuple[TrainState, dict]:
    key = jax.random.fold_in(jax.random.fold_in(state.rng, state.step),
                             jax.lax.axis_index(axis_name))
    source, batch = batch_fn(state.source, key)

    def loss_fn(params):
      (z, _), updates = model.apply({'params': params, 'batch_stats': state.batch_stats},
                                    batch['views'], train=True, mutable=['batch_stats'])
      loss, n_anchors = sharded_simclr_loss(
          z, batch['wave_id'], batch['frame_idx'], batch['valid'], axis_name=axis_name,
          temperature=temperature, separation=separation, denominator=denominator)
      return loss, (updates['batch_stats'], n_anchors)

    (loss, (batch_stats, n_anchors)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    metrics = {'loss': loss, 'n_anchors': n_anchors, 'grad_norm': optax.tree.norm(grads)}
    if learning_rate_fn is not None:
      metrics['lr'] = jnp.asarray(learning_rate_fn(state.step), jnp.float32)
    new_state = state.replace(step=state.step + 1,
                              params=optax.apply_updates(state.params, updates),
                              batch_stats=batch_stats, opt_state=opt_state, source=source)
    return new_state, metrics

  def step(state: TrainState) -> tuple[TrainState, dict]:
    specs = state_specs(state, axis_name)
    return jax.shard_map(per_device, mesh=mesh, in_specs=(specs,), out_specs=(specs, P()))(state)

  return jax.jit(step, donate_argnums=0)


def make_eval_step(model: SimCLRModel, mesh: Mesh, batch_fn: BatchFn, *,
                   temperature: float = 0.5, separation: int = 1, denominator: str = 'all',
                   axis_name: str = 'data') -> Callable[[TrainState], dict]:
  """The jitted validation loss `state -> {'loss', 'loss_batch', 'n_anchors'}` of the batch
  `batch_fn` makes from `state.source`: 'loss' with BatchNorm's running statistics (the
  paper's model.eval()), 'loss_batch' with the batch's own (as the training step computes
  its loss). Nothing is updated and `state` is not donated."""
  model = model.clone(axis_name=axis_name)

  def per_device(state: TrainState) -> dict:
    key = jax.random.fold_in(jax.random.fold_in(state.rng, state.step),
                             jax.lax.axis_index(axis_name))
    _, batch = batch_fn(state.source, key)
    variables = {'params': state.params, 'batch_stats': state.batch_stats}
    loss = lambda z: sharded_simclr_loss(
        z, batch['wave_id'], batch['frame_idx'], batch['valid'], axis_name=axis_name,
        temperature=temperature, separation=separation, denominator=denominator)
    (z_batch, _), _ = model.apply(variables, batch['views'], train=True,
                                  mutable=['batch_stats'])  # the statistics' update dropped
    running, n_anchors = loss(model.apply(variables, batch['views'], train=False)[0])
    return {'loss': running, 'loss_batch': loss(z_batch)[0], 'n_anchors': n_anchors}

  def evaluate(state: TrainState) -> dict:
    specs = state_specs(state, axis_name)
    return jax.shard_map(per_device, mesh=mesh, in_specs=(specs,), out_specs=P())(state)

  return jax.jit(evaluate)
