"""Networks: ResNet-18 backbone + projection head (`create_model` builds one from config values)."""

import functools
from typing import Sequence

import jax
import jax.numpy as jnp

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

  Args:
    stem: 'imagenet' (7x7/2 conv + max-pool, the default) or 'cifar' (3x3/1 conv, no pool).
    width: channels of the first stage (64 = standard ResNet-18).
    projector: widths of the projection head, last = output size, e.g. (512, 128).
    dtype: compute dtype, 'auto' | 'float32' | 'bfloat16' (parameters always float32).
    axis_name: mesh axis to sync BatchNorm over ('data' inside shard_map; None outside).
    channels: input channels, 1 or 3.
    projector_bias_last: whether the projector's output layer has a bias (the paper: False;
      True is rwjax's original head, and what a config written before this key means).
    conv: 'matmul_small' (kernels wider than 1x1 onto maps of at most 4 positions as one
      matrix product, 10-100x faster with XLA on CPU) | 'xla' (lax.conv_general_dilated
      everywhere); the same sums in another order, so the outputs agree to float rounding.

  Raises:
    InputError: for any value out of range.
  """
  if stem not in STEMS:
    raise InputError(f'model stem {stem!r} is unknown; use one of {STEMS}')
  if isinstance(width, bool) or not isinstance(width, int) or width < 1:
    raise InputError(f'model width {width!r} must be a positive integer (64 = ResNet-18)')
  if channels not in (1, 3):
    raise InputError(f'model channels {channels!r} must be 1 or 3')
  projector = tuple(projector) if isinstance(projector, (list, tuple)) else projector
  if (not isinstance(projector, tuple) or not projector
      or not all(isinstance(f, int) and not isinstance(f, bool) and f > 0 for f in projector)):
    raise InputError(f'model projector {projector!r} must be a non-empty sequence of positive '
                     'integers, e.g. (512, 128)')
  if conv not in CONVS:
    raise InputError(f'model conv {conv!r} is unknown; use one of {CONVS}')
  if not isinstance(projector_bias_last, bool):
    raise InputError(f'model projector_bias_last {projector_bias_last!r} must be True or False '
                     '(the paper: False)')
  return SimCLRModel(stem=stem, width=width, channels=channels, projector=projector,
                     axis_name=axis_name, dtype=resolve_dtype(dtype),
                     projector_bias_last=projector_bias_last, conv=conv)


@functools.partial(jax.jit, static_argnames=('model', 'image_size'))
def init_variables(model: SimCLRModel, key: jax.Array, image_size: int) -> dict:
  """Initial {'params', 'batch_stats'} for inputs f32[B, image_size, image_size, model.channels].

  Same distributions as `model.init` (torchvision's, see rwjax.models.resnet) but drawn with two
  RNG calls for the whole network instead of one per tensor: compiling `model.init` costs tens of
  seconds on CPU, this about one. Running means start at 0 and running variances at 1. Jitted
  with the model and size static: a process that builds many networks of one architecture (the
  evaluator's random inits, checkpoint shapes) traces it once.
  """
  x = jnp.zeros((1, image_size, image_size, model.channels), jnp.float32)
  shapes = jax.eval_shape(lambda k: model.init(k, x, train=False), key)
  leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes['params'])
  conv_total = sum(s.size for _, s in leaves if s.ndim == 4)
  dense_total = sum(s.size for path, s in leaves if s.ndim < 4 and _is_dense(path, shapes))
  key_normal, key_uniform = jax.random.split(key)
  normal = jax.random.normal(key_normal, (conv_total,), jnp.float32)
  uniform = jax.random.uniform(key_uniform, (dense_total,), jnp.float32, -1.0, 1.0)
  params, n_used, u_used = [], 0, 0
  for path, s in leaves:
    if s.ndim == 4:  # conv kernel [kh, kw, in, out]: N(0, 2 / fan_out)
      std = (2.0 / (s.shape[0] * s.shape[1] * s.shape[3])) ** 0.5
      params.append(std * normal[n_used:n_used + s.size].reshape(s.shape))
      n_used += s.size
    elif _is_dense(path, shapes):  # dense kernel [in, out] or bias: U(+-1/sqrt(fan_in))
      fan_in = s.shape[0] if s.ndim == 2 else _sibling_kernel(path, shapes).shape[0]
      params.append(fan_in ** -0.5 * uniform[u_used:u_used + s.size].reshape(s.shape))
      u_used += s.size
    else:  # BatchNorm
      params.append(jnp.ones(s.shape) if path[-1].key == 'scale' else jnp.zeros(s.shape))
  batch_stats = jax.tree_util.tree_map_with_path(
      lambda path, s: jnp.ones(s.shape) if path[-1].key == 'var' else jnp.zeros(s.shape),
      shapes['batch_stats'])
  return {'params': jax.tree_util.tree_unflatten(treedef, params), 'batch_stats': batch_stats}


def _sibling_kernel(path, shapes) -> jax.ShapeDtypeStruct | None:
  node = shapes['params']
  for entry in path[:-1]:
    node = node[entry.key]
  return node.get('kernel')


def _is_dense(path, shapes) -> bool:
  """A Dense kernel or bias (BatchNorm modules have 'scale' and 'bias', no 'kernel')."""
  kernel = _sibling_kernel(path, shapes)
  return kernel is not None and kernel.ndim == 2
