"""Convolutions of the width-64 ResNet-18 at 32x32 input, both model.conv settings side by side.

  python bench/conv.py [--batch=256] [--size=32] [--width=64] [--repeats=5]

For each distinct convolution of the network (input map, channels, kernel, stride) and for
the whole network's forward pass (eval mode) and training gradient: milliseconds per batch
under 'xla' (lax.conv_general_dilated everywhere) and 'matmul_small' (one matrix product for
kernels wider than 1x1 onto maps of at most rwjax.models.resnet.SMALL_MAP positions). Prints
one JSON object.
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from rwjax.models import create_model, init_variables, resnet


def _ms(f, *args, repeats):
  jax.block_until_ready(f(*args))  # compile
  t = time.perf_counter()
  for _ in range(repeats):
    jax.block_until_ready(f(*args))
  return round((time.perf_counter() - t) / repeats * 1e3, 2)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batch', type=int, default=256)
  parser.add_argument('--size', type=int, default=32)
  parser.add_argument('--width', type=int, default=64)
  parser.add_argument('--repeats', type=int, default=5)
  a = parser.parse_args()
  rng = np.random.RandomState(0)
  side = a.size // 4  # after the imagenet stem's stride-2 conv and max-pool
  shapes = [(a.size, 3, a.width, 7, 2)]  # (input side, in, out, kernel, stride)
  for stage in range(4):
    c = a.width * 2 ** stage
    if stage:
      shapes += [(side, c // 2, c, 3, 2), (side, c // 2, c, 1, 2)]
      side = (side + 1) // 2
    shapes.append((side, c, c, 3, 1))
  convs = []
  for side, cin, cout, kernel, stride in shapes:
    x = jnp.asarray(rng.randn(a.batch, side, side, cin), jnp.float32)
    row = {'conv': f'{side}x{side}x{cin} -> {cout}, {kernel}x{kernel}/{stride}'}
    for conv in resnet.CONVS:
      m = resnet.Conv(cout, kernel, stride, conv=conv)
      v = m.init(jax.random.PRNGKey(0), x)
      row[f'{conv}_ms'] = _ms(jax.jit(m.apply), v, x, repeats=a.repeats)
      grad = jax.jit(jax.grad(lambda v, x: jnp.sum(m.apply(v, x) ** 2)))
      row[f'{conv}_grad_ms'] = _ms(grad, v, x, repeats=a.repeats)
    convs.append(row)
  x = jnp.asarray(rng.rand(a.batch, a.size, a.size, 3), jnp.float32)
  network = {}
  for conv in resnet.CONVS:
    model = create_model(width=a.width, dtype='float32', conv=conv)
    v = init_variables(model, jax.random.PRNGKey(0), a.size)
    forward = jax.jit(lambda v, x: model.apply(v, x, train=False)[1])
    network[f'{conv}_forward_ms'] = _ms(forward, v, x, repeats=a.repeats)

    def loss(params, x):
      (z, _), _ = model.apply({'params': params, 'batch_stats': v['batch_stats']}, x,
                              train=True, mutable=['batch_stats'])
      return jnp.sum(z ** 2)
    network[f'{conv}_grad_ms'] = _ms(jax.jit(jax.grad(loss)), v['params'], x,
                                     repeats=a.repeats)
  network['forward_speedup'] = round(
      network['xla_forward_ms'] / network['matmul_small_forward_ms'], 2)
  network['grad_speedup'] = round(network['xla_grad_ms'] / network['matmul_small_grad_ms'], 2)
  print(json.dumps({'device': jax.devices()[0].device_kind, 'batch': a.batch, 'size': a.size,
                    'width': a.width, 'network': network, 'convs': convs}))


if __name__ == '__main__':
  main()
