"""Fitting the Lansdell model: a planted answer at tiny sizes, batched candidates, bad input."""

import importlib.util
import json
import os
import re

import jax
import numpy as np
import pytest

from rwjax import defaults
from rwjax.errors import InputError
from rwjax.waves import compare, fit, lansdell
from rwjax.waves.cli import main

# Loaded by path, not from sys.path: bench/fit_search.py loads this module outside pytest.
_spec = importlib.util.spec_from_file_location(
    'mea_files', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'mea_files.py'))
mea_files = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mea_files)

SIZE = 24
BASE = lansdell.Params(size=SIZE, dt=0.002)  # 2 ms steps: the README's equal statistics


def grid_recording():
  """One electrode per lattice cell: the template the simulations are seen through."""
  return mea_files.grid_recording(SIZE, lansdell.pixel_mm(BASE))


def test_candidates_in_one_batch_equal_separate_runs():
  # The batched simulator (parameters as [B, 1, 1] arrays) against lansdell.advance with
  # each parameter set as a static Params, on the same PRNG streams.
  base = lansdell.Params(size=8, dt=0.002)
  values = np.array([[0.005, 2e-3], [0.02, 8e-3]])
  cells = np.arange(64)
  active = fit.simulate_candidates(base, ('diff', 'spont_prob'), values, 2, 1.0, 2.0, 5,
                                   cells)
  assert active.shape == (2, 2, 20, 64)
  for k, (d, q) in enumerate(values):
    p = base._replace(diff=float(d), spont_prob=float(q))
    state = lansdell.warmup(lansdell.init(jax.random.PRNGKey(5), 2, p), 1.0, p)
    _, frames = lansdell.advance(state, 20, p)
    want = np.asarray(frames).reshape(2, 20, 64) > lansdell.THRESHOLD
    assert (active[k] == want).mean() > 0.999  # f32 arrays vs constants: rare flips
  assert active.any()


def test_distance_is_squared_log_ratios():
  target = dict(speed_mm_s_median=0.1, iwi_s_median=60.0, area_mm2_median=0.1,
                ci_100um=30.0, ci_200um=20.0, ci_400um=None)
  sim = dict(speed_mm_s_median=0.1 * np.e, iwi_s_median=60.0, area_mm2_median=0.1 / np.e,
             ci_100um=30.0 * np.e ** 3, ci_200um=None, ci_400um=5.0)
  # speed 1 + area 1 + CI 100: 9 / 3 + CI 200 missing: 25 / 3; CI 400 has no target.
  assert fit.distance(sim, target) == pytest.approx(1 + 1 + 3 + 25 / 3)


def test_fit_recovers_a_planted_diffusion_constant():
  """Statistics of the model at D* = 0.012 mm^2/s are fitted from D = 0.004 (3x off).

  The target is simulated on the PRNG streams the fit uses (the fit's common random
  numbers, seed 0), so the distance is exactly 0 at D* and the test measures the search
  alone, not the simulation noise (between seeds D is pinned only to about +-25% at this
  size: median speed ~ D^0.4 and CI at 400 um ~ D^0.45 vary 10-15% and 5-8%). Tolerance:
  a factor 1.3. Around D* a factor 1.3 moves the median speed ~10% and the CI at 400 um
  ~12%, a distance of ~0.015 that the 24 candidates of 3 generations resolve. tau_s = 15 s
  (published 60 s) lets the retinas recover from their first, synchronised wave within the
  100 s simulated.
  """
  rec = grid_recording()
  base = BASE._replace(tau_s=15.0)
  truth = fit.simulate_candidates(base, ('diff',), np.array([[0.012]]), 1, 20.0, 80.0, 0,
                                  np.arange(SIZE * SIZE))
  target = compare.measure(compare.simulated_recordings(truth[0], rec, 10.0, 0.1, 0)).summary
  assert target['n_waves_with_speed'] >= 5
  budget = 3 * 8 * 1 * 100.0
  result = fit.fit(target, rec, ('diff',), {'diff': 0.004}, {'diff': (0.002, 0.03)},
                   base=base, candidates=8, retinas=1, seconds=80.0, warmup_s=20.0,
                   budget_s=budget, seed=0, rate_hz=10.0, tol=0.05)
  assert result.generations <= 3 and result.simulated_s <= budget
  assert abs(np.log(result.fitted['diff'] / 0.012)) < np.log(1.3), result.history
  assert result.fitted_distance < result.start_distance
  assert result.start == {'diff': 0.004}
  assert fit.distance(target, target) == 0.0


@pytest.mark.parametrize('names, start, kwargs, message', [
    (('nope',), {'nope': 1.0}, {}, "no such fittable parameter"),
    (('kappa',), {'kappa': 0.2}, {}, "no such fittable parameter"),
    (('diff',), {'diff': 0.005}, dict(bounds={'diff': (0.006, 0.03)}), 'lies outside its bounds'),
    (('diff',), {'diff': 0.005}, dict(bounds={'diff': (0.03, 0.006)}), '0 < low < high'),
    (('diff',), {'diff': 0.005}, dict(candidates=4, retinas=1, seconds=10.0, warmup_s=0.0,
                                      budget_s=60.0), 'allows 1 generation'),
])
def test_bad_names_bounds_and_budget(names, start, kwargs, message):
  with pytest.raises(InputError, match=message):
    fit.fit({}, grid_recording(), names, start, base=BASE, rate_hz=10.0, **kwargs)


def test_cli_unconverged_fit_writes_its_best_and_flags_plug_into_the_config(tmp_path, capsys):
  path = mea_files.fronts_file(tmp_path / 'r.h5', size=8, starts=(2.0, 12.0, 22.0, 32.0),
                               duration=40.0)
  out = tmp_path / 'fit'
  # A result all the same (exit 0): the best candidate within the budget, with a warning.
  main(['fit', '--model=lansdell', f'--recording={path}', '--size=8', '--seconds=30',
        '--warmup=0', '--candidates=4', '--retinas=1', '--budget=240', '--tol=1e-6',
        '--fit=diff', '--fit=spont_prob', '--bounds=spont_prob=1e-4:1e-2',
        '--param=spont_prob=0.003', f'--out={out}'])
  err = capsys.readouterr().err
  assert 'warning: the fit did not converge within --budget=240' in err
  # Progress (rwjax.waves.progress): from the first chunk (10 simulated s of 4 candidates:
  # 40 of the 2 x 4 x 30 = 240 retina-s), at the end of generation 1 (120, 4 measured)
  # and at the end; retina-seconds and candidates measured never go back; every line has
  # an ETA.
  lines = [l for l in err.splitlines() if l.startswith('fit:')]
  done = [float(re.search(r'\(([\d,]+)/240 retina-s\)', l)[1].replace(',', '')) for l in lines]
  measured = [int(re.search(r'candidates (\d+)/8', l)[1]) for l in lines]
  assert len(lines) >= 3 and done[0] == 40 and done[-1] == 240, lines
  assert (120, 4) in zip(done, measured), lines
  assert done == sorted(done) and measured == sorted(measured) and measured[-1] == 8
  assert all(re.search(r'retina-s/s, .* elapsed, ETA \d', l) for l in lines), lines
  assert 'best distance none yet' in lines[0] and 'best distance none' not in lines[-1]
  result = json.loads((out / 'fit.json').read_text())
  assert result['converged'] is False and result['generations'] == 2
  assert result['search'] == dict(name='quick', candidates=4, retinas=1, warmup_s=0.0,
                                  seconds=30.0, budget_s=240.0)
  assert result['start'] == {'diff': 0.005, 'spont_prob': 0.003}
  assert result['bounds']['spont_prob'] == [1e-4, 1e-2]
  assert set(result['fitted']) == {'diff', 'spont_prob'}
  assert (out / 'fit.png').exists()
  # The printed config overrides name real keys of the pre-training config.
  config = defaults.pretrain_config()
  for flag in result['flags']['config']:
    key, value = flag[len('--config.'):].split('=')
    node = config
    for part in key.split('.')[:-1]:
      node = node[part]
    assert isinstance(node[key.split('.')[-1]], float)
    node[key.split('.')[-1]] = float(value)
  assert config.data.sim_params.lansdell.diff == pytest.approx(result['fitted']['diff'],
                                                               rel=1e-5)
  assert (out / 'config_flags.txt').read_text().split() == result['flags']['config']
  # The --param file plugs into simulate as it is.
  params = (out / 'param_flags.txt').read_text().split()
  main(['simulate', '--size=8', '--seconds=1', '--warmup=0', '--gif-seconds=0',
        f'--out={tmp_path / "sim"}'] + params)
  meta = json.loads((tmp_path / 'sim' / 'meta.json').read_text())
  assert meta['params']['diff'] == pytest.approx(result['fitted']['diff'], rel=1e-5)
