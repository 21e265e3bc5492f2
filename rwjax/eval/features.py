"""Frozen features: every ResNet-18 stage, or every ReLU output, of a network.

Stages (`extract_features`) are average-pooled over space (the probes' features) or flattened
whole (the manifold-capacity analysis, which measures a layer's full representation); ReLU
outputs (`extract_relus`: the backbone's 17 and the projector's, as the paper analysed
capacity) are flattened. Both are optionally projected to fewer random Gaussian dimensions on
device. The network runs in jitted, fixed-size batches (the last one padded, so one compiled
program serves any N), split over the local devices when the batch divides evenly among them,
in eval mode (BatchNorm running statistics; `batchnorm='running'`, also for 'adapt' once
rwjax.eval.batchnorm.adapt has replaced them) or, with `batchnorm='batch'`, in train mode with
each BatchNorm batch of `bn_batch` images normalised by its own statistics (the groups of
rwjax.eval.batchnorm.batch_order; several groups per jitted step).
"""

import dataclasses
import functools
from typing import Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from rwjax.errors import InputError
from rwjax.eval import batchnorm as bn_lib
from rwjax.models import ResNet18, SimCLRModel
from rwjax.models.resnet import BACKBONE_RELUS, relu_names, relu_outputs

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


def _project(f: jax.Array, project_dims: int, project_key: Optional[jax.Array],
             index: int) -> jax.Array:
  """f f32[B, N] randomly projected to project_dims when wider; one projection per layer
  (keyed by its `index` in its layer list), the same for every batch."""
  if project_dims and f.shape[1] > project_dims:
    return random_projection(f, jax.random.fold_in(project_key, index), project_dims)
  return f


@functools.partial(jax.jit, static_argnames=('backbone', 'layers', 'pool', 'project_dims',
                                             'bn_group'))
def _batch_features(backbone: ResNet18, variables: dict, x: jax.Array,
                    layers: tuple[str, ...], pool: bool = True, project_dims: int = 0,
                    project_key: Optional[jax.Array] = None,
                    bn_group: int = 0) -> dict[str, jax.Array]:
  if bn_group:  # 'batch' mode: train-mode BatchNorm per group of bn_group images.
    stages = bn_lib.apply_batch_mode(backbone, variables, x, bn_group, return_stages=True)
  else:
    stages = backbone.apply(variables, x, train=False, return_stages=True)
  out = {}
  for k in layers:
    f = stages[k]
    if f.ndim == 4:
      f = f.mean(axis=(1, 2)) if pool else f.reshape(len(f), -1)
    out[k] = _project(f, project_dims, project_key, LAYERS.index(k))
  return out


def _check_inputs(images, batch_size: int, project_dims: int,
                  project_key: Optional[jax.Array]) -> None:
  if batch_size < 1:
    raise InputError(f'batch_size must be >= 1, got {batch_size}')
  if project_dims < 0 or (project_dims and project_key is None):
    raise InputError(f'project_dims={project_dims} must be >= 0, and > 0 needs a project_key')
  if images.ndim != 4 or not len(images):
    raise InputError(f'images must be a non-empty [N, H, W, C] array, got shape {images.shape}')


def _bn_plan(batchnorm: str, bn_batch: int, batch_size: int,
             n: int) -> tuple[int, int, Optional[np.ndarray]]:
  """(images per jitted step, BatchNorm group or 0, image order or None) for a BatchNorm
  mode: 'batch' runs max(1, batch_size // group) whole groups per step, group =
  min(bn_batch or batch_size, n), in bn_lib.batch_order."""
  if batchnorm == 'adapt':
    raise InputError("batchnorm='adapt' extracts with the adapted running statistics: call "
                     "rwjax.eval.batchnorm.adapt first, then extract with batchnorm='running'")
  bn_lib.check_mode(batchnorm, 'batchnorm')
  if batchnorm == 'running':
    return batch_size, 0, None
  if bn_batch < 0:
    raise InputError(f'bn_batch={bn_batch} must be >= 0 (0: batch_size)')
  group = min(bn_batch or batch_size, n)
  return group * max(1, batch_size // group), group, bn_lib.batch_order(n, group)


def _in_batches(step: Callable[[dict, jax.Array], dict[str, jax.Array]], variables: dict,
                images: Union[np.ndarray, jax.Array], batch_size: int,
                layers: Sequence[str],
                order: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
  """{layer: step(variables, x)[layer]} over padded batches x f32[batch_size, H, W, C] of
  images, concatenated as host arrays [N, ...], in the order of `layers`.

  With `order` (bn_lib.batch_order: a permutation of the N images, then repeats), the images
  are fed as images[order] padded with copies of its first batch to whole steps (padding
  never shares a BatchNorm group with real images), and the outputs put back in image order.
  """
  n = len(images)
  if order is not None:
    pad = (-len(order)) % batch_size
    order = np.concatenate([order, np.resize(order, pad)])
    images = np.asarray(images)[order] if isinstance(images, np.ndarray) else images[order]
  devices = jax.local_devices()
  if batch_size % len(devices):
    devices = devices[:1]
  mesh = jax.sharding.Mesh(np.asarray(devices), ('data',))
  batch_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
  variables = jax.device_put(variables, jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec()))
  outputs = []
  for start in range(0, len(images), batch_size):
    x = jnp.asarray(images[start:start + batch_size], jnp.float32)
    x = jax.device_put(jnp.pad(x, ((0, batch_size - len(x)), (0, 0), (0, 0), (0, 0))),
                       batch_sharding)
    outputs.append(step(variables, x))
  # One device-to-host copy at the end lets the device run ahead of the host loop.
  outputs = jax.device_get(outputs)
  if order is None:
    return {l: np.concatenate([o[l] for o in outputs])[:n] for l in layers}
  inverse = np.empty(n, np.int64)
  inverse[order[:n]] = np.arange(n)
  return {l: np.concatenate([o[l] for o in outputs])[inverse] for l in layers}


def run_in_batches(step: Callable[[dict, jax.Array, int], dict[str, jax.Array]],
                   variables: dict, images: Union[np.ndarray, jax.Array], *, batch_size: int,
                   layers: Sequence[str], batchnorm: str = 'running',
                   bn_batch: int = 0) -> dict[str, np.ndarray]:
  """Any jitted per-batch feature function over all images, honouring a BatchNorm mode.

  Args:
    step: (variables, x f32[B, H, W, C], bn_group) -> {layer: f32[B, ...]}; bn_group 0 means
      eval mode, > 0 train-mode BatchNorm per group of bn_group images (pass it to
      `relu_activations` or bn_lib.apply_batch_mode).
    variables, images, batch_size, layers: as in `extract_features`.
    batchnorm, bn_batch: 'running' or 'batch' and its group size (see `extract_features`).

  Returns:
    {layer: host array [N, ...]} in image order.
  """
  batch_size, group, order = _bn_plan(batchnorm, bn_batch, batch_size, len(images))
  return _in_batches(lambda v, x: step(v, x, group), variables, images, batch_size, layers,
                     order)


def extract_features(model: Union[SimCLRModel, ResNet18], variables: dict,
                     images: Union[np.ndarray, jax.Array], *, batch_size: int,
                     layers: Sequence[str] = LAYERS, pool: bool = True,
                     project_dims: int = 0,
                     project_key: Optional[jax.Array] = None, batchnorm: str = 'running',
                     bn_batch: int = 0) -> dict[str, np.ndarray]:
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
    batchnorm: 'running' (eval mode) or 'batch' (each BatchNorm group of bn_batch images
      normalised by its own statistics; see the module docstring).
    bn_batch: images per BatchNorm group in 'batch' mode (0: batch_size; at most N).

  Returns:
    {layer: f32[N, width]} as host arrays; width = channels (pooled), h * w * c
    (flattened) or project_dims (projected).
  """
  unknown = [l for l in layers if l not in LAYERS]
  if unknown:
    raise InputError(f'unknown feature layers {unknown}; choose from {LAYERS}')
  _check_inputs(images, batch_size, project_dims, project_key)
  backbone, variables = backbone_of(model, variables)
  step = lambda v, x, group: _batch_features(backbone, v, x, tuple(layers), pool,
                                             project_dims, project_key, group)
  return run_in_batches(step, variables, images, batch_size=batch_size, layers=layers,
                        batchnorm=batchnorm, bn_batch=bn_batch)


def relu_layers(model: Union[SimCLRModel, ResNet18]) -> tuple[str, ...]:
  """The ReLU outputs of `model` in network order (rwjax.models.resnet.relu_names): the
  backbone's 17, then for a SimCLRModel the projector's hidden ReLUs and its output."""
  if isinstance(model, SimCLRModel):
    return relu_names(tuple(model.projector))
  if isinstance(model, ResNet18):
    return BACKBONE_RELUS
  raise InputError(f'cannot extract features from a {type(model).__name__}; pass a SimCLRModel '
                   'or a ResNet18')


def relu_activations(model: Union[SimCLRModel, ResNet18], variables: dict,
                     x: jax.Array, bn_group: int = 0) -> dict[str, jax.Array]:
  """Every ReLU output of the network in eval mode (pure, jit-compatible).

  Args:
    model: SimCLRModel (the whole network, projector included) or ResNet18.
    variables: the model's {'params', 'batch_stats'}.
    x: f32[B, H, W, C] network input.
    bn_group: 0 (eval mode) or, for 'batch' mode, the BatchNorm group size (B a multiple).

  Returns:
    {name: f32[B, h, w, c] (backbone) or f32[B, d] (projector)} in `relu_layers(model)` order.
  """
  relu_layers(model)  # InputError for other modules.
  if bn_group:
    _, state = bn_lib.apply_batch_mode(model.clone(axis_name=None), variables, x, bn_group,
                                       mutable=['intermediates'])
  else:
    _, state = model.clone(axis_name=None).apply(variables, x, train=False,
                                                 mutable=['intermediates'])
  return {k: v.astype(jnp.float32) for k, v in relu_outputs(state['intermediates']).items()}


@functools.partial(jax.jit, static_argnames=('model', 'layers', 'project_dims', 'bn_group'))
def _batch_relus(model: Union[SimCLRModel, ResNet18], variables: dict, x: jax.Array,
                 layers: tuple[str, ...], project_dims: int = 0,
                 project_key: Optional[jax.Array] = None,
                 bn_group: int = 0) -> dict[str, jax.Array]:
  acts = relu_activations(model, variables, x, bn_group)
  names = tuple(acts)
  return {k: _project(acts[k].reshape(len(x), -1), project_dims, project_key, names.index(k))
          for k in layers}


def extract_relus(model: Union[SimCLRModel, ResNet18], variables: dict,
                  images: Union[np.ndarray, jax.Array], *, batch_size: int,
                  layers: Optional[Sequence[str]] = None, project_dims: int = 0,
                  project_key: Optional[jax.Array] = None, batchnorm: str = 'running',
                  bn_batch: int = 0) -> dict[str, np.ndarray]:
  """Flattened (unpooled) ReLU outputs, for the manifold-capacity analysis.

  Args:
    model: SimCLRModel (backbone and projector ReLUs) or ResNet18 (backbone only).
    variables: the model's {'params', 'batch_stats'}.
    images: f32[N, H, W, C] network input in [0, 1].
    batch_size: images per jitted step.
    layers: names from `relu_layers(model)` (None: all of them).
    project_dims: if > 0, layers wider than this are mapped to this many dimensions by
      `random_projection` on device (0: never).
    project_key: raw PRNG key of the projections (needed with project_dims); layer l uses
      fold_in(project_key, relu_layers(model).index(l)).
    batchnorm, bn_batch: as in `extract_features`.

  Returns:
    {layer: f32[N, width]} as host arrays in network order; width = h * w * c (backbone),
    d (projector) or project_dims (projected).
  """
  names = relu_layers(model)
  layers = names if layers is None else tuple(layers)
  unknown = [l for l in layers if l not in names]
  if unknown:
    raise InputError(f'unknown ReLU layers {unknown}; choose from {names}')
  _check_inputs(images, batch_size, project_dims, project_key)
  layers = tuple(sorted(layers, key=names.index))
  step = lambda v, x, group: _batch_relus(model, v, x, layers, project_dims, project_key, group)
  return run_in_batches(step, variables, images, batch_size=batch_size, layers=layers,
                        batchnorm=batchnorm, bn_batch=bn_batch)


@dataclasses.dataclass(frozen=True)
class Extractor:
  """One network's frozen features under one BatchNorm mode: `extract_features` (stages) and
  `extract_relus` (relus) with the model, variables, batching and mode bound; built by
  `extractor` ('adapt': variables already adapted, extracted in eval mode)."""
  model: Union[SimCLRModel, ResNet18]
  variables: dict
  batchnorm: str  # 'running' or 'batch'
  batch_size: int
  bn_batch: int = 0

  def stages(self, images, **kwargs) -> dict[str, np.ndarray]:
    return extract_features(self.model, self.variables, images, batch_size=self.batch_size,
                            batchnorm=self.batchnorm, bn_batch=self.bn_batch, **kwargs)

  def relus(self, images, **kwargs) -> dict[str, np.ndarray]:
    return extract_relus(self.model, self.variables, images, batch_size=self.batch_size,
                         batchnorm=self.batchnorm, bn_batch=self.bn_batch, **kwargs)


def extractor(model: Union[SimCLRModel, ResNet18], variables: dict, batchnorm: str, *,
              batch_size: int, bn_batch: int = 0,
              adapt_images: Optional[Union[np.ndarray, jax.Array]] = None) -> Extractor:
  """An `Extractor` honouring a BatchNorm mode (rwjax.eval.batchnorm.MODES).

  Args:
    model, variables: the network (SimCLRModel or ResNet18) and its stored variables.
    batchnorm: 'running', 'batch' or 'adapt'.
    batch_size: images per jitted step.
    bn_batch: 'batch' mode: images per BatchNorm group (0: batch_size).
    adapt_images: 'adapt' mode: f32[N, H, W, C] images whose statistics replace the running
      ones (bn_lib.adapt), once; ignored otherwise.
  """
  bn_lib.check_mode(batchnorm, 'batchnorm')
  if batchnorm == 'adapt':
    if adapt_images is None:
      raise InputError("batchnorm='adapt' needs adapt_images (the probe's training images)")
    variables = bn_lib.adapt(model, variables, adapt_images, batch_size=batch_size)
    batchnorm = 'running'
  return Extractor(model, variables, batchnorm, batch_size, bn_batch)
