"""BatchNorm on natural images: which statistics a frozen network normalises with.

Neither a pre-trained network's running statistics (wave frames) nor a random-init network's
(0 / 1) describe natural images, and the choice can decide the verdict. Each eval lists the
modes it is measured under (config.evals.NAME.batchnorm, a report row's 'batchnorm'):
  'running': eval mode with the stored running statistics.
  'batch':   train mode, each group of images normalised by its own statistics (nothing
             stored); the groups come from `batch_order`, the same for both arms, every
             network and every task for a set of a given size.
  'adapt':   running statistics recomputed once, exactly, on natural images (`adapt`), then
             eval mode: deterministic and independent of batch order.
How these relate to the paper's code: docs/evaluation.md, 'The paper's code and this one'.
"""

import functools
from typing import Any, Optional

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rwjax.errors import InputError

MODES = ('running', 'batch', 'adapt')


def batch_order(n: int, group: int) -> np.ndarray:
  """Image indices in the order 'batch' mode feeds them, i64[ceil(n / group) * group].

  A fixed permutation of range(n) (jax.random.permutation(PRNGKey(0), n)), topped up with its
  own first images to a multiple of `group`: consecutive `group`-slices are the BatchNorm
  batches. The first n entries are the permutation itself (every image once). Permuted because
  image folders list images class by class, and class-pure batches would leak the label.
  """
  if group < 1 or n < 1:
    raise InputError(f'batch_order needs n >= 1 and group >= 1, got n={n}, group={group}')
  perm = np.asarray(jax.random.permutation(jax.random.PRNGKey(0), n))
  pad = (-n) % group
  return np.concatenate([perm, np.resize(perm, pad)])


def bn_input_moments(model: nn.Module, variables: dict, x: jax.Array,
                     mask: jax.Array) -> dict[tuple[str, ...], tuple[jax.Array, ...]]:
  """Per-channel statistics of every BatchNorm layer's input, eval mode (pure, jittable).

  Args:
    model: a flax module whose BatchNorm layers are nn.BatchNorm (SimCLRModel, ResNet18),
      applied as model.apply(variables, x, train=False).
    variables: its {'params', 'batch_stats'}.
    x: f32[B, H, W, C] network input.
    mask: bool[B], the rows that count (False: batch padding).

  Returns:
    {module path: (count f32[], mean f32[c], m2 f32[c])}: count = sum of mask times the
    positions per image, m2 = the sum of squared deviations from that batch mean.
  """
  found = {}

  def record(next_fun, args, kwargs, context):
    if isinstance(context.module, nn.BatchNorm) and context.method_name == '__call__':
      h = args[0].astype(jnp.float32)
      w = mask.reshape((-1,) + (1,) * (h.ndim - 1)).astype(jnp.float32)
      axes = tuple(range(h.ndim - 1))
      count = jnp.sum(w) * (h.size // (h.shape[0] * h.shape[-1]))
      mean = jnp.sum(h * w, axis=axes) / jnp.maximum(count, 1.0)
      m2 = jnp.sum(w * jnp.square(h - mean), axis=axes)
      found[context.module.path] = (count, mean, m2)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    model.apply(variables, x, train=False)
  return found


@functools.partial(jax.jit, static_argnames=('model',))
def _batch_moments(model, variables, x, n_valid):
  return bn_input_moments(model, variables, x, jnp.arange(len(x)) < n_valid)


def adapt(model: nn.Module, variables: dict, images, *, batch_size: int,
          max_passes: Optional[int] = None, passes=None) -> dict:
  """Variables whose running statistics are the exact BatchNorm input statistics on `images`.

  Layer l's input depends on the statistics of the layers before it, so one pass cannot give
  them all: each pass measures every layer's input mean and (population) variance over all
  images in eval mode with the previous pass's statistics; after pass k the first k layers
  in depth are exact, and the passes stop when a pass reproduces the previous statistics bit
  for bit (the computation is deterministic), i.e. after depth + 1 passes (18 for the
  ResNet-18 backbone, one more per projector hidden layer). The result equals train-mode
  statistics of one batch holding all images (tests/eval/test_batchnorm.py).

  Args:
    model: SimCLRModel or ResNet18 (BatchNorm without axis_name).
    variables: {'params', 'batch_stats'}.
    images: f32[N, H, W, C] network input (the probe's training images).
    batch_size: images per jitted step (the last one padded and masked).
    max_passes: stop after this many passes (None: one per BatchNorm layer plus one).
    passes: rwjax.eval.activations.Passes, counting the images run (`adapt`).

  Returns:
    {'params', 'batch_stats'} with every 'mean' / 'var' replaced (float32).
  """
  if len(images) < 1 or batch_size < 1:
    raise InputError(f'adapt needs images and batch_size >= 1, got {len(images)} images, '
                     f'batch_size={batch_size}')
  model = model.clone(axis_name=None) if hasattr(model, 'axis_name') else model
  stats = flax.core.unfreeze(jax.device_get(variables['batch_stats']))
  n_bn = len(jax.tree.leaves(stats)) // 2
  previous = None
  for n_pass in range(1, (max_passes or n_bn + 1) + 1):
    current = {'params': variables['params'], 'batch_stats': stats}
    sums = {}
    for start in range(0, len(images), batch_size):
      x = jnp.asarray(images[start:start + batch_size], jnp.float32)
      n_valid = len(x)
      x = jnp.pad(x, ((0, batch_size - n_valid),) + ((0, 0),) * (x.ndim - 1))
      for path, (c, m, m2) in jax.device_get(_batch_moments(model, current, x,
                                                            n_valid)).items():
        c, m, m2 = float(c), np.float64(m), np.float64(m2)
        if path in sums:  # Chan et al.'s pairwise combination of means and M2.
          c0, m0, s0 = sums[path]
          delta, total = m - m0, c0 + c
          c, m, m2 = total, m0 + delta * c / total, s0 + m2 + delta ** 2 * c0 * c / total
        sums[path] = (c, m, m2)
    stats = flax.core.unfreeze(jax.device_get(variables['batch_stats']))
    for path, (c, m, m2) in sums.items():
      functools.reduce(dict.__getitem__, path[:-1], stats)[path[-1]] = {
          'mean': m.astype(np.float32), 'var': (m2 / c).astype(np.float32)}
    flat = [np.asarray(v) for v in jax.tree.leaves(stats)]
    if previous is not None and all(np.array_equal(a, b) for a, b in zip(flat, previous)):
      break
    previous = flat
  if passes is not None:
    passes.adapt += n_pass * len(images)
  return {'params': variables['params'], 'batch_stats': jax.tree.map(jnp.asarray, stats)}


def apply_batch_mode(model: nn.Module, variables: dict, x: jax.Array, group: int,
                     **kwargs) -> Any:
  """model.apply in train mode with each `group` consecutive images of x f32[k * group, ...]
  normalised by their own statistics (vmapped over the k groups); running statistics are
  neither used nor updated. kwargs (e.g. return_stages=True, mutable=['intermediates']) go
  to apply; outputs are concatenated back to [k * group, ...] in x's order.
  """
  k = x.shape[0] // group
  xs = x.reshape((k, group) + x.shape[1:])
  mutable = list(kwargs.pop('mutable', [])) + ['batch_stats']

  def one(xg):
    out, state = model.apply(variables, xg, train=True, mutable=mutable, **kwargs)
    state = {c: v for c, v in state.items() if c != 'batch_stats'}
    return (out, state) if len(mutable) > 1 else out

  out = jax.vmap(one)(xs)
  return jax.tree.map(lambda a: a.reshape((k * group,) + a.shape[2:]), out)
