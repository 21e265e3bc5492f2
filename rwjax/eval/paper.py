"""The paper's evaluation protocol for one network: its probes and its manifold analysis.

Given a features function (images -> flattened activations of named layers), this runs
  - the probes of the paper's src/test.py on every task (its invariance tasks,
    rwjax.data.paper_tasks, and plain classification): its Adam linear probe
    (rwjax.eval.paper_probe; "paper protocol": best test accuracy over 4 epochs) on the
    encoder output (the pooled 8 * width features, as they are) and on every intermediate
    ReLU output (flattened, L2-normalised), and beside it today's L2-regularised logistic
    probe (rwjax.eval.probes, strength chosen on validation) on the same features;
  - the manifold analysis of its src/mftma_analysis.py at the layers its hooks record
    (`manifold_layers`): mean-field capacity (1 / mean(1 / alpha_M)), radius and dimension
    (means), center correlation (rwjax.eval.capacity, n_t = 500, kappa = 0; layers wider
    than 5,000 randomly projected), participation ratio and components for 90% of the
    variance (rwjax.eval.dimensionality), and the simulated capacity
    (rwjax.eval.simulated_capacity) at the encoder output and the projector layers.

The paper's hooks (its activation_extractor on ReLU and Linear modules, resnet18 with the
512-128 projector: 'layer_0_Input', 9 ReLUs, 'layer_53_Linear', 'layer_55_ReLU',
'layer_56_Linear') record the input, the stem ReLU, the output of each of the 8 BasicBlocks
(torchvision's block calls one ReLU module twice; its code keeps the second call, the block
output), each projector hidden layer's Linear output (before its BatchNorm) and ReLU, and the
projector output. Its probe on intermediate layers (TestModel, CLASSIFY_INTERMEDIATE_LAYER)
listed 'relu' and 'layerX.Y.relu', which torch.fx resolves to the first call of each block's
ReLU (after bn1): `probe_layers(model, 'paper')` gives those 9, 'relus' (the default, "every
intermediate ReLU output") all 17. The paper's random projection had rows of unit norm
(M / |M_row|); here it is rwjax.eval.features.random_projection (N(0, 1/dims) entries): the
same distances up to O(1/sqrt(dims)).

The features function decides how the network is run (eval mode with running BatchNorm
statistics in `make_features`; config.batchnorm's modes supply their own).
"""

import functools
from typing import Callable, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from rwjax.errors import InputError
from rwjax.eval import capacity as capacity_lib
from rwjax.eval import dimensionality
from rwjax.eval import features as features_lib
from rwjax.eval import manifolds as manifolds_lib
from rwjax.eval import paper_probe
from rwjax.eval import probes
from rwjax.eval import simulated_capacity as sim_lib
from rwjax.models import SimCLRModel
from rwjax.models.resnet import BACKBONE_RELUS

PROBE_LAYER_SETS = ('relus', 'paper')
ENCODER = 'pooled'  # The 8 * width encoder output the paper's main probe reads.
ENCODER_RELU = 'layer4_block1_out'  # Its spatial map (the paper's 'layer_48_ReLU').

# features(images f32[N, H, W, C], layers, project_dims=0, project_key=None) -> {layer: f32[N, D]}
Features = Callable[..., dict]


def _hidden_count(model: SimCLRModel) -> int:
  return len(tuple(model.projector)) - 1


def probe_layers(model: SimCLRModel, which='relus') -> tuple[str, ...]:
  """The encoder output, then the intermediate ReLUs probed: all 17 ('relus') or the
  paper's 9 ('paper': the stem's and each block's first); or names of these, as a tuple or
  one comma-separated string."""
  if isinstance(which, str) and which not in PROBE_LAYER_SETS:
    which = tuple(w.strip() for w in which.split(',') if w.strip())
  if isinstance(which, (tuple, list)):
    bad = [l for l in which if l not in (ENCODER,) + BACKBONE_RELUS]
    if bad or not which:
      raise InputError(f'config.paper_probe.layers: unknown layers {bad}; choose from '
                       f'{(ENCODER,) + BACKBONE_RELUS} or use {PROBE_LAYER_SETS}')
    return tuple(which)
  if which not in PROBE_LAYER_SETS:
    raise InputError(f'config.paper_probe.layers={which!r}: use one of {PROBE_LAYER_SETS}')
  relus = BACKBONE_RELUS if which == 'relus' else tuple(
      l for l in BACKBONE_RELUS if l == 'stem_relu' or l.endswith('_relu1'))
  return (ENCODER,) + relus


def manifold_layers(model: SimCLRModel, which='paper') -> tuple[str, ...]:
  """The paper's hooked layers in network order (module docstring), or those of names of
  them (a tuple or one comma-separated string)."""
  if isinstance(which, str) and which != 'paper':
    which = tuple(w.strip() for w in which.split(',') if w.strip())
  if isinstance(which, (tuple, list)):
    every = manifold_layers(model)
    bad = [l for l in which if l not in every]
    if bad or not which:
      raise InputError(f'config.paper_manifolds.layers: unknown layers {bad}; choose from '
                       f"{every} or 'paper'")
    return tuple(l for l in every if l in which)
  blocks = tuple(l for l in BACKBONE_RELUS if l.endswith('_out'))
  projector = sum(((f'projector_hidden{i}_linear', f'projector_hidden{i}_relu')
                   for i in range(_hidden_count(model))), ())
  return ('input', 'stem_relu') + blocks + projector + ('projector_output',)


def sim_layers(model: SimCLRModel) -> tuple[str, ...]:
  """Where the paper also simulated capacity: the encoder output and the projector layers."""
  return (ENCODER_RELU,) + manifold_layers(model)[-(2 * _hidden_count(model) + 1):]


def all_layers(model: SimCLRModel) -> tuple[str, ...]:
  """Every name `activations` returns, in a fixed order (indices key the projections)."""
  extra = tuple(l for l in manifold_layers(model) if l.endswith('_linear'))
  return ('input',) + BACKBONE_RELUS + (ENCODER,) + extra + tuple(
      l for l in manifold_layers(model) if l.startswith('projector') and l not in extra)


def activations(model: SimCLRModel, variables: dict, x: jax.Array,
                bn_group: int = 0) -> dict[str, jax.Array]:
  """Every layer of `all_layers` for input x f32[B, H, W, C] (pure, jittable): in eval mode,
  or with bn_group > 0 BatchNorm over each group of bn_group images (features.relu_activations).

  The projector's hidden Linear outputs are recomputed from their inputs and kernels (the
  model sows only ReLU outputs); the pooled encoder output is the mean of the last block's.
  """
  if not isinstance(model, SimCLRModel):
    raise InputError(f'the paper protocol needs a SimCLRModel, got {type(model).__name__}')
  acts = dict(features_lib.relu_activations(model, variables, x, bn_group))
  acts['input'] = x.astype(jnp.float32)
  acts[ENCODER] = acts[ENCODER_RELU].mean(axis=(1, 2))
  inputs = acts[ENCODER]
  for i in range(_hidden_count(model)):
    kernel = variables['params']['projector'][f'hidden{i}']['kernel']
    acts[f'projector_hidden{i}_linear'] = jnp.dot(inputs, kernel,
                                                  precision=jax.lax.Precision.HIGHEST)
    inputs = acts[f'projector_hidden{i}_relu']
  return {k: acts[k] for k in all_layers(model)}


@functools.partial(jax.jit, static_argnames=('model', 'layers', 'project_dims', 'bn_group'))
def _batch(model, variables, x, layers, project_dims=0, project_key=None, bn_group=0):
  acts = activations(model, variables, x, bn_group)
  names = all_layers(model)
  return {l: features_lib._project(acts[l].reshape(len(x), -1), project_dims, project_key,
                                   names.index(l)) for l in layers}


def make_features(model: SimCLRModel, variables: dict, *, batch_size: int,
                  batchnorm: str = 'running', bn_batch: int = 0) -> Features:
  """The features function of one network under BatchNorm mode `batchnorm` ('running': eval
  mode; 'batch': statistics of each group of bn_batch images, features.run_in_batches; for
  'adapt' pass the adapted variables with 'running').

  Returns:
    features(images, layers, project_dims=0, project_key=None) -> {layer: f32[N, D]} host
    arrays, flattened; layer l's projection uses fold_in(project_key, all_layers.index(l)).
  """
  names = all_layers(model)

  def features(images, layers, project_dims=0, project_key=None):
    unknown = [l for l in layers if l not in names]
    if unknown:
      raise InputError(f'unknown paper-protocol layers {unknown}; choose from {names}')
    features_lib._check_inputs(images, batch_size, project_dims, project_key)
    layers = tuple(layers)
    step = lambda v, x, group: _batch(model, v, x, layers, project_dims, project_key, group)
    return features_lib.run_in_batches(step, variables, images, batch_size=batch_size,
                                       layers=layers, batchnorm=batchnorm, bn_batch=bn_batch)

  return features


def run_probes(features: Features, tasks: dict, layers: Sequence[str], *, key: jax.Array,
               probe_cfg, logistic_cfg=None) -> dict:
  """Both probes on every task and layer.

  Args:
    features: a `Features` function.
    tasks: name -> (x_train, y_train, x_test, y_test, num_classes), images f32[N, H, W, C].
    layers: probe layers (`probe_layers`); the encoder output is used as is, the others
      L2-normalised.
    key: raw PRNG key; task t, layer l use fold_in(fold_in(key, t), l).
    probe_cfg: lr, batch_size, epochs, weight_decay of the Adam probe.
    logistic_cfg: l2_grid, val_fraction, steps of today's probe (None: not run).

  Returns:
    {task: {layer: {'paper_protocol': best test accuracy, 'paper_epochs': [per epoch],
    'logistic': test accuracy (or absent)}}}.
  """
  out = {}
  for t, (name, (x_train, y_train, x_test, y_test, k)) in enumerate(tasks.items()):
    out[name] = {}
    for i, layer in enumerate(layers):
      # One layer at a time: flattened early layers of a large set would not fit at once.
      f_train = features(x_train, (layer,))[layer]
      f_test = features(x_test, (layer,))[layer]
      if layer != ENCODER:
        f_train, f_test = paper_probe.l2_normalize(f_train), paper_probe.l2_normalize(f_test)
      k_layer = jax.random.fold_in(jax.random.fold_in(key, t), i)
      result = paper_probe.adam_probe(
          k_layer, f_train, y_train, f_test, y_test, num_classes=k, lr=probe_cfg.lr,
          batch_size=probe_cfg.batch_size, epochs=probe_cfg.epochs,
          weight_decay=probe_cfg.weight_decay)
      row = {'paper_protocol': result.best_test_accuracy,
             'paper_epochs': list(result.test_accuracies)}
      if logistic_cfg is not None:
        row['logistic'] = probes.linear_probe(
            k_layer, f_train, np.asarray(y_train), f_test, np.asarray(y_test), num_classes=k,
            l2_grid=tuple(logistic_cfg.l2_grid), val_fraction=logistic_cfg.val_fraction,
            steps=logistic_cfg.steps).test_accuracy
      out[name][layer] = row
  return out


def analyse_manifolds(features: Features, manifolds: Union[jax.Array, Sequence[np.ndarray]],
                      layers: Sequence[str], *, key: jax.Array, n_t: int = 500,
                      kappa: float = 0.0, project_dims: int = 5000,
                      simulate: Sequence[str] = (), sim_trials: int = 100,
                      variance: float = dimensionality.VARIANCE) -> dict:
  """The paper's manifold measures of one kind of manifold in every layer of one network.

  Args:
    features: a `Features` function.
    manifolds: f32[P, M, H, W, C] images, or a list of P arrays f32[M_i, H, W, C].
    layers: layers to analyse (`manifold_layers`).
    key: raw PRNG key: fold_in 0 the projections, fold_in (1, l) layer l's analysis,
      fold_in (2, l) its simulated capacity.
    n_t, kappa, project_dims: the mean-field analysis (the paper's 500, 0, 5000).
    simulate: layers whose simulated capacity is computed too (`sim_layers`).
    sim_trials: random projections and labelings per dimension (the paper's n_rep = 100).
    variance: the share of variance `pcs_90` counts components for.

  Returns:
    {layer: {'alpha', 'radius', 'dimension', 'center_corr', 'participation_ratio',
    'pcs_90', 'dims', 'solver_residual'[, 'sim_alpha']}}.
  """
  sizes = [len(m) for m in manifolds]
  if len(sizes) < 2 or min(sizes) < 1:
    raise InputError(f'the manifold analysis needs >= 2 manifolds of >= 1 image, got sizes '
                     f'{sizes}')
  images = (jnp.reshape(manifolds, (-1, *manifolds.shape[2:])) if hasattr(manifolds, 'shape')
            else jnp.concatenate([jnp.asarray(m) for m in manifolds]))
  cuts = np.cumsum(sizes)[:-1]
  k_project = jax.random.fold_in(key, 0)
  names = list(layers)
  out = {}
  for i, layer in enumerate(names):
    flat = features(images, (layer,), project_dims=project_dims, project_key=k_project)[layer]
    points = np.split(flat, cuts)
    if len(set(sizes)) == 1:  # One array; narrow layers zero-padded to share compilations.
      points = manifolds_lib.pad_features(np.stack(points), project_dims)
    result = capacity_lib.manifold_analysis(
        points, kappa=float(kappa), n_t=int(n_t),
        key=jax.random.fold_in(jax.random.fold_in(key, 1), i))
    row = {g: result[g] for g in ('alpha', 'radius', 'dimension', 'center_corr',
                                  'solver_residual')}
    row.update({k: v for k, v in dimensionality.dimensionality(flat, variance).items()
                if k in ('participation_ratio', 'pcs_90')})
    row['dims'] = int(flat.shape[1])
    if layer in simulate:
      sim = sim_lib.simulated_capacity(
          [np.asarray(p) for p in np.split(flat, cuts)],
          key=jax.random.fold_in(jax.random.fold_in(key, 2), i), n_trials=int(sim_trials))
      row['sim_alpha'] = sim['alpha_c']
    out[layer] = row
  return out
