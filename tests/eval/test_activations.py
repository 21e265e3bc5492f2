"""Features of a frozen network, and random projections."""

import jax
import jax.numpy as jnp
import numpy as np

from rwjax.eval import activations as act
from rwjax.models import create_model, init_variables, layers


def test_several_views_come_from_one_forward_pass_and_equal_separate_extractions():
  model = create_model(stem='cifar', width=4, projector=(8, 4), dtype='float32', channels=1)
  variables = init_variables(model, jax.random.PRNGKey(0), 12)
  # Non-trivial running statistics, so that eval mode is visible in the features.
  variables['batch_stats'] = jax.tree.map(lambda s: 1.5 * s + 0.2, variables['batch_stats'])
  images = np.asarray(jax.random.uniform(jax.random.PRNGKey(2), (13, 12, 12, 1)))
  key = jax.random.PRNGKey(4)
  views = [act.View('stem'), act.View('layer2'), act.View('pooled'),
           act.View('layer3_block0_relu1', 'flat'),
           act.View('stem_relu', 'flat', 100),  # 12 x 12 x 4 = 576 wide: projected
           act.View('projector_output', 'flat', 100)]  # 4 wide: kept
  keys = [None] * 4 + [key, jax.random.PRNGKey(5)]
  passes = act.Passes()
  # 8 images per step divide among the 8 test devices (sharded); 5 run on one; both pad.
  got = act.extract(model, variables, images, views, keys, batch_size=8, passes=passes)
  assert passes.forward == 13 and passes.adapt == 0
  for view, k, features in zip(views, keys, got):
    alone, = act.extract(model, variables, images, [view], [k], batch_size=5)
    np.testing.assert_allclose(alone, features, rtol=1e-5, atol=1e-6, err_msg=str(view))

  @jax.jit
  def reference(v, x):
    _, state = model.apply(v, x, train=False, mutable=['intermediates'])
    acts = layers.read(state['intermediates'], x)
    flat = acts['stem_relu'].reshape(len(x), -1)
    return acts, act.random_projection(flat, key, 100), model.apply(v, x, train=False)[1]

  acts, projected, h = reference(variables, images)
  same = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  for features, name in zip(got[:3], ('stem', 'layer2', 'pooled')):
    assert features.dtype == np.float32 and features.shape[0] == 13
    same(features, acts[name] if name == 'pooled' else acts[name].mean(axis=(1, 2)))
  assert [f.shape[1] for f in got] == [4, 8, 32, 3 * 3 * 16, 100, 4]
  same(got[3], acts['layer3_block0_relu1'].reshape(13, -1))  # (h, w, c)-major
  same(got[4], projected)
  same(got[5], acts['projector_output'])
  same(got[2], h)  # the SimCLR model's own representation h


def test_random_projection_keeps_norms_and_distances_and_ignores_batching():
  x = jax.random.normal(jax.random.PRNGKey(8), (12, 3000)) * jnp.linspace(0.5, 3, 12)[:, None]
  project = jax.jit(act.random_projection, static_argnames=('dims', 'block'))
  y = np.asarray(project(x, jax.random.PRNGKey(9), dims=1500, block=1024))  # 3 blocks, padded
  x = np.asarray(x)
  # Relative error of a norm ~ sqrt(1 / (2 dims)) = 0.018: 0.06 is > 3 sigma.
  np.testing.assert_allclose(np.linalg.norm(y, axis=1), np.linalg.norm(x, axis=1), rtol=0.06)
  dist = lambda a: np.linalg.norm(a[:, None] - a[None], axis=-1)[np.triu_indices(len(a), 1)]
  np.testing.assert_allclose(dist(y), dist(x), rtol=0.1)
  np.testing.assert_allclose(project(x[5:7], jax.random.PRNGKey(9), dims=1500, block=1024),
                             y[5:7], rtol=1e-5, atol=1e-5)
