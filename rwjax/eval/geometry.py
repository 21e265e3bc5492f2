"""The geometry of one set of manifolds in one layer: the measures a manifolds eval reports.

  alpha, radius, dimension, center_corr: mean-field manifold capacity (1 / mean(1 / alpha_M)),
      the manifolds' mean radius and dimension and the mean |cos| between their centers
      (rwjax.eval.capacity; Chung, Lee & Sompolinsky 2018; the paper's mftma_analysis);
  participation_ratio, pcs_90: the whole representation's dimensionality (every manifold's
      points pooled; rwjax.eval.dimensionality);
  sim_alpha: the simulated capacity P / N_c (rwjax.eval.simulated_capacity), where the paper
      computed it (the encoder's last map and the projector layers).
"""

from typing import Sequence

import jax
import numpy as np

from rwjax.eval import capacity as capacity_lib
from rwjax.eval import dimensionality
from rwjax.eval import manifolds as manifolds_lib
from rwjax.eval import simulated_capacity as sim_lib

MFTMA = ('alpha', 'radius', 'dimension', 'center_corr')
MEASURES = MFTMA + ('participation_ratio', 'pcs_90', 'sim_alpha')


def analyse(points: Sequence[np.ndarray], *, key: jax.Array, sim_key: jax.Array,
            measures: Sequence[str], n_t: int, kappa: float, pad_to: int,
            simulate: bool = False, sim_trials: int = 100,
            variance: float = dimensionality.VARIANCE) -> dict:
  """The measures of P manifolds in one layer.

  Args:
    points: P arrays f32[M_i, N] (a layer's features of each manifold's images).
    key: raw PRNG key of the mean-field analysis' Gaussian draws.
    sim_key: raw PRNG key of the simulated capacity's projections and labelings.
    measures: which of MEASURES (sim_alpha only where `simulate`).
    n_t, kappa: Gaussian draws per manifold and margin (the paper's 500 and 0).
    pad_to: equal-size manifolds narrower than this are zero-padded to it, so that layers
      of different widths share one compiled analysis (no result changes while N >= M:
      manifolds.pad_features).
    simulate, sim_trials: compute sim_alpha, with this many random projections and
      labelings per dimension (the paper's n_rep = 100).
    variance: the share of variance pcs_90 counts components for.

  Returns:
    {measure: float (NaN where degenerate)} plus 'solver_residual' and 'dims' (N).
  """
  out = {'dims': int(points[0].shape[1]), 'solver_residual': 0.0}
  if set(MFTMA) & set(measures):
    same = len({len(p) for p in points}) == 1
    given = manifolds_lib.pad_features(np.stack(points), pad_to) if same else list(points)
    result = capacity_lib.manifold_analysis(given, kappa=float(kappa), n_t=int(n_t), key=key)
    out.update({g: result[g] for g in MFTMA if g in measures})
    out['solver_residual'] = result['solver_residual']
  if 'participation_ratio' in measures or 'pcs_90' in measures:
    dims = dimensionality.dimensionality(np.concatenate(points), variance)
    out.update({g: dims[g] for g in ('participation_ratio', 'pcs_90') if g in measures})
  if simulate and 'sim_alpha' in measures:
    out['sim_alpha'] = sim_lib.simulated_capacity([np.asarray(p) for p in points], key=sim_key,
                                                  n_trials=int(sim_trials))['alpha_c']
  return out
