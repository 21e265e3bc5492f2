"""ResNet-18 + projector: size, shapes, dtypes, config validation, BatchNorm synced over devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec as P

from rwjax.errors import InputError
from rwjax.models import create_model, init_variables, layers, resnet

KEY = jax.random.PRNGKey(0)


@pytest.mark.parametrize('channels, bias_last', [(3, True), (1, False)])
def test_resnet18_and_projector_parameter_counts(channels, bias_last):
  # torchvision's resnet18 has 11,689,512 parameters, 513,000 of them in the classifier. The
  # paper's head (src/models.py): nn.Linear(512, 512, bias=False), BatchNorm1d(512) (weight and
  # bias), nn.Linear(512, 128, bias=bias_last); torchvision counts these by hand as below.
  model = create_model(dtype='float32', channels=channels, projector_bias_last=bias_last)
  variables = jax.eval_shape(lambda k: init_variables(model, k, 32), KEY)
  n_params = lambda tree: sum(x.size for x in jax.tree.leaves(tree))
  assert n_params(variables['params']['backbone']) == 11_176_512 - (3 - channels) * 64 * 7 * 7
  proj = variables['params']['projector']
  assert n_params(proj) == 512 * 512 + (512 + 512) + 512 * 128 + (128 if bias_last else 0)
  assert ('bias' in proj['out']) == bias_last and 'bias' not in proj['hidden0']
  # The same tree as flax's own init (a forward pass without the bias: test_pretrain_paper.py).
  x = jnp.zeros((1, 32, 32, channels))
  reference = jax.eval_shape(lambda k: model.init(k, x, train=False), KEY)
  assert jax.tree.structure(variables) == jax.tree.structure(reference)


@pytest.mark.parametrize('stem, size, dtype, maps', [
    ('imagenet', 32, 'float32', [8, 8, 4, 2, 1]),
    ('cifar', 32, 'bfloat16', [32, 32, 16, 8, 4]),
    ('imagenet', 64, 'auto', [16, 16, 8, 4, 2]),
])
def test_stage_shapes_and_compute_dtype(stem, size, dtype, maps):
  model = create_model(stem=stem, width=4, projector=(16, 8), dtype=dtype)
  assert model.dtype == (jnp.bfloat16 if dtype == 'bfloat16' else jnp.float32)  # auto: CPU
  x = jnp.zeros((2, size, size, 3))
  variables = jax.eval_shape(lambda k: model.init(k, x, train=False), KEY)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables))

  def forward(v):
    (z, h), state = model.apply(v, x, train=False, mutable=['intermediates'])
    return z, h, layers.read(state['intermediates'], x)

  z, h, out = jax.eval_shape(forward, variables)
  assert (z.shape, z.dtype, h.shape, h.dtype) == ((2, 8), jnp.float32, (2, 32), jnp.float32)
  names = ['stem', 'layer1', 'layer2', 'layer3', 'layer4']
  for name, m, c in zip(names, maps, [4, 4, 8, 16, 32]):
    assert (out[name].shape, out[name].dtype) == ((2, m, m, c), jnp.float32), name
  assert out['pooled'].shape == (2, 32)


@pytest.mark.parametrize('kwargs,match', [  # every key's rule: tests/test_train.py
    ({'stem': 'vgg'}, "config.model.stem='vgg' must be one of"),
    ({'projector': [512, -1]}, r'config.model.projector=\(512, -1\) must be a tuple'),
    ({'channels': 1}, 'channels'),  # given 3-channel input
])
def test_bad_values_and_inputs_raise(kwargs, match):
  with pytest.raises(InputError, match=match):
    model = create_model(**kwargs)
    jax.eval_shape(lambda k: model.init(k, jnp.zeros((1, 16, 16, 3)), train=False), KEY)


@pytest.mark.parametrize('size,kernel,stride', [
    (1, 3, 1), (1, 3, 2), (2, 3, 1), (2, 3, 2), (3, 3, 2), (4, 3, 2), (4, 7, 2)])
def test_small_maps_are_convolved_as_matrix_products(size, kernel, stride):
  # Output maps of at most 4 positions, some kernel taps reading only padding: 'matmul_small'
  # against XLA's convolution with PyTorch padding, values and both gradients.
  x = jax.random.normal(jax.random.PRNGKey(1), (5, size, size, 6))
  conv = resnet.Conv(7, kernel, stride)
  w = conv.init(KEY, x)['params']['kernel']
  pad = (kernel - 1) // 2
  reference = lambda x, w: jax.lax.conv_general_dilated(
      x, w, (stride, stride), ((pad, pad), (pad, pad)),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'), precision=jax.lax.Precision.HIGHEST)
  matmul = lambda x, w: conv.apply({'params': {'kernel': w}}, x)
  got, want = matmul(x, w), reference(x, w)
  assert got.shape == want.shape and got.shape[1] * got.shape[2] <= resnet.SMALL_MAP
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))
  for g, r in zip(jax.grad(loss(matmul), (0, 1))(x, w), jax.grad(loss(reference), (0, 1))(x, w)):
    np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('train', [False, True])
def test_conv_settings_agree_at_every_layer(train):
  # At 32x32 layer3 and layer4 have 2x2 and 1x1 maps: 'matmul_small' multiplies there.
  x = jax.random.uniform(jax.random.PRNGKey(2), (4, 32, 32, 3))
  acts = {}
  for conv in resnet.CONVS:
    model = create_model(width=8, projector=(16, 8), dtype='float32', conv=conv)
    variables = init_variables(model, KEY, 32)
    _, state = model.apply(variables, x, train=train, mutable=['intermediates', 'batch_stats'])
    acts[conv] = layers.read(state['intermediates'], x)
  for name, want in acts['xla'].items():
    np.testing.assert_allclose(acts['matmul_small'][name], want, rtol=1e-4, atol=1e-5,
                               err_msg=name)


def test_batchnorm_statistics_same_on_1_and_8_devices():
  model = create_model(width=4, projector=(8, 4), dtype='float32', axis_name='data')
  x = jax.random.uniform(jax.random.PRNGKey(1), (16, 16, 16, 3))
  variables = jax.jit(init_variables, static_argnums=(0, 2))(model, KEY, 16)

  def forward(v, x):
    (z, h), new = model.apply(v, x, train=True, mutable=['batch_stats'])
    return z, h, new['batch_stats']

  results = []
  for devices in (jax.devices()[:1], jax.devices()[:8]):
    mesh = Mesh(np.array(devices), ('data',))
    fn = jax.shard_map(forward, mesh=mesh, in_specs=(P(), P('data')),
                       out_specs=(P('data'), P('data'), P()))
    results.append(jax.jit(fn)(variables, x))
  (z1, h1, s1), (z8, h8, s8) = results
  moved = jax.tree.map(lambda a, b: np.abs(np.asarray(a) - np.asarray(b)).max(),
                       s1, variables['batch_stats'])
  assert min(jax.tree.leaves(moved)) > 0  # the running statistics were updated
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), s1, s8)
  np.testing.assert_allclose(h1, h8, rtol=1e-3, atol=1e-4)
  np.testing.assert_allclose(z1, z8, rtol=1e-3, atol=1e-4)
  np.testing.assert_allclose(np.linalg.norm(z1, axis=1), 1, rtol=1e-5)


def test_init_variables_draws_torchvision_initialisation():
  model = create_model(dtype='float32', projector=(512, 128))
  variables = jax.jit(init_variables, static_argnums=(0, 2))(model, KEY, 32)
  reference = jax.eval_shape(lambda k: model.init(k, jnp.zeros((1, 32, 32, 3)), train=False), KEY)
  assert jax.tree.map(lambda a: (a.shape, a.dtype), variables) == jax.tree.map(
      lambda a: (a.shape, a.dtype), reference)
  block = variables['params']['backbone']['layer3_block0']
  kernel = np.asarray(block['conv2']['kernel'])  # [3, 3, 256, 256]: fan_out = 9 * 256
  np.testing.assert_allclose(kernel.std(), (2 / (9 * 256)) ** 0.5, rtol=0.01)
  assert abs(kernel.mean()) < 1e-3
  np.testing.assert_array_equal(block['bn1']['scale'], 1)
  np.testing.assert_array_equal(block['bn1']['bias'], 0)
  out = variables['params']['projector']['out']
  for leaf in (out['kernel'], out['bias']):
    assert np.abs(leaf).max() <= 512 ** -0.5
    assert np.abs(leaf).max() > 0.9 * 512 ** -0.5
  np.testing.assert_allclose(np.asarray(out['kernel']).std(), (1 / (3 * 512)) ** 0.5, rtol=0.02)
  stats = variables['batch_stats']['backbone']['stem_bn']
  np.testing.assert_array_equal(stats['mean'], 0)
  np.testing.assert_array_equal(stats['var'], 1)
  # The conv kernels are not copies of each other (one draw, sliced).
  assert not np.allclose(block['conv2']['kernel'],
                         variables['params']['backbone']['layer3_block1']['conv1']['kernel'])
