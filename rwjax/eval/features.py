"""Frozen features: every ResNet-18 stage of a (pre-trained or random) network, average-pooled.

The backbone runs in eval mode (BatchNorm running statistics) in jitted, fixed-size batches
(the last one padded, so one compiled program serves any N), split over the local devices
when the batch divides evenly among them.
"""

import functools
from typing import Sequence, Union

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


@functools.partial(jax.jit, static_argnames=('backbone', 'layers'))
def _batch_features(backbone: ResNet18, variables: dict, x: jax.Array,
                    layers: tuple[str, ...]) -> dict[str, jax.Array]:
  stages = backbone.apply(variables, x, train=False, return_stages=True)
  return {k: stages[k] if stages[k].ndim == 2 else stages[k].mean(axis=(1, 2)) for k in layers}


def extract_features(model: Union[SimCLRModel, ResNet18], variables: dict,
                     images: Union[np.ndarray, jax.Array], *, batch_size: int,
                     layers: Sequence[str] = LAYERS) -> dict[str, np.ndarray]:
  """Spatially average-pooled activations of each requested stage.

  Args:
    model: SimCLRModel or ResNet18 (see `backbone_of`).
    variables: the model's {'params', 'batch_stats'}.
    images: f32[N, H, W, C] network input in [0, 1] (see rwjax.data.preprocess).
    batch_size: images per jitted step.
    layers: stages to return, from LAYERS.

  Returns:
    {layer: f32[N, channels of that layer]} as host arrays.
  """
  unknown = [l for l in layers if l not in LAYERS]
  if unknown:
    raise InputError(f'unknown feature layers {unknown}; choose from {LAYERS}')
  if batch_size < 1:
    raise InputError(f'batch_size must be >= 1, got {batch_size}')
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
    outputs.append(_batch_features(backbone, variables, x, tuple(layers)))
  # One device-to-host copy at the end lets the device run ahead of the host loop.
  outputs = jax.device_get(outputs)
  return {l: np.concatenate([o[l] for o in outputs])[:n] for l in layers}
