"""Frozen features: every stage, average-pooled, and every ReLU output, flattened; eval mode,
independent of batching."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rwjax.errors import InputError
from rwjax.eval.features import (LAYERS, backbone_of, extract_features, extract_relus,
                                  random_projection, relu_activations, relu_layers)
from rwjax.models import create_model, init_variables
from rwjax.models.resnet import BACKBONE_RELUS


@pytest.fixture(scope='module')
def model_and_variables():
  model = create_model(stem='cifar', width=4, projector=(8, 4), dtype='float32', channels=1)


  @jax.jit  # One compiled program: eager initialisation dispatches hundreds of small ops.
  def init(key):
    variables = init_variables(model, key, 12)
    # Non-trivial running statistics, so eval mode is visible in the features.
    leaves, tree = jax.tree.flatten(variables['batch_stats'])
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    leaves = [l + 0.5 * jax.random.uniform(k, l.shape) for l, k in zip(leaves, keys)]
    return {'params': variables['params'], 'batch_stats': jax.tree.unflatten(tree, leaves)}

  return model, init(jax.random.PRNGKey(0))


def test_features_are_pooled_stages_in_eval_mode_whatever_the_batching(model_and_variables):
  model, variables = model_and_variables
  images = jax.random.uniform(jax.random.PRNGKey(2), (13, 12, 12, 1))
  # 8 divides among the 8 test devices (sharded path); 5 runs on one device; both pad.
  features = extract_features(model, variables, images, batch_size=8)
  other = extract_features(model, variables, np.asarray(images),
                           batch_size=5, layers=('layer2', 'pooled'))
  backbone, backbone_vars = backbone_of(model, variables)
  stages = jax.jit(lambda v, x: backbone.apply(v, x, train=False, return_stages=True))(
      backbone_vars, images)
  widths = {'stem': 4, 'layer1': 4, 'layer2': 8, 'layer3': 16, 'layer4': 32, 'pooled': 32}
  for layer in LAYERS:
    assert features[layer].shape == (13, widths[layer]) and features[layer].dtype == np.float32
    expected = stages[layer] if layer == 'pooled' else stages[layer].mean(axis=(1, 2))
    np.testing.assert_allclose(features[layer], expected, rtol=1e-5, atol=1e-6)
  for layer in ('layer2', 'pooled'):
    np.testing.assert_allclose(other[layer], features[layer], rtol=1e-5, atol=1e-6)
  # The SimCLR model's own representation h is the pooled feature.
  _, h = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, images)
  np.testing.assert_allclose(features['pooled'], h, rtol=1e-5, atol=1e-6)


def test_bad_layers_and_inputs_raise_input_error(model_and_variables):
  model, variables = model_and_variables
  images = jnp.zeros((2, 12, 12, 1))
  with pytest.raises(InputError, match='unknown feature layers'):
    extract_features(model, variables, images, batch_size=2, layers=('fc',))
  with pytest.raises(InputError, match='batch_size'):
    extract_features(model, variables, images, batch_size=0)
  with pytest.raises(InputError, match='cannot extract features'):
    extract_features(object(), variables, images, batch_size=2)


def test_relu_outputs_are_flattened_in_network_order_and_wide_ones_projected(
    model_and_variables):
  model, variables = model_and_variables
  names = relu_layers(model)
  assert names == BACKBONE_RELUS + ('projector_hidden0_relu', 'projector_output')
  images = jax.random.uniform(jax.random.PRNGKey(3), (13, 12, 12, 1))
  key = jax.random.PRNGKey(4)
  # Asked for in reverse, returned in network order; 8 images per step, sharded, padded.
  flat = extract_relus(model, variables, images, batch_size=8, layers=names[::-1])
  assert tuple(flat) == names
  # One step of 5 images on one device; stem_relu (576 wide) is projected, the output kept.
  some = extract_relus(model, variables, np.asarray(images), batch_size=5,
                       layers=('projector_output', 'stem_relu'), project_dims=100,
                       project_key=key)
  assert tuple(some) == ('stem_relu', 'projector_output')

  @jax.jit
  def reference(v, x):
    acts = relu_activations(model, v, x)
    z, h = model.apply(v, x, train=False)
    projected = random_projection(acts['stem_relu'].reshape(len(x), -1),
                                  jax.random.fold_in(key, names.index('stem_relu')), 100)
    return acts, projected, z, h

  acts, projected, z, h = reference(variables, images)
  for name in names:
    assert flat[name].dtype == np.float32
    np.testing.assert_allclose(flat[name], acts[name].reshape(13, -1), rtol=1e-5, atol=1e-6)
  assert flat['stem_relu'].shape == (13, 12 * 12 * 4)  # cifar stem: no pooling
  assert flat['layer3_block0_relu1'].shape == (13, 3 * 3 * 16)
  assert flat['projector_output'].shape == (13, 4)
  np.testing.assert_allclose(some['stem_relu'], projected, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(some['projector_output'], flat['projector_output'], rtol=1e-5,
                             atol=1e-6)
  # Eval mode, whole network: h is the pooled last block, z the normalised projector output.
  np.testing.assert_allclose(acts['layer4_block1_out'].mean(axis=(1, 2)), h, rtol=1e-5)
  out = flat['projector_output']
  np.testing.assert_allclose(out / np.linalg.norm(out, axis=1, keepdims=True), z, rtol=1e-5)

  backbone, _ = backbone_of(model, variables)
  assert relu_layers(backbone) == BACKBONE_RELUS
  with pytest.raises(InputError, match='unknown ReLU layers'):
    extract_relus(model, variables, images, batch_size=2, layers=('layer1',))
  with pytest.raises(InputError, match='cannot extract features'):
    relu_layers(object())
