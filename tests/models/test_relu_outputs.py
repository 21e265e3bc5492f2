"""Every ReLU output (and the projector's output) is sown under 'intermediates', named in
network order, without changing the network's outputs or variables."""

import functools

import flax.linen as nn
import jax
import numpy as np

from rwjax.models import ResNet18, create_model, init_variables
from rwjax.models.resnet import BACKBONE_RELUS, relu_names, relu_outputs

KEY = jax.random.PRNGKey(0)


def test_names_are_the_17_backbone_relus_then_the_projector_in_network_order():
  assert len(BACKBONE_RELUS) == 17 == len(set(BACKBONE_RELUS))
  assert BACKBONE_RELUS[:5] == ('stem_relu', 'layer1_block0_relu1', 'layer1_block0_out',
                                'layer1_block1_relu1', 'layer1_block1_out')
  assert BACKBONE_RELUS[-2:] == ('layer4_block1_relu1', 'layer4_block1_out')
  assert relu_names((512, 128)) == BACKBONE_RELUS + ('projector_hidden0_relu',
                                                     'projector_output')
  assert relu_names((8, 6, 4))[17:] == ('projector_hidden0_relu', 'projector_hidden1_relu',
                                        'projector_output')
  assert relu_names(()) == BACKBONE_RELUS


def test_sown_relus_are_the_stage_maps_and_lead_to_the_outputs():
  stem = 'imagenet'  # The stem's ReLU comes before its max-pool (the cifar stem has none).
  model = create_model(stem=stem, width=4, projector=(8, 6, 4), dtype='float32', channels=1)
  variables = jax.jit(init_variables, static_argnums=(0, 2))(model, KEY, 16)
  # Non-trivial running statistics, so that eval mode matters.
  variables['batch_stats'] = jax.tree.map(lambda s: 1.5 * s + 0.05, variables['batch_stats'])
  x = jax.random.uniform(jax.random.PRNGKey(1), (3, 16, 16, 1))
  backbone = ResNet18(stem=stem, width=4)

  order = []

  @jax.jit
  def forward(v, x):
    plain = model.apply(v, x, train=False)
    (z, h), state = model.apply(v, x, train=False, mutable=['intermediates'])
    acts = relu_outputs(state['intermediates'])
    order.append(tuple(acts))  # At trace time: jit's outputs come back key-sorted.
    stages = backbone.apply({k: v[k]['backbone'] for k in v}, x, train=False,
                            return_stages=True)
    return plain, (z, h), acts, stages

  plain, (z, h), acts, stages = forward(variables, x)
  assert order == [relu_names((8, 6, 4))]
  # Sowing changes nothing. Two forward passes in one program need not be bit-identical (XLA
  # may fuse them differently, by CPU): equal to float32 rounding.
  same = functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6)
  same(plain[0], z)
  same(plain[1], h)
  for name in relu_names((8, 6, 4))[:-1]:  # ReLUs; the projector's output is not one.
    assert acts[name].min() >= 0, name
  pooled_stem = nn.max_pool(acts['stem_relu'], (3, 3), strides=(2, 2),
                            padding=((1, 1), (1, 1))) if stem == 'imagenet' else acts['stem_relu']
  same(pooled_stem, stages['stem'])
  for k in range(1, 5):
    same(acts[f'layer{k}_block1_out'], stages[f'layer{k}'])
    assert acts[f'layer{k}_block0_relu1'].shape == stages[f'layer{k}'].shape
  assert acts['stem_relu'].shape == ((3, 8, 8, 4) if stem == 'imagenet' else (3, 16, 16, 4))
  assert acts['projector_hidden0_relu'].shape == (3, 8)
  assert acts['projector_hidden1_relu'].shape == (3, 6)
  out = acts['projector_output']  # Before the L2 normalisation.
  np.testing.assert_allclose(out / np.linalg.norm(out, axis=1, keepdims=True), z, rtol=1e-6)
  np.testing.assert_allclose(h, stages['pooled'], rtol=1e-6)


def test_sowing_adds_no_variables_and_is_off_in_training_updates():
  model = create_model(stem='cifar', width=4, projector=(8, 4), dtype='float32', channels=1)
  x = jax.numpy.zeros((2, 16, 16, 1))
  variables = jax.eval_shape(lambda k: model.init(k, x, train=False), KEY)
  assert set(variables) == {'params', 'batch_stats'}
  _, new = jax.eval_shape(lambda v: model.apply(v, x, train=True, mutable=['batch_stats']),
                          variables)
  assert set(new) == {'batch_stats'}
