"""Statistics across pre-training networks, and the verdict rules of the paper's five claims.

The unit of replication is the network: one value per pre-training seed (each network's
number is the evaluator's, i.e. its mean over the evaluator's own probe seeds). An arm is
compared with the random-init arm by Welch's t-test across networks (two-sided,
scipy.stats.ttest_ind with unequal variances; rwjax.eval.stats.compare(paired=False)): no
pairing is assumed, because the null arm's networks share nothing with the random-init ones
and the test must be the same for every arm. The effect size is Cohen's d with the pooled
standard deviation (ddof 1). A gain is mean(arm) - mean(random init).

The rules below were fixed before any result existed (issue 14) and are not tuned:
  ALPHA = 0.05   significance level of every test;
  MOST  = 0.5    a control (or another task) "keeps" a fraction gain_other / gain_waves of the
                 wave arm's gain; it "loses most of the gain" when it keeps less than MOST.
  1. translation: held if gain > 0 and p < ALPHA at the encoder output; not held if gain <= 0;
     inconclusive otherwise (gain > 0, p >= ALPHA or undefined).
  2. classification (each dataset, encoder output): held if every gain >= 0; not held if any
     gain < 0 with p < ALPHA; inconclusive otherwise.
  3. capacity of translation manifolds: with g the per-layer gains of the backbone layers
     (projector layers left out) and e the encoder-output layer: held if g[e] > 0 with
     p < ALPHA and the largest gain lies in the later half of the layers; not held if
     g[e] <= 0, or g[e] is significant but the largest gain lies in the earlier half;
     inconclusive otherwise.
  4. controls (on claim 1's measure): held if the wave arm's gain is > 0 with p < ALPHA and
     every control keeps < MOST of it; not held if that gain is significant and some control
     keeps >= MOST; inconclusive if the wave arm's gain is not significant or no control ran.
  5. specificity to translation: held (the gain is specific) if the translation gain is > 0
     with p < ALPHA and the rotation and colour gains each keep < MOST of it; not held if
     the translation gain is significant and rotation or colour keeps >= MOST; inconclusive
     if the translation gain is not significant.
"""

import math
from typing import Optional, Sequence

import numpy as np

from rwjax.eval import stats

ALPHA = 0.05
MOST = 0.5
HELD, NOT_HELD, INCONCLUSIVE = 'held', 'not held', 'inconclusive'
TEST = "Welch's t-test across pre-training networks (two-sided), Cohen's d (pooled SD)"


def cohen_d(a: Sequence[float], b: Sequence[float]) -> Optional[float]:
  """(mean a - mean b) / pooled SD (ddof 1); None when undefined (n < 2 or no spread)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if len(a) < 2 or len(b) < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
    return None
  pooled = math.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1))
                     / (len(a) + len(b) - 2))
  return float((a.mean() - b.mean()) / pooled) if pooled > 0 else None


def compare_networks(arm: Sequence[float], baseline: Sequence[float]) -> dict:
  """An arm's per-network values against the baseline's (random init).

  Returns {'mean', 'std', 'n', 'baseline_mean', 'baseline_std', 'baseline_n', 'gain', 'p',
  'd', 'values', 'baseline_values'}; undefined numbers are None.
  """
  c = stats.compare(list(arm), list(baseline), paired=False)
  a, b = c['pretrained'], c['random_init']
  return {'mean': a['mean'], 'std': a['std'], 'n': a['n'], 'values': a['values'],
          'baseline_mean': b['mean'], 'baseline_std': b['std'], 'baseline_n': b['n'],
          'baseline_values': b['values'], 'gain': c['difference'], 'p': c['p'],
          'd': cohen_d(arm, baseline)}


def significant_gain(c: Optional[dict]) -> bool:
  return bool(c and c['gain'] is not None and c['gain'] > 0 and c['p'] is not None
              and c['p'] < ALPHA)


def _num(x: Optional[float], spec: str = '.3f') -> str:
  return 'n/a' if x is None else format(x, spec)


def describe(c: Optional[dict]) -> str:
  """'0.412 +- 0.010 vs 0.380 +- 0.020 (gain +0.032, p=0.04, d=2.0, n=3 vs 3)'."""
  if c is None:
    return 'not measured'
  return (f"{_num(c['mean'])} +- {_num(c['std'])} vs {_num(c['baseline_mean'])} +- "
          f"{_num(c['baseline_std'])} (gain {_num(c['gain'], '+.3f')}, p={_num(c['p'], '.3g')}, "
          f"d={_num(c['d'], '.2f')}, n={c['n']} vs {c['baseline_n']})")


def kept(gain_other: Optional[float], gain_waves: Optional[float]) -> Optional[float]:
  """The fraction of the wave arm's gain another arm or task keeps."""
  if gain_other is None or gain_waves is None or gain_waves == 0:
    return None
  return gain_other / gain_waves


def translation(c: Optional[dict]) -> str:
  """Claim 1 (see the module docstring)."""
  if c is None or c['gain'] is None:
    return INCONCLUSIVE
  if c['gain'] <= 0:
    return NOT_HELD
  return HELD if significant_gain(c) else INCONCLUSIVE


def not_worse(cs: Sequence[Optional[dict]]) -> str:
  """Claim 2: waves >= random init on every dataset."""
  cs = [c for c in cs if c is not None and c['gain'] is not None]
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
  """Claim 3: (verdict, the layer with the largest gain). per_layer: layer -> comparison,
  in network order."""
  layers = backbone(per_layer)
  e = encoder_output(layers)
  gains = {l: per_layer[l]['gain'] for l in layers
           if per_layer[l] is not None and per_layer[l]['gain'] is not None}
  if e is None or e not in gains:
    return INCONCLUSIVE, None
  top = max(gains, key=gains.get)
  if gains[e] <= 0:
    return NOT_HELD, top
  if not significant_gain(per_layer[e]):
    return INCONCLUSIVE, top
  return (HELD if top in late_layers(layers) else NOT_HELD), top


def controls(waves: Optional[dict], control: dict[str, Optional[dict]]) -> str:
  """Claim 4: each control keeps < MOST of the wave arm's (significant) gain."""
  control = {k: c for k, c in control.items() if c is not None and c['gain'] is not None}
  if not significant_gain(waves) or not control:
    return INCONCLUSIVE
  fractions = [kept(c['gain'], waves['gain']) for c in control.values()]
  return HELD if all(f < MOST for f in fractions) else NOT_HELD


def specific(translate: Optional[dict], others: dict[str, Optional[dict]]) -> str:
  """Claim 5: the rotation and colour gains each keep < MOST of the translation gain."""
  others = {k: c for k, c in others.items() if c is not None and c['gain'] is not None}
  if not significant_gain(translate) or not others:
    return INCONCLUSIVE
  fractions = [kept(c['gain'], translate['gain']) for c in others.values()]
  return HELD if all(f < MOST for f in fractions) else NOT_HELD


def null_rate(comparisons: Sequence[dict]) -> tuple[int, int]:
  """(rows with p < ALPHA, rows with a defined p) of the null arm against random init."""
  ps = [c['p'] for c in comparisons if c is not None and c['p'] is not None]
  return sum(p < ALPHA for p in ps), len(ps)

