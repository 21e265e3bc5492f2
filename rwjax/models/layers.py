"""The network's named layers: one registry for the model, the evaluator and the reports.

Every layer an evaluation reads is one named activation of a single forward pass of a
SimCLRModel (the model sows them; `read` names them). In network order (`names`):
  'input'                        the network input
  'stem_relu'                    the stem's ReLU (before the imagenet stem's max-pool)
  'stem'                         the input of layer1 (after the max-pool)
  'layer{i}_block{b}_relu1'      each BasicBlock's first ReLU (after bn1)
  'layer{i}_block{b}_out'        each BasicBlock's output (its second ReLU)
  'pooled'                       the encoder output: layer4 averaged over space
  'projector_hidden{k}_linear'   each projector hidden layer's Dense output (before its BN)
  'projector_hidden{k}_relu'     its ReLU
  'projector_output'             the projector's output (before the L2 normalisation)
and the stage names 'layer{i}' = 'layer{i}_block1_out'.

Named sets (`layer_set`), in network order:
  'stages'             stem, layer1..layer4, pooled (rwjax's probes and capacity);
  'relus'              every ReLU output: the backbone's 17, the projector's hidden ReLUs and
                       its output (the paper's capacity analysis of every ReLU);
  'paper_probe'        pooled and the 9 nodes the paper's intermediate-layer probe read
                       (its 'relu' and 'layerX.Y.relu', which torch.fx resolves to the stem's
                       ReLU and each block's first ReLU call);
  'paper_probe_relus'  pooled and all 17 backbone ReLUs;
  'paper_hooks'        the layers the paper's manifold analysis hooked (ReLU and Linear
                       modules: input, stem ReLU, block outputs, projector hidden Linear and
                       ReLU, projector output; 13 for ResNet-18 + 512-128);
  'paper_simulated'    where the paper also simulated capacity: the encoder's last map and the
                       projector layers.
"""

import re
from typing import Optional, Sequence, Union

import jax
import jax.numpy as jnp

from rwjax.errors import InputError

STAGES = ('stem', 'layer1', 'layer2', 'layer3', 'layer4', 'pooled')
# The backbone's 17 ReLU outputs in network order.
BACKBONE_RELUS = ('stem_relu',) + tuple(
    f'layer{i}_block{b}_{r}' for i in range(1, 5) for b in range(2) for r in ('relu1', 'out'))
ALIASES = {f'layer{i}': f'layer{i}_block1_out' for i in range(1, 5)}
BLOCK_OUTPUTS = tuple(l for l in BACKBONE_RELUS if l.endswith('_out'))
PROBE_NODES = tuple(l for l in BACKBONE_RELUS if l == 'stem_relu' or l.endswith('_relu1'))


def projector_names(projector: Sequence[int]) -> tuple[str, ...]:
  """The projector's layers for widths `projector` (hidden..., output), in network order."""
  hidden = sum(((f'projector_hidden{k}_linear', f'projector_hidden{k}_relu')
                for k in range(len(projector) - 1)), ())
  return hidden + ('projector_output',)


def names(projector: Sequence[int]) -> tuple[str, ...]:
  """Every layer `read` returns, in network order."""
  return (('input', 'stem_relu', 'stem') + BACKBONE_RELUS[1:] + ('pooled',)
          + projector_names(projector))


_SETS = {
    'stages': lambda p: STAGES,
    'relus': lambda p: BACKBONE_RELUS + tuple(n for n in projector_names(p)
                                              if not n.endswith('_linear')),
    'paper_probe': lambda p: ('pooled',) + PROBE_NODES,
    'paper_probe_relus': lambda p: ('pooled',) + BACKBONE_RELUS,
    'paper_hooks': lambda p: ('input', 'stem_relu') + BLOCK_OUTPUTS + projector_names(p),
    'paper_simulated': lambda p: ('layer4_block1_out',) + projector_names(p),
}
SETS = tuple(_SETS)


def layer_set(spec: Union[str, Sequence[str]], projector: Optional[Sequence[int]],
              what: str = 'layers') -> tuple[str, ...]:
  """The layers of a set name (SETS), or of names given as a sequence or one comma-separated
  string (kept in the given order); InputError naming `what` (the config key) otherwise.
  projector None: any projector's layer names are accepted (before the model is known)."""
  if isinstance(spec, str) and spec in _SETS:
    return _SETS[spec](tuple(projector or (1,)))
  given = tuple(s.strip() for s in spec.split(',')) if isinstance(spec, str) else tuple(spec)
  if projector is None:
    head = re.compile(r'projector_(hidden\d+_(linear|relu)|output)$')
    known = names(()) + tuple(ALIASES)
    bad = [l for l in given if l not in known and not head.match(l)]
    known += ('projector_hidden<k>_linear', 'projector_hidden<k>_relu', 'projector_output')
  else:
    known = names(projector) + tuple(ALIASES)
    bad = [l for l in given if l not in known]
  if bad or not given or len(set(given)) < len(given):
    raise InputError(f'{what}={spec!r}: name a set {SETS} or distinct layers of {known}')
  return given


def read(intermediates: dict, x: jax.Array) -> dict[str, jax.Array]:
  """Every named layer of one apply of a SimCLRModel, float32.

  Args:
    intermediates: the 'intermediates' collection of model.apply(..., mutable=
      ['intermediates']) (activations under 'backbone' and 'projector').
    x: f32[B, H, W, C] the network input of that apply.

  Returns:
    {name: f32[B, h, w, c] or f32[B, d]} for `names(projector)` and the stage aliases.
  """
  found = {'input': x.astype(jnp.float32)}

  def visit(tree, prefix):
    for k, v in tree.items():
      if isinstance(v, tuple):  # sow's default: a tuple of the values of each call
        found['_'.join(prefix + (k,))] = v[-1].astype(jnp.float32)
      else:
        visit(v, prefix + (k,) if k != 'backbone' else prefix)

  visit(intermediates, ())
  found['pooled'] = found['layer4_block1_out'].mean(axis=(1, 2))
  found.update({k: found[v] for k, v in ALIASES.items()})
  return found
