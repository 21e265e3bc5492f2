"""ResNet-18 backbone, the paper's projection head, and the SimCLR model that joins them.

Layouts and initialisation are torchvision's ResNet-18 (BasicBlock, [2, 2, 2, 2], PyTorch-style
padding, BatchNorm momentum 0.1 in PyTorch terms = 0.9 here, epsilon 1e-5, scale 1, offset 0;
conv kernels N(0, 2 / fan_out), dense kernels and biases U(+-1/sqrt(fan_in))): a width-64,
3-channel backbone has torchvision's 11,176,512 parameters (its 11.69 M minus the classifier),
and the paper's random-init baseline is this network (`rwjax.models.init_variables` draws it
faster). In training mode BatchNorm averages over `axis_name` ('data' inside `jax.shard_map`:
the global batch). Computation runs in `dtype`; parameters, BatchNorm statistics and outputs
are float32. Every layer the evaluation reads is sown into 'intermediates' (a no-op unless
applied with mutable=['intermediates']; rwjax.models.layers.read names them).
"""

import itertools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rwjax.errors import InputError

STEMS = ('imagenet', 'cifar')

# torchvision: kaiming_normal_(mode='fan_out', nonlinearity='relu') for convs, and nn.Linear's
# kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(fan_in)) = variance 1 / (3 fan_in) for dense kernels.
CONV_INIT = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')
DENSE_INIT = nn.initializers.variance_scaling(1 / 3, 'fan_in', 'uniform')


def _batch_norm(train: bool, axis_name: str | None, dtype: Any, name: str | None = None):
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      axis_name=axis_name if train else None, dtype=dtype,
                      param_dtype=jnp.float32, name=name)


# XLA's CPU convolution is slow on output maps of few positions (layer3 and layer4 at 32x32
# input; docs/training.md, bench/conv.py): conv='matmul_small' computes such a convolution as the
# flattened map times the kernel laid out densely over all input and output positions.
CONVS = ('matmul_small', 'xla')
SMALL_MAP = 4  # output positions (height x width) at or below which 'matmul_small' multiplies


class Conv(nn.Module):
  """Square convolution without bias, PyTorch-style padding (kernel - 1) // 2, params as nn.Conv's.

  Maps x f32[B, H, W, C] to f32[B, Ho, Wo, features] in `dtype` (kernel f32[k, k, C, features]
  stored in float32, 'SAME' not used: it pads asymmetrically at stride 2); `conv`: CONVS.
  """
  features: int
  kernel: int
  stride: int = 1
  dtype: Any = jnp.float32
  conv: str = 'matmul_small'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, s, d = self.kernel, self.stride, self.features
    b, h, wd, c = x.shape
    w = self.param('kernel', CONV_INIT, (k, k, c, d), jnp.float32)
    x, w = x.astype(self.dtype), w.astype(self.dtype)
    pad = (k - 1) // 2
    ho, wo = (h + 2 * pad - k) // s + 1, (wd + 2 * pad - k) // s + 1
    if self.conv == 'xla' or ho * wo > SMALL_MAP or k == 1:  # 1x1: XLA multiplies already
      return jax.lax.conv_general_dilated(x, w, (s, s), ((pad, pad), (pad, pad)),
                                          dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    # taps[input position, output position]: the kernel tap i * k + j joining them, k * k
    # (a zero tap) where none does.
    taps = np.full((h * wd, ho * wo), k * k)
    for oi, oj, i, j in itertools.product(range(ho), range(wo), range(k), range(k)):
      r, q = oi * s + i - pad, oj * s + j - pad
      if 0 <= r < h and 0 <= q < wd:
        taps[r * wd + q, oi * wo + oj] = i * k + j
    w = jnp.concatenate([w.reshape(k * k, c, d), jnp.zeros((1, c, d), w.dtype)])
    dense = w[taps].transpose(0, 2, 1, 3).reshape(h * wd * c, ho * wo * d)
    return (x.reshape(b, -1) @ dense).reshape(b, ho, wo, d)


class BasicBlock(nn.Module):
  """Two 3x3 convolutions with a residual connection (1x1 projection when the shape changes)."""
  features: int
  stride: int = 1
  axis_name: str | None = None
  dtype: Any = jnp.float32
  conv: str = 'matmul_small'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    y = Conv(self.features, 3, self.stride, self.dtype, self.conv, name='conv1')(x)
    y = nn.relu(_batch_norm(train, self.axis_name, self.dtype, name='bn1')(y))
    self.sow('intermediates', 'relu1', y)
    y = Conv(self.features, 3, 1, self.dtype, self.conv, name='conv2')(y)
    y = _batch_norm(train, self.axis_name, self.dtype, name='bn2')(y)
    if x.shape[-1] != self.features or self.stride != 1:
      x = Conv(self.features, 1, self.stride, self.dtype, self.conv,
               name='downsample_conv')(x)
      x = _batch_norm(train, self.axis_name, self.dtype, name='downsample_bn')(x)
    out = nn.relu(x + y)
    self.sow('intermediates', 'out', out)
    return out


class ResNet18(nn.Module):
  """ResNet-18 feature extractor (no classifier).

  Attributes:
    stem: 'imagenet' (7x7 stride-2 conv, BN, ReLU, 3x3 stride-2 max-pool; torchvision's, which the
      paper used even on 32x32 frames) or 'cifar' (3x3 stride-1 conv, BN, ReLU, no pool).
    width: channels of layer1; layers 2-4 have 2x, 4x, 8x this (64 = standard ResNet-18).
    axis_name: mesh axis over which BatchNorm averages batch statistics (None: local batch).
    dtype: compute dtype; parameters are always float32.
    conv: how convolutions are computed (CONVS; the same sums in another order).
  """
  stem: str = 'imagenet'
  width: int = 64
  axis_name: str | None = None
  dtype: Any = jnp.float32
  conv: str = 'matmul_small'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    """Runs the backbone.

    Args:
      x: f32[B, H, W, C] images in [0, 1] (C = 1 or 3).
      train: batch statistics (synced over `axis_name`) and running-average updates if True;
        running averages if False.

    Returns:
      pooled f32[B, 8 * width] (global average of layer4).
    """
    x = x.astype(self.dtype)
    kernel, stride = (7, 2) if self.stem == 'imagenet' else (3, 1)
    x = Conv(self.width, kernel, stride, self.dtype, self.conv, name='stem_conv')(x)
    x = nn.relu(_batch_norm(train, self.axis_name, self.dtype, name='stem_bn')(x))
    self.sow('intermediates', 'stem_relu', x)
    if self.stem == 'imagenet':
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    self.sow('intermediates', 'stem', x)
    for i, b in itertools.product(range(4), range(2)):  # layer2-4 halve the map at block0
      stride = 2 if i and not b else 1
      x = BasicBlock(self.width * 2 ** i, stride, self.axis_name, self.dtype, self.conv,
                     name=f'layer{i + 1}_block{b}')(x, train)
    return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


class Projector(nn.Module):
  """The paper's projection head: [Dense (no bias) -> BN -> ReLU] per hidden width, then Dense.

  `features` lists all widths, the last being the output: (512, 128) = one hidden layer of 512
  then 128 out (the paper's); (2048, 128) = SimCLR's. The output is L2-normalised.
  `bias_last`: whether the output Dense has a bias (the paper's code: False).
  """
  features: Sequence[int] = (512, 128)
  axis_name: str | None = None
  dtype: Any = jnp.float32
  bias_last: bool = True

  @nn.compact
  def __call__(self, h: jax.Array, train: bool) -> jax.Array:
    """Maps h f32[B, D] to z f32[B, features[-1]] with unit L2 norm."""
    x = h.astype(self.dtype)
    for i, f in enumerate(self.features[:-1]):
      x = nn.Dense(f, use_bias=False, dtype=self.dtype, param_dtype=jnp.float32,
                   kernel_init=DENSE_INIT, name=f'hidden{i}')(x)
      self.sow('intermediates', f'hidden{i}_linear', x)
      x = nn.relu(_batch_norm(train, self.axis_name, self.dtype, name=f'hidden{i}_bn')(x))
      self.sow('intermediates', f'hidden{i}_relu', x)
    bound = x.shape[-1] ** -0.5  # nn.Linear's bias: U(+-1/sqrt(fan_in))
    bias_init = lambda k, shape, dtype: jax.random.uniform(k, shape, dtype, -bound, bound)
    x = nn.Dense(self.features[-1], use_bias=self.bias_last, dtype=self.dtype,
                 param_dtype=jnp.float32, kernel_init=DENSE_INIT, bias_init=bias_init,
                 name='out')(x)
    x = x.astype(jnp.float32)
    self.sow('intermediates', 'output', x)  # Before the L2 normalisation (which the loss applies).
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class SimCLRModel(nn.Module):
  """Backbone (params under 'backbone') followed by the projector (under 'projector').

  Attributes: see `ResNet18` and `Projector`; `channels` is the expected input channel count.
  """
  stem: str = 'imagenet'
  width: int = 64
  channels: int = 3
  projector: Sequence[int] = (512, 128)
  axis_name: str | None = None
  dtype: Any = jnp.float32
  projector_bias_last: bool = True
  conv: str = 'matmul_small'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
    """Maps x f32[B, H, W, channels] to (z f32[B, projector[-1]] unit-norm, h f32[B, 8 * width])."""
    if x.ndim != 4 or x.shape[-1] != self.channels:
      raise InputError(f'model input has shape {x.shape}; expected [batch, height, width, '
                       f'{self.channels}] (model.channels={self.channels})')
    h = ResNet18(self.stem, self.width, self.axis_name, self.dtype, self.conv,
                 name='backbone')(x, train)
    z = Projector(tuple(self.projector), self.axis_name, self.dtype, self.projector_bias_last,
                  name='projector')(h, train)
    return z, h
