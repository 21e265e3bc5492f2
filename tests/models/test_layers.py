"""The layer registry: names and sets in network order, aliases, and `read` equal to a forward
pass written out by hand from the parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rwjax.errors import InputError
from rwjax.models import create_model, init_variables
from rwjax.models import layers

PROJECTOR = (8, 6, 4)  # two hidden layers
MODEL = create_model(stem='imagenet', width=4, projector=PROJECTOR, dtype='float32', channels=1)


def test_names_and_sets_are_the_networks_layers_in_order():
  relus = layers.BACKBONE_RELUS
  assert len(relus) == 17 == len(set(relus))
  assert relus[:5] == ('stem_relu', 'layer1_block0_relu1', 'layer1_block0_out',
                       'layer1_block1_relu1', 'layer1_block1_out')
  assert relus[-2:] == ('layer4_block1_relu1', 'layer4_block1_out')
  assert layers.projector_names(PROJECTOR) == (
      'projector_hidden0_linear', 'projector_hidden0_relu', 'projector_hidden1_linear',
      'projector_hidden1_relu', 'projector_output')
  paper = (512, 128)
  names = layers.names(paper)
  assert names[:3] == ('input', 'stem_relu', 'stem') and names[-4:] == (
      'pooled', 'projector_hidden0_linear', 'projector_hidden0_relu', 'projector_output')
  assert len(names) == len(set(names)) == 3 + 16 + 1 + 3
  sets = {s: layers.layer_set(s, paper) for s in layers.SETS}
  assert sets['stages'] == ('stem', 'layer1', 'layer2', 'layer3', 'layer4', 'pooled')
  # The paper's hooks on ReLU and Linear modules of resnet18 + 512-128: input, the stem's
  # ReLU, 8 block outputs, Linear, ReLU, Linear.
  assert len(sets['paper_hooks']) == 13 and sets['paper_hooks'][:3] == (
      'input', 'stem_relu', 'layer1_block0_out')
  assert sets['paper_hooks'][-3:] == layers.projector_names(paper)
  # Its probe nodes: the encoder output, the stem's ReLU and each block's first ReLU.
  assert len(sets['paper_probe']) == 10 and sets['paper_probe'][:3] == (
      'pooled', 'stem_relu', 'layer1_block0_relu1')
  assert sets['paper_probe_relus'] == ('pooled',) + relus
  assert sets['relus'] == relus + ('projector_hidden0_relu', 'projector_output')
  assert sets['paper_simulated'] == ('layer4_block1_out',) + layers.projector_names(paper)
  for s in sets.values():  # every set names layers `read` returns
    assert set(s) <= set(names) | set(layers.ALIASES)


def test_layer_set_keeps_given_names_and_refuses_unknown_or_repeated_ones():
  assert layers.layer_set('layer1, pooled', PROJECTOR) == ('layer1', 'pooled')
  assert layers.layer_set(['pooled', 'stem_relu'], PROJECTOR) == ('pooled', 'stem_relu')
  for bad in ('fc', 'layer1,layer1', (), 'projector_hidden2_relu'):
    with pytest.raises(InputError, match=r'config.evals.x.layers=.*name a set'):
      layers.layer_set(bad, PROJECTOR, 'config.evals.x.layers')


def _conv(x, kernel, stride):
  pad = (kernel.shape[0] - 1) // 2  # PyTorch padding
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), ((pad, pad), (pad, pad)),
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                      precision=jax.lax.Precision.HIGHEST)


def _bn(x, params, stats):  # eval mode, epsilon 1e-5
  return (x - stats['mean']) / jnp.sqrt(stats['var'] + 1e-5) * params['scale'] + params['bias']


def test_read_is_the_forward_pass_written_out_by_hand_and_sowing_adds_no_variables():
  variables = init_variables(MODEL, jax.random.PRNGKey(0), 16)
  assert set(variables) == {'params', 'batch_stats'}
  # Running statistics away from 0 / 1, so that eval mode is visible.
  variables['batch_stats'] = jax.tree.map(lambda s: 1.3 * s + 0.1, variables['batch_stats'])
  x = jax.random.uniform(jax.random.PRNGKey(1), (3, 16, 16, 1))
  (z, h), state = jax.jit(lambda v, x: MODEL.apply(v, x, train=False,
                                                   mutable=['intermediates']))(variables, x)
  acts = layers.read(state['intermediates'], x)
  assert set(acts) == set(layers.names(PROJECTOR)) | set(layers.ALIASES)
  p, s = variables['params']['backbone'], variables['batch_stats']['backbone']
  same = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(acts['input'], x)
  same(acts['stem_relu'], jax.nn.relu(_bn(_conv(x, p['stem_conv']['kernel'], 2),
                                          p['stem_bn'], s['stem_bn'])))
  pooled = jax.lax.reduce_window(acts['stem_relu'], -jnp.inf, jax.lax.max, (1, 3, 3, 1),
                                 (1, 2, 2, 1), ((0, 0), (1, 1), (1, 1), (0, 0)))
  same(acts['stem'], pooled)
  for name, source in (('layer1_block0', acts['stem']),
                       ('layer1_block1', acts['layer1_block0_out'])):
    bp, bs = p[name], s[name]
    relu1 = jax.nn.relu(_bn(_conv(source, bp['conv1']['kernel'], 1), bp['bn1'], bs['bn1']))
    same(acts[f'{name}_relu1'], relu1)
    same(acts[f'{name}_out'], jax.nn.relu(
        _bn(_conv(relu1, bp['conv2']['kernel'], 1), bp['bn2'], bs['bn2']) + source))
  assert acts['layer1'] is acts['layer1_block1_out']
  assert acts['layer3_block0_relu1'].shape == (3, 1, 1, 16)
  same(acts['pooled'], acts['layer4_block1_out'].mean(axis=(1, 2)))
  same(acts['pooled'], h)
  q, t = variables['params']['projector'], variables['batch_stats']['projector']
  hidden = acts['pooled']
  for k in range(2):
    linear = hidden @ q[f'hidden{k}']['kernel']
    same(acts[f'projector_hidden{k}_linear'], linear)
    hidden = jax.nn.relu(_bn(linear, q[f'hidden{k}_bn'], t[f'hidden{k}_bn']))
    same(acts[f'projector_hidden{k}_relu'], hidden)
  out = hidden @ q['out']['kernel'] + q['out']['bias']
  same(acts['projector_output'], out)  # before the L2 normalisation
  same(out / jnp.linalg.norm(out, axis=1, keepdims=True), z)
  for name in layers.layer_set('relus', PROJECTOR)[:-1]:  # the output is no ReLU
    assert acts[name].min() >= 0 and acts[name].dtype == jnp.float32, name
  _, new = jax.eval_shape(lambda v: MODEL.apply(v, x, train=True, mutable=['batch_stats']),
                          variables)
  assert set(new) == {'batch_stats'}  # nothing sown into a training update
