"""The paper's protocol on one tiny network: its hooked layers (the Linear output recomputed
from the parameters equals the layer the model runs), both probes on a task, and every
manifold measure, simulated capacity included."""

import jax
import ml_collections
import numpy as np

from rwjax.eval import paper
from rwjax.models import create_model, init_variables

MODEL = create_model(stem='imagenet', width=4, projector=(8, 4), dtype='float32', channels=1)
VARIABLES = jax.jit(init_variables, static_argnums=(0, 2))(MODEL, jax.random.PRNGKey(0), 16)
# Non-trivial running statistics, so that the recomputed BatchNorm input matters.
VARIABLES['batch_stats'] = jax.tree.map(lambda s: 1.3 * s + 0.1, VARIABLES['batch_stats'])


def test_layer_lists_are_the_papers_hooks_and_probe_nodes():
  layers = paper.manifold_layers(MODEL)
  # The paper's resnet18 + 512-128 list: input, 9 ReLUs, Linear, ReLU, Linear = 13.
  assert len(layers) == 13 and layers[:3] == ('input', 'stem_relu', 'layer1_block0_out')
  assert layers[-3:] == ('projector_hidden0_linear', 'projector_hidden0_relu',
                         'projector_output')
  assert paper.sim_layers(MODEL) == ('layer4_block1_out',) + layers[-3:]
  assert len(paper.probe_layers(MODEL)) == 18 and len(paper.probe_layers(MODEL, 'paper')) == 10
  assert paper.probe_layers(MODEL, 'paper')[1:3] == ('stem_relu', 'layer1_block0_relu1')


def test_recomputed_linear_output_leads_to_the_models_relu():
  x = jax.random.uniform(jax.random.PRNGKey(1), (3, 16, 16, 1))
  acts = paper.activations(MODEL, VARIABLES, x)
  (_, h) = MODEL.apply(VARIABLES, x, train=False)
  np.testing.assert_allclose(acts['pooled'], h, atol=1e-5)
  bn = VARIABLES['batch_stats']['projector']['hidden0_bn']
  scale = VARIABLES['params']['projector']['hidden0_bn']
  lin = np.asarray(h) @ np.asarray(VARIABLES['params']['projector']['hidden0']['kernel'])
  np.testing.assert_allclose(acts['projector_hidden0_linear'], lin, atol=1e-5)
  relu = np.maximum((lin - bn['mean']) / np.sqrt(bn['var'] + 1e-5) * scale['scale']
                    + scale['bias'], 0)
  np.testing.assert_allclose(acts['projector_hidden0_relu'], relu, atol=1e-5)
  np.testing.assert_array_equal(acts['input'], x)


def test_probes_and_manifold_measures_on_a_tiny_network():
  features = paper.make_features(MODEL, VARIABLES, batch_size=32)
  rng = np.random.default_rng(0)
  images = rng.uniform(size=(60, 16, 16, 1)).astype(np.float32)
  labels = np.arange(60) % 3
  images[labels == 1, :8] += 0.8  # planted class structure
  tasks = {'toy': (images[:48], labels[:48], images[48:], labels[48:], 3)}
  cfg = ml_collections.ConfigDict(dict(lr=1e-2, batch_size=50, epochs=2, weight_decay=1e-6))
  log = ml_collections.ConfigDict(dict(l2_grid=(1e-3, 1e-1), val_fraction=0.25, steps=50))
  rows = paper.run_probes(features, tasks, ('pooled', 'stem_relu'), key=jax.random.PRNGKey(0),
                          probe_cfg=cfg, logistic_cfg=log)
  for layer in ('pooled', 'stem_relu'):
    row = rows['toy'][layer]
    assert row['paper_protocol'] == max(row['paper_epochs']) and len(row['paper_epochs']) == 2
    assert 0 <= row['logistic'] <= 1
  # Manifolds of different sizes (as waves are), one layer wider than project_dims.
  manifolds = [images[:5], images[5:12], images[12:15]]
  out = paper.analyse_manifolds(features, manifolds, ('stem_relu',), key=jax.random.PRNGKey(3),
                                n_t=20, project_dims=64, simulate=('stem_relu',), sim_trials=4)
  row = out['stem_relu']
  assert row['dims'] == 64  # 8 x 8 x 4 = 256 projected
  assert np.isfinite(row['alpha']) and row['alpha'] > 0 and row['pcs_90'] >= 1
  assert 1 <= row['participation_ratio'] <= 15
  # 15 points in 64 dimensions: random labels of 3 manifolds separate in far fewer than 64.
  assert 0 < row['sim_alpha'] and np.isfinite(row['sim_alpha'])
