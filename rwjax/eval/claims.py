"""Statistics across pre-training networks, and the verdict rules of the paper's five claims.

The unit of replication is the network: one value per pre-training seed (the evaluator's mean
over its own draws). An arm is compared with random init (or another arm) by Welch's t-test
across networks (two-sided, `compare_networks`): no pairing is assumed, because the null arm's
networks share nothing with the random-init ones and the test must be the same for every arm.
The effect size is Hedges' g; a gain is mean(arm) - mean(random init). A claim reads report
rows by their keys, 'eval/task/layer/measure[/batchnorm]', layer '*' for every layer (`parse`).

The rules (docs/experiment.md, 'The report and the claim rules'), fixed before the runs:
significance p < ALPHA; a control (or another task) "loses most of the gain" when it keeps
less than MOST of it (`kept`). One function per claim: `translation` (1), `not_worse` (2),
`capacity` and `survives` (3), `controls` (4), `specific` (5). `null_rate`: the null arm's
share of rows "significant" at ALPHA, about ALPHA where the tests are trustworthy.
"""

from typing import NamedTuple, Optional, Sequence

import numpy as np

from rwjax.errors import InputError
from rwjax.eval import stats

ALPHA = 0.05
MOST = 0.5
HELD, NOT_HELD, INCONCLUSIVE = 'held', 'not held', 'inconclusive'
TEST = "Welch's t-test across pre-training networks (two-sided), Hedges' g"


class Spec(NamedTuple):
  """Which report rows a claim reads: None batchnorm = any mode, '*' layer = every layer."""
  eval: str
  task: str
  layer: str
  measure: str
  batchnorm: Optional[str] = None

  def matches(self, key: tuple) -> bool:
    ev, task, layer, measure, mode = key
    return ((ev, task, measure) == (self.eval, self.task, self.measure)
            and self.layer in ('*', layer) and self.batchnorm in (None, mode))

  def __str__(self):
    return '/'.join(x for x in self if x is not None)


def parse(spec: str, what: str) -> Spec:
  """'eval/task/layer/measure[/batchnorm]' -> Spec; InputError naming `what` (the key)."""
  parts = spec.split('/')
  if len(parts) not in (4, 5) or not all(parts):
    raise InputError(f'{what}={spec!r} must name report rows as eval/task/layer/measure or '
                     'eval/task/layer/measure/batchnorm (layer * = every layer)')
  return Spec(*parts)


def compare_networks(arm: Sequence[float], baseline: Sequence[float]) -> dict:
  """An arm's per-network values against the baseline's (random init, or another arm).

  Returns {'mean', 'std', 'n', 'values', 'baseline_mean', 'baseline_std', 'baseline_n',
  'baseline_values', 'gain', 'p', 'g'}; undefined numbers are None.
  """
  c = stats.compare(list(arm), list(baseline), paired=False)
  keys = ('mean', 'std', 'n', 'values')
  return {**{k: c['pretrained'][k] for k in keys},
          **{f'baseline_{k}': c['random_init'][k] for k in keys},
          'gain': c['difference'], 'p': c['p'], 'g': c['effect_size']}


def significant_gain(c: Optional[dict]) -> bool:
  return bool(c and c['gain'] is not None and c['gain'] > 0 and c['p'] is not None
              and c['p'] < ALPHA)


def describe(c: Optional[dict]) -> str:
  """'0.412 +- 0.010 vs 0.380 +- 0.020 (gain +0.032, p=0.04, g=2.0, n=3 vs 3)'."""
  if c is None:
    return 'not measured'
  t = stats.text
  return (f"{t(c['mean'])} +- {t(c['std'])} vs {t(c['baseline_mean'])} +- "
          f"{t(c['baseline_std'])} (gain {t(c['gain'], '+.3f')}, p={t(c['p'], '.3g')}, "
          f"g={t(c['g'], '.2f')}, n={c['n']} vs {c['baseline_n']})")


def kept(gain_other: Optional[float], gain_waves: Optional[float]) -> Optional[float]:
  """The fraction of the wave arm's gain another arm or task keeps."""
  if gain_other is None or gain_waves is None or gain_waves == 0:
    return None
  return gain_other / gain_waves


def _measured(c: Optional[dict]) -> bool:
  return c is not None and c['gain'] is not None


def translation(c: Optional[dict]) -> str:
  """Claim 1, the translation task at the encoder output: waves > random init."""
  if not _measured(c):
    return INCONCLUSIVE
  if c['gain'] <= 0:
    return NOT_HELD
  return HELD if significant_gain(c) else INCONCLUSIVE


def not_worse(cs: Sequence[Optional[dict]]) -> str:
  """Claim 2: waves >= random init on every dataset."""
  cs = [c for c in cs if _measured(c)]
  if not cs:
    return INCONCLUSIVE
  if any(c['gain'] < 0 and c['p'] is not None and c['p'] < ALPHA for c in cs):
    return NOT_HELD
  return HELD if all(c['gain'] >= 0 for c in cs) else INCONCLUSIVE


def backbone(layers: Sequence[str]) -> list[str]:
  """The layers of the encoder (projector layers left out), in network order."""
  return [l for l in layers if not l.startswith('projector')]


def encoder_output(layers: Sequence[str]) -> Optional[str]:
  """'pooled' when analysed, else the last backbone layer."""
  layers = backbone(layers)
  return 'pooled' if 'pooled' in layers else (layers[-1] if layers else None)


def late_layers(layers: Sequence[str]) -> list[str]:
  """The later half of the backbone layers (the middle one, for an odd count, included)."""
  layers = backbone(layers)
  return layers[len(layers) // 2:]


def capacity(per_layer: dict[str, Optional[dict]]) -> tuple[str, Optional[str]]:
  """Claim 3 in one BatchNorm mode: (verdict, the layer with the largest gain). per_layer:
  layer -> comparison, in network order; projector layers are left out."""
  layers = backbone(per_layer)
  e = encoder_output(layers)
  gains = {l: per_layer[l]['gain'] for l in layers if _measured(per_layer[l])}
  if e is None or e not in gains:
    return INCONCLUSIVE, None
  top = max(gains, key=gains.get)
  if gains[e] <= 0:
    return NOT_HELD, top
  if not significant_gain(per_layer[e]):
    return INCONCLUSIVE, top
  return (HELD if top in late_layers(layers) else NOT_HELD), top


def survives(running: Optional[dict], adapt: Optional[dict]) -> str:
  """What of claim 3's running-mode gain at the encoder output 'adapt' keeps."""
  if not (_measured(running) and _measured(adapt)):
    return 'not measured in both modes'
  share = kept(adapt['gain'], running['gain'])
  return (f"with statistics re-estimated on natural images ('adapt') the gain is "
          f"{stats.text(adapt['gain'], '+.3f')} (p={stats.text(adapt['p'], '.2g')}) against "
          f"{stats.text(running['gain'], '+.3f')} (p={stats.text(running['p'], '.2g')}) with the "
          f"running statistics: {stats.text(share, '.0%')} of it survives"
          + (', significant' if significant_gain(adapt) else ', not significant'))


def controls(waves: Optional[dict], control: dict[str, Optional[dict]],
             direct: dict[str, Optional[dict]]) -> str:
  """Claim 4 on one measure. control: name -> the control's comparison with random init;
  direct: name -> the wave arm's comparison with that control (Welch across networks)."""
  control = {k: c for k, c in control.items() if _measured(c)}
  if not significant_gain(waves) or not control:
    return INCONCLUSIVE
  if any(kept(c['gain'], waves['gain']) >= MOST for c in control.values()):
    return NOT_HELD
  return HELD if all(significant_gain(direct.get(k)) for k in control) else INCONCLUSIVE


def specific(translate: Optional[dict], others: dict[str, Optional[dict]],
             excess: dict[str, Optional[dict]]) -> str:
  """Claim 5. others: task -> its comparison with random init; excess: task -> the
  comparison of the per-network difference (task - translation) with random init's."""
  if any(significant_gain(c) for c in excess.values()):
    return NOT_HELD
  others = {k: c for k, c in others.items() if _measured(c)}
  if not significant_gain(translate) or not others:
    return INCONCLUSIVE
  fractions = [kept(c['gain'], translate['gain']) for c in others.values()]
  return HELD if all(f < MOST for f in fractions) else NOT_HELD


def null_rate(comparisons: Sequence[Optional[dict]]) -> tuple[int, int]:
  """(rows with p < ALPHA, rows with a defined p) of the null arm against random init."""
  ps = [c['p'] for c in comparisons if c is not None and c['p'] is not None]
  return sum(p < ALPHA for p in ps), len(ps)


def difference(a: Sequence[Optional[float]], b: Sequence[Optional[float]]) -> list[float]:
  """Per network a - b (the networks where both are measured)."""
  return [float(x - y) for x, y in zip(a, b) if x is not None and y is not None
          and np.isfinite(x) and np.isfinite(y)]
