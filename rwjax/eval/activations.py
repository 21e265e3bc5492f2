"""One forward pass per image batch: every layer the evaluations read, under a BatchNorm mode.

A `View` is what an evaluation reads of one named layer (rwjax.models.layers): its spatial
maps averaged over space ('pool', the probes' features) or flattened whole ('flat', the
manifold analysis); optionally mapped to `dims` random Gaussian dimensions on device when
wider (`random_projection`, its own key per view). `extract` runs the network over a set of
images once, in jitted fixed-size batches (the last one padded, so one compiled program
serves any N; split over the local devices when the batch divides evenly among them), and
returns every view asked for: `Passes` counts each image once, whatever the number of views.

BatchNorm (rwjax.eval.batchnorm): 'running' (for 'adapt', pass the variables batchnorm.adapt
returned) or 'batch' (groups of `bn_batch` images in batchnorm.batch_order, several per step).
"""

import dataclasses
import functools
from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rwjax.eval import batchnorm as bn_lib
from rwjax.models import SimCLRModel
from rwjax.models import layers as layers_lib

REDUCE = ('pool', 'flat')


class View(NamedTuple):
  """What one evaluation reads of one layer (hashable: part of the compiled program)."""
  layer: str  # a name of rwjax.models.layers
  reduce: str = 'pool'  # REDUCE: spatial maps averaged over space, or flattened
  dims: int = 0  # > 0: projected to this many random dimensions when wider


@dataclasses.dataclass
class Passes:
  """Images run through a network: `forward` by `extract`, `adapt` by BatchNorm adaptation."""
  forward: int = 0
  adapt: int = 0


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


def activations(model: SimCLRModel, variables: dict, x: jax.Array,
                bn_group: int = 0) -> dict[str, jax.Array]:
  """Every named layer (rwjax.models.layers.read) of one forward pass (pure, jittable).

  Args:
    model: the SimCLRModel (backbone and projector).
    variables: its {'params', 'batch_stats'}.
    x: f32[B, H, W, C] network input.
    bn_group: 0 (eval mode) or the 'batch' mode's BatchNorm group size (B a multiple).
  """
  model = model.clone(axis_name=None)
  if bn_group:
    _, state = bn_lib.apply_batch_mode(model, variables, x, bn_group, mutable=['intermediates'])
  else:
    _, state = model.apply(variables, x, train=False, mutable=['intermediates'])
  return layers_lib.read(state['intermediates'], x)


@functools.partial(jax.jit, static_argnames=('model', 'views', 'bn_group'))
def _batch(model, variables, x, keys, views, bn_group):
  acts = activations(model, variables, x, bn_group)
  out = []
  for view, key in zip(views, keys):
    f = acts[view.layer]
    if f.ndim == 4:
      f = f.mean(axis=(1, 2)) if view.reduce == 'pool' else f.reshape(len(f), -1)
    if view.dims and f.shape[1] > view.dims:
      f = random_projection(f, key, view.dims)
    out.append(f)
  return tuple(out)


def extract(model: SimCLRModel, variables: dict, images, views: Sequence[View],
            keys: Optional[Sequence[Optional[jax.Array]]] = None, *, batch_size: int,
            batchnorm: str = 'running', bn_batch: int = 0,
            passes: Optional[Passes] = None) -> list[np.ndarray]:
  """Every view of one network on one set of images, from one forward pass per image.

  Args:
    model, variables: the network.
    images: f32[N, H, W, C] network input (numpy or jax).
    views: what to return (distinct).
    keys: per view, the raw PRNG key of its projection (None where dims = 0).
    batch_size: images per jitted step.
    batchnorm: 'running' or 'batch' (module docstring).
    bn_batch: 'batch': images per BatchNorm group (0: batch_size; at most N).
    passes: counts the images run.

  Returns:
    Per view, a host array f32[N, width] in image order.
  """
  views = tuple(views)
  keys = tuple(keys) if keys is not None else (None,) * len(views)
  n = len(images)
  order, group = None, 0
  if batchnorm == 'batch':
    group = min(bn_batch or batch_size, n)
    batch_size = group * max(1, batch_size // group)
    order = bn_lib.batch_order(n, group)
    order = np.concatenate([order, np.resize(order, (-len(order)) % batch_size)])
    images = images[order]
  devices = jax.local_devices()
  devices = devices[:1] if batch_size % len(devices) else devices
  mesh = jax.sharding.Mesh(np.asarray(devices), ('data',))
  sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
  variables = jax.device_put(variables, jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec()))
  outputs = []
  for start in range(0, len(images), batch_size):
    x = jnp.asarray(images[start:start + batch_size], jnp.float32)
    x = jax.device_put(jnp.pad(x, ((0, batch_size - len(x)),) + ((0, 0),) * 3), sharded)
    outputs.append(_batch(model, variables, x, keys, views, group))
  if passes is not None:
    passes.forward += n
  # One device-to-host copy at the end lets the device run ahead of the host loop.
  outputs = jax.device_get(outputs)
  out = [np.concatenate([o[i] for o in outputs]) for i in range(len(views))]
  if order is None:
    return [f[:n] for f in out]  # a view: no second copy of the features
  rows = np.argsort(order[:n])  # back to image order
  return [f[rows] for f in out]
