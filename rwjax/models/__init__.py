"""Networks: ResNet-18 backbone + projection head (`create_model` builds one from config values)."""

import functools
from typing import Sequence

import jax
import jax.numpy as jnp

from rwjax import defaults
from rwjax import schema
from rwjax.errors import InputError
from rwjax.models.resnet import CONVS, STEMS, BasicBlock, Projector, ResNet18, SimCLRModel

__all__ = ['CONVS', 'STEMS', 'BasicBlock', 'Projector', 'ResNet18', 'SimCLRModel', 'create_model',
           'init_variables', 'resolve_dtype']

_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def resolve_dtype(dtype: str) -> jnp.dtype:
  """'auto' -> bfloat16 on GPU/TPU, float32 on CPU; 'float32' / 'bfloat16' as named."""
  if dtype == 'auto':
    return jnp.float32 if jax.default_backend() == 'cpu' else jnp.bfloat16
  if dtype not in _DTYPES:
    raise InputError(f"model dtype {dtype!r} is unknown; use 'auto', 'float32' or 'bfloat16'")
  return _DTYPES[dtype]


def create_model(stem: str = 'imagenet', width: int = 64,
                 projector: Sequence[int] = (512, 128), dtype: str = 'auto',
                 axis_name: str | None = None, channels: int = 3,
                 projector_bias_last: bool = True, conv: str = 'matmul_small') -> SimCLRModel:
  """Builds the SimCLR network from config values (config.model fields, passed as kwargs).

  Every argument but axis_name is the config.model key of its name (rwjax.defaults says what
  each means, beside its default and rule); axis_name: the mesh axis to sync BatchNorm over
  ('data' inside shard_map; None outside). Parameters are float32 whatever the compute dtype.

  Raises:
    InputError: for any value its config.model rule refuses.
  """
  given = dict(stem=stem, width=width, channels=channels, projector=projector, dtype=dtype,
               projector_bias_last=projector_bias_last, conv=conv)
  schema.check({'model': given}, {k: rule for k, rule in defaults.pretrain_rules().items()
                                  if k.startswith('model.')})
  return SimCLRModel(stem=stem, width=width, channels=channels, projector=tuple(projector),
                     axis_name=axis_name, dtype=resolve_dtype(dtype),
                     projector_bias_last=projector_bias_last, conv=conv)


@functools.partial(jax.jit, static_argnames=('model', 'image_size'))
def init_variables(model: SimCLRModel, key: jax.Array, image_size: int) -> dict:
  """Initial {'params', 'batch_stats'} for inputs f32[B, image_size, image_size, model.channels].

  Same distributions as `model.init` (torchvision's, see rwjax.models.resnet) but drawn with two
  RNG calls for the whole network instead of one per tensor, which compiles far faster. Running
  means start at 0 and variances at 1. Jitted with the model and size static: many networks of
  one architecture (the evaluator's random inits, checkpoint shapes) trace it once.
  """
  x = jnp.zeros((1, image_size, image_size, model.channels), jnp.float32)
  shapes = jax.eval_shape(lambda k: model.init(k, x, train=False), key)
  leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes['params'])
  dense = [_dense_kernel(path, shapes) for path, _ in leaves]
  conv_total = sum(s.size for _, s in leaves if s.ndim == 4)
  dense_total = sum(s.size for (_, s), k in zip(leaves, dense) if k is not None)
  key_normal, key_uniform = jax.random.split(key)
  normal = jax.random.normal(key_normal, (conv_total,), jnp.float32)
  uniform = jax.random.uniform(key_uniform, (dense_total,), jnp.float32, -1.0, 1.0)
  params, n_used, u_used = [], 0, 0
  for (path, s), kernel in zip(leaves, dense):
    if s.ndim == 4:  # conv kernel [kh, kw, in, out]: N(0, 2 / fan_out)
      std = (2.0 / (s.shape[0] * s.shape[1] * s.shape[3])) ** 0.5
      params.append(std * normal[n_used:n_used + s.size].reshape(s.shape))
      n_used += s.size
    elif kernel is not None:  # dense kernel [in, out] or bias: U(+-1/sqrt(fan_in))
      params.append(kernel.shape[0] ** -0.5 * uniform[u_used:u_used + s.size].reshape(s.shape))
      u_used += s.size
    else:  # BatchNorm
      params.append(jnp.ones(s.shape) if path[-1].key == 'scale' else jnp.zeros(s.shape))
  batch_stats = jax.tree_util.tree_map_with_path(
      lambda path, s: jnp.ones(s.shape) if path[-1].key == 'var' else jnp.zeros(s.shape),
      shapes['batch_stats'])
  return {'params': jax.tree_util.tree_unflatten(treedef, params), 'batch_stats': batch_stats}


def _dense_kernel(path, shapes) -> jax.ShapeDtypeStruct | None:
  """The Dense kernel [in, out] of a parameter's module; None outside Dense modules (BatchNorm
  has 'scale' and 'bias', no 'kernel'; a conv's kernel is 4-D)."""
  node = shapes['params']
  for entry in path[:-1]:
    node = node[entry.key]
  kernel = node.get('kernel')
  return kernel if kernel is not None and kernel.ndim == 2 else None
