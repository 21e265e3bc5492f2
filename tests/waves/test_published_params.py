"""The simulators' default parameters against the publications' values, typed in here.

Lansdell, Ford & Kutz (2014) PLoS Comput Biol 10:e1003953, Table 1 (the same values are
in the authors' released code, github.com/benlansdell/retinalwaves models/parameters.m,
model 'ml_sahp', with Bernoulli noise p = 0.1 / 800 per 0.1 s window and gN = 20). The one
deliberate change is D = 0.005 mm^2/s instead of the published 0.01 (docs/waves.md,
'Simulators', says why).

Godfrey & Swindale (2007) PLoS Comput Biol 3:e245: lattice spacing, dendritic radius,
update step and the species parameter sets (H1, H2, P_D, P, T_K), as the module's
docstring cites them. The calcium-trace constants (ca_*) are this project's rendering of
the model's activity as frames, not the paper's, and are not checked here.
"""

import pytest

from rwjax.errors import InputError
from rwjax.waves import godfrey, lansdell

# spont_frames=1: one movie frame per 0.1 s noise window (the released code's noiseStepSize,
# and its long simulations' output times 0:0.1:T).
LANSDELL_2014 = dict(
    size=64, extent_mm=2.0, dt=0.001, frame_dt=0.1, spont_frames=1,
    cm=160.0, v_ca=50.0, v_k=-90.0, v_l=-70.0, v_syn=50.0,
    g_ca=10.0, g_k=30.0, g_l=3.0, g_ach=2.0,
    v1=-20.0, v2=20.0, v3=-25.0, v4=40.0,
    tau_r=5.0, tau_ach=0.2, diff=0.01, b=5.0, delta=800.0, kappa=0.2, v0=-40.0,
    v_n=50.0, alpha=2.0, tau_s=60.0, c=0.3, i_app=0.0, g_n=20.0, spont_prob=0.1 / 800)

GODFREY_2007 = dict(spacing_um=34.0, radius_um=170.0, dt=0.025, rho_sd=0.2,
                    theta0_lo=0.5, theta0_hi=5.0)
# (H1, H2, P_D (s), P (s), T_K (s)) per parameter set.
GODFREY_2007_SETS = {
    'default': (5.0, 0.4, 1.25, 30.0, 0.2),
    'mouse': (4.0, 0.75, 2.30, 32.0, 0.35),
    'ferret': (4.0, 0.75, 1.30, 43.0, 0.25),
    'rabbit': (4.0, 0.6, 1.05, 44.0, 0.25),
    'turtle': (4.0, 0.7, 1.0, 23.0, 0.2),
    'chick': (4.0, 0.4, 1.05, 38.0, 0.025),
}


def test_lansdell_defaults_are_the_published_values_but_d():
  assert lansdell.Params().diff == 0.005  # the deliberate change: D halved from 0.01 mm^2/s
  assert lansdell.Params(diff=0.01)._asdict() == pytest.approx(LANSDELL_2014, rel=1e-12)


def test_godfrey_defaults_and_parameter_sets_are_the_published_values():
  p = godfrey.Params()
  assert {k: getattr(p, k) for k in GODFREY_2007} == pytest.approx(GODFREY_2007)
  assert (p.h1, p.h2, p.p_d, p.p, p.t_k) == pytest.approx(GODFREY_2007_SETS['default'])
  assert sorted(godfrey.PRESETS) == sorted(GODFREY_2007_SETS)
  for name, values in GODFREY_2007_SETS.items():
    q = godfrey.PRESETS[name]
    assert (q.h1, q.h2, q.p_d, q.p, q.t_k) == pytest.approx(values), name
    assert q._replace(h1=p.h1, h2=p.h2, p_d=p.p_d, p=p.p, t_k=p.t_k) == p, name
  assert godfrey.preset('mouse', size=32) == godfrey.PRESETS['mouse']._replace(size=32)
  with pytest.raises(InputError, match='mouse'):
    godfrey.preset('human')
