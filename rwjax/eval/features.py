"""Frozen features: every ResNet-18 stage of a (pre-trained or random) network.

Stages are average-pooled over space (the probes' features) or flattened whole (the
manifold-capacity analysis, which measures a layer's full representation), optionally
projected to fewer random Gaussian dimensions on device. The backbone runs in eval mode
(BatchNorm running statistics) in jitted, fixed-size batches (the last one padded, so one
compiled program serves any N), split over the local devices when the batch divides evenly
among them.
"""

import functools
from typing import Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from rwjax.errors import InputError
from rwjax.models import ResNet18, SimCLRModel

LAYERS = ('stem', 'layer1', 'layer2', 'layer3', 'layer4', 'pooled')


def backbone_of(model: Union[SimCLRModel, ResNet18], variables: dict) -> tuple[ResNet18, dict]:
  """The ResNet-18 of a SimCLR model (or the ResNet-18 itself) and its variables.

  Args:
    model: a SimCLRModel (backbone variables under 'backbone') or a ResNet18.
    variables: {'params', 'batch_stats'} of `model`.

  Returns:
    (ResNet18 without BatchNorm axis, {'params', 'batch_stats'} of that backbone).
  """
  if isinstance(model, SimCLRModel):
    backbone = ResNet18(model.stem, model.width, None, model.dtype)
    return backbone, {k: variables[k]['backbone'] for k in ('params', 'batch_stats')}
  if isinstance(model, ResNet18):
    return model.clone(axis_name=None), variables
  raise InputError(f'cannot extract features from a {type(model).__name__}; pass a SimCLRModel '
                   'or a ResNet18')


def random_projection(x: jax.Array, key: jax.Array, dims: int, *,
                      block: int = 4096) -> jax.Array:
  """x G / sqrt(dims) with G f32[N, dims] i.i.d. standard normal (Johnson-Lindenstrauss).

  E |x G|^2 / dims = |x|^2, so norms and distances are kept up to O(1 / sqrt(dims)). G is
  generated in row blocks (block i from fold_in(key, i)) inside a scan, so it is never
  whole in memory (a 65536 x 5000 G would take 1.3 GB). Pure and jit-compatible.

  Args:
    x: f32[B, N].
    key: raw PRNG key u32[2]; the same key gives the same G for any B.
    dims: output dimensions (static).
    block: rows of G generated at once (static).

  Returns:
    f32[B, dims].
  """
  b, n = x.shape
  block = min(block, n)
  blocks = -(-n // block)
  xs = jnp.pad(x, ((0, 0), (0, blocks * block - n))).reshape(b, blocks, block)

  def add_block(acc, i):
    g = jax.random.normal(jax.random.fold_in(key, i), (block, dims), x.dtype)
    part = jnp.dot(jax.lax.dynamic_index_in_dim(xs, i, 1, keepdims=False), g,
                   precision=jax.lax.Precision.HIGHEST)
    return acc + part, None

  out, _ = jax.lax.scan(add_block, jnp.zeros((b, dims), x.dtype), jnp.arange(blocks))
  return out / jnp.sqrt(jnp.asarray(dims, x.dtype))


@functools.partial(jax.jit, static_argnames=('backbone', 'layers', 'pool', 'project_dims'))
def _batch_features(backbone: ResNet18, variables: dict, x: jax.Array,
                    layers: tuple[str, ...], pool: bool = True, project_dims: int = 0,
                    project_key: Optional[jax.Array] = None) -> dict[str, jax.Array]:
  stages = backbone.apply(variables, x, train=False, return_stages=True)
  out = {}
  for k in layers:
    f = stages[k]
    if f.ndim == 4:
      f = f.mean(axis=(1, 2)) if pool else f.reshape(len(f), -1)
    if project_dims and f.shape[1] > project_dims:
      # One projection per layer (keyed by its place in LAYERS), the same for every batch.
      f = random_projection(f, jax.random.fold_in(project_key, LAYERS.index(k)), project_dims)
    out[k] = f
  return out


def extract_features(model: Union[SimCLRModel, ResNet18], variables: dict,
                     images: Union[np.ndarray, jax.Array], *, batch_size: int,
                     layers: Sequence[str] = LAYERS, pool: bool = True,
                     project_dims: int = 0,
                     project_key: Optional[jax.Array] = None) -> dict[str, np.ndarray]:
  """Spatially average-pooled (or flattened) activations of each requested stage.

  Args:
    model: SimCLRModel or ResNet18 (see `backbone_of`).
    variables: the model's {'params', 'batch_stats'}.
    images: f32[N, H, W, C] network input in [0, 1] (see rwjax.data.preprocess).
    batch_size: images per jitted step.
    layers: stages to return, from LAYERS.
    pool: average the [h, w, c] stage maps over space (True) or flatten them (False).
    project_dims: if > 0, layers wider than this are mapped to this many dimensions by
      `random_projection` on device (0: never).
    project_key: raw PRNG key of the projections (needed with project_dims); layer l uses
      fold_in(project_key, LAYERS.index(l)), so equal keys give equal projections.

  Returns:
    {layer: f32[N, width]} as host arrays; width = channels (pooled), h * w * c
    (flattened) or project_dims (projected).
  """
  unknown = [l for l in layers if l not in LAYERS]
  if unknown:
    raise InputError(f'unknown feature layers {unknown}; choose from {LAYERS}')
  if batch_size < 1:
    raise InputError(f'batch_size must be >= 1, got {batch_size}')
  if project_dims < 0 or (project_dims and project_key is None):
    raise InputError(f'project_dims={project_dims} must be >= 0, and > 0 needs a project_key')
  if images.ndim != 4 or not len(images):
    raise InputError(f'images must be a non-empty [N, H, W, C] array, got shape {images.shape}')
  backbone, variables = backbone_of(model, variables)
  devices = jax.local_devices()
  if batch_size % len(devices):
    devices = devices[:1]
  mesh = jax.sharding.Mesh(np.asarray(devices), ('data',))
  batch_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
  variables = jax.device_put(variables, jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec()))
  n = len(images)
  outputs = []
  for start in range(0, n, batch_size):
    x = jnp.asarray(images[start:start + batch_size], jnp.float32)
    x = jax.device_put(jnp.pad(x, ((0, batch_size - len(x)), (0, 0), (0, 0), (0, 0))),
                       batch_sharding)
    outputs.append(_batch_features(backbone, variables, x, tuple(layers), pool, project_dims,
                                   project_key))
  # One device-to-host copy at the end lets the device run ahead of the host loop.
  outputs = jax.device_get(outputs)
  return {l: np.concatenate([o[l] for o in outputs])[:n] for l in layers}
