"""BatchNorm modes 'adapt' and 'batch' of the evaluations."""

import functools
import operator

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rwjax.eval import activations as act
from rwjax.eval import batchnorm as bn_lib
from rwjax.models import create_model, init_variables, layers

N, SIZE = 37, 8


@pytest.fixture(scope='module')
def model():
  return create_model(stem='cifar', width=4, projector=(8, 4), dtype='float32', channels=1)


@pytest.fixture(scope='module')
def arms(model):
  """'pretrained' stands in for a pre-trained network: every BatchNorm scale, offset and running
  statistic moved away from the initial 1 / 0, so none of them is what 'adapt' sets."""
  def move(path, leaf, k):
    name = path[-1].key
    if name in ('scale', 'var'):
      return leaf * jax.random.uniform(k, leaf.shape, minval=0.5, maxval=2.0)
    if name in ('bias', 'mean'):
      return leaf + jax.random.normal(k, leaf.shape)
    return leaf
  init = jax.jit(lambda k: init_variables(model, k, SIZE))
  flat, tree = jax.tree_util.tree_flatten_with_path(init(jax.random.PRNGKey(1)))
  keys = jax.random.split(jax.random.PRNGKey(2), len(flat))
  return {'pretrained': jax.tree.unflatten(tree, [move(p, l, k) for (p, l), k in zip(flat, keys)]),
          'random_init': init(jax.random.PRNGKey(3))}


@pytest.fixture(scope='module')
def images():
  # Not zero-mean, not unit-variance, with a spatial structure.
  base = jax.random.uniform(jax.random.PRNGKey(4), (N, SIZE, SIZE, 1))
  ramp = jnp.linspace(0.0, 1.0, SIZE)[None, :, None, None]
  return np.asarray(0.3 + 0.5 * base * ramp)


def _bn_outputs(model, variables, x):
  """{module path: output} of every BatchNorm layer, one eval-mode apply on all of x."""
  _, state = model.apply(variables, x, train=False,
                         capture_intermediates=lambda m, _: isinstance(m, nn.BatchNorm))
  found = {}

  def visit(tree, path):
    for k, v in tree.items():
      if k == '__call__':
        found[path] = v[0]
      elif isinstance(v, dict):  # (tuples: the model's own sown ReLU outputs)
        visit(v, path + (k,))

  visit(state['intermediates'], ())
  return found


@pytest.mark.parametrize('arm', ['pretrained', 'random_init'])
def test_adapt_normalises_every_batchnorm_input_and_equals_one_batch_of_all_images(
    model, arms, images, arm):
  variables = arms[arm]
  # 37 images in padded batches of 8: the padding must not count.
  adapted = bn_lib.adapt(model, variables, images, batch_size=8)
  outputs = _bn_outputs(model, adapted, jnp.asarray(images))
  # stem, 2 per block (8 blocks), 3 downsample BNs, the projector's hidden one.
  assert len(outputs) == 1 + 16 + 3 + 1
  for path, y in outputs.items():
    p = functools.reduce(operator.getitem, path, variables['params'])
    z = (np.asarray(y, np.float64) - np.asarray(p['bias'])) / np.asarray(p['scale'])
    axes = tuple(range(z.ndim - 1))
    np.testing.assert_allclose(z.mean(axis=axes), 0.0, atol=2e-3, err_msg=str(path))
    np.testing.assert_allclose(z.var(axis=axes), 1.0, atol=2e-2, err_msg=str(path))
  # Without adaptation the stored statistics do not normalise these images.
  before = _bn_outputs(model, variables, jnp.asarray(images))
  p = variables['params']['backbone']['stem_bn']
  z = (np.asarray(before['backbone', 'stem_bn']) - np.asarray(p['bias'])) / np.asarray(p['scale'])
  assert np.abs(z.mean(axis=(0, 1, 2))).max() > 0.1 or np.abs(z.var(axis=(0, 1, 2)) - 1).max() > 0.1
  # 'batch' mode with one batch of all images is 'adapt' (the projector's BatchNorm too).
  views = tuple(act.View(l) for l in layers.STAGES) + tuple(
      act.View(l, 'flat') for l in ('layer2_block0_relu1', 'projector_hidden0_relu',
                                    'projector_output'))
  batch = act.extract(model, variables, images, views, batch_size=64, batchnorm='batch')
  running = act.extract(model, adapted, images, views, batch_size=16)
  for view, b, r in zip(views, batch, running):
    np.testing.assert_allclose(b, r, rtol=1e-3, atol=1e-4, err_msg=str(view))


def test_batch_mode_normalises_each_group_by_its_own_statistics(model, arms, images):
  variables = arms['pretrained']
  order = bn_lib.batch_order(N, 8)
  assert len(order) == 40 and sorted(order[:N]) == list(range(N))
  np.testing.assert_array_equal(order[N:], order[:3])  # topped up with the first images
  assert not np.array_equal(order[:N], np.arange(N))  # a permutation, not dataset order
  views = (act.View('layer2'), act.View('pooled'))
  passes = act.Passes()
  # 2 groups per step (16 images, sharded over the 8 test devices) or 1 (8): the same.
  two = act.extract(model, variables, images, views, batch_size=16, batchnorm='batch',
                    bn_batch=8, passes=passes)
  one = act.extract(model, variables, images, views, batch_size=8, batchnorm='batch',
                    bn_batch=8)
  assert passes.forward == N
  apply = jax.jit(lambda x: model.apply(variables, x, train=True,
                                        mutable=['batch_stats', 'intermediates'])[1])
  for g in range(5):
    members = order[8 * g:8 * (g + 1)]
    x = jnp.asarray(images[members])
    reference = layers.read(apply(x)['intermediates'], x)
    first = [j for j, i in enumerate(members) if 8 * g + j < N]  # first occurrences
    for k, f in enumerate((reference['layer2'].mean(axis=(1, 2)), reference['pooled'])):
      for out in (two, one):
        np.testing.assert_allclose(out[k][members[first]], np.asarray(f)[first],
                                   rtol=1e-3, atol=1e-4)
  eval_mode, = act.extract(model, variables, images, views[1:], batch_size=8)
  assert np.abs(eval_mode - one[1]).max() > 1e-3
