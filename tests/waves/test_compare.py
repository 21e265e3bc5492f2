"""Recordings beside simulations: matching, conversion, survey, compare, bad fit input, dataset."""

import json
import math

import numpy as np
import pytest

import mea_files  # tests/waves/mea_files.py (on the path: conftest.py)
from rwjax.errors import InputError
from rwjax.ssl import trainer
from rwjax.waves import compare, recorded
from rwjax.waves.cli import main


def test_the_lattice_covers_the_recording_at_the_model_spacing():
  aps = mea_files.site_recording([0, 63], [0, 63])  # the 64x64 APS array's corners
  side = 63 * 0.042  # mm from the first to the last electrode
  _, lp = compare.matched_params('lansdell', aps)
  assert lp.size == math.ceil(side / (2 / 63)) + 1 == 85
  assert lp.extent_mm == pytest.approx(84 * 2 / 63) and lp.extent_mm >= side
  _, gp = compare.matched_params('godfrey', aps)
  assert gp.size == math.ceil(side / 0.034) + 1 == 79 and gp.spacing_um == 34.0
  mod, small = compare.matched_params('lansdell', aps, {'diff': 0.01}, size=32)
  assert small.size == 32 and small.extent_mm == pytest.approx(side) and small.diff == 0.01
  cells = compare.electrode_cells(aps, mod, small)
  np.testing.assert_array_equal(cells, [0, 31 * 32 + 31])


def test_simulated_trains_follow_the_activity_and_the_burst_rate_round_trips():
  rec = mea_files.grid_recording(4)
  active = np.zeros((1000, 16), bool)
  active[::10, 3] = True  # train 3: active 100 frames of 0.1 s
  sim = compare.simulated_recording(active, rec, 50.0, 0.1, np.random.default_rng(1))
  assert set(np.unique(sim.channel)) == {3}
  assert sim.times.size == pytest.approx(100 * 0.1 * 50, rel=0.1)  # Poisson mean 500
  assert set(np.unique(np.floor(sim.times / 0.1).astype(int) % 10)) == {0}
  # The whole raster is active for 5 blocks of 100 frames; trains fire at 20 Hz while
  # active. The box average lets each block's wave start a frame early and end a frame
  # late (102 frames), so the measured rate is 20 * 100 / 102.
  rec = mea_files.grid_recording(12)
  active = np.zeros((1500, 144), bool)
  for k in range(5):
    active[100 + 280 * k: 200 + 280 * k] = True
  sim = compare.simulated_recording(active, rec, 20.0, 0.1, np.random.default_rng(0))
  assert sim.duration_s == pytest.approx(150.0) and sim.n_trains == 144
  assert compare.burst_rate(sim) == pytest.approx(20 * 100 / 102, rel=0.03)


def test_two_sample_tests():
  rng = np.random.default_rng(0)
  a, b = rng.normal(0, 1, 300), rng.normal(0, 1, 300)
  same = compare.two_sample(a, b)
  shifted = compare.two_sample(a, b + 1.0)
  assert same['mannwhitney_p'] > 0.01 and same['ks_p'] > 0.01
  assert shifted['mannwhitney_p'] < 1e-6 and shifted['ks_p'] < 1e-6
  assert compare.two_sample(a, np.array([np.nan]))['mannwhitney_p'] is None


def test_stats_of_a_recording_and_the_survey_by_age(tmp_path, capsys):
  path = mea_files.fronts_file(tmp_path / 'a.h5', speed_mm_s=0.1, age=5)
  main(['stats', f'--recording={path}', '--json'])
  s = json.loads(capsys.readouterr().out)
  assert s['n_waves'] == 4 and s['speed_mm_s_median'] == pytest.approx(0.1, rel=0.15)
  assert s['ci_dt_s'] == 0.05 and s['layout'] == 'square' and s['raster'] == [16, 16]
  # Every electrode fires with the fronts only: the index falls with distance along x.
  assert s['ci_100um'] > s['ci_200um'] > s['ci_400um'] > 1
  assert s['ci_by_distance']['distance_um'][:3] == [0.0, 100.0, 200.0]
  with pytest.raises(InputError, match='needs --movie=FILE .* or --recording=FILE.h5'):
    main(['stats'])
  mea_files.fronts_file(tmp_path / 'b.h5', speed_mm_s=0.1, age=5, starts=(10.0, 60.0, 110.0))
  mea_files.fronts_file(tmp_path / 'c.h5', speed_mm_s=0.25, age=11)
  main(['survey', f'--folder={tmp_path}', '--json'])
  out = json.loads(capsys.readouterr().out)
  groups = out['groups']
  assert list(groups) == ['P5', 'P11']
  assert groups['P5']['recordings'] == 2 and groups['P5']['n_speed_mm_s'] == 7
  assert groups['P5']['speed_mm_s'][1] == pytest.approx(0.1, rel=0.15)
  assert groups['P11']['speed_mm_s'][1] == pytest.approx(0.25, rel=0.15)
  # Fronts 40 s apart (50 s in b.h5): every pixel's interval.
  assert groups['P11']['iwi_s'] == pytest.approx([40.0] * 3, abs=0.3)
  assert groups['P5']['iwi_s'][0] == pytest.approx(40.0, abs=0.3)
  assert groups['P5']['iwi_s'][2] == pytest.approx(50.0, abs=0.3)
  assert [len(groups['P5'][k]) for k in ('ci_100um', 'ci_200um', 'ci_400um')] == [3] * 3
  main(['survey', f'--folder={tmp_path}', '--groups=stage'])
  table = capsys.readouterr().out
  assert '| II (<=P9) | 2 |' in table and '| III (>=P10) | 1 |' in table


def test_compare_writes_both_sides_and_a_figure_for_either_model(tmp_path, capsys):
  path = mea_files.fronts_file(tmp_path / 'r.h5', size=12)
  out = tmp_path / 'cmp'
  main(['compare', '--model=lansdell', f'--recording={path}', '--size=12', '--seconds=40',
        '--warmup=5', '--batch=1', '--param=spont_prob=0.004', f'--out={out}'])
  result = json.loads((out / 'compare.json').read_text())
  assert (out / 'compare.png').stat().st_size > 10_000
  rec, model = result['recording'], result['model']
  assert rec['n_waves'] == 4 and model['n_trains'] == rec['n_trains'] == 144
  assert model['params']['spont_prob'] == 0.004 and model['params']['size'] == 12
  assert model['seconds'] == pytest.approx(40.0) and model['raster'] == [12, 12]
  assert model['rate_hz'] == pytest.approx(compare.burst_rate(recorded.load_mea(str(path))))
  assert set(result['tests']) == {'speed_mm_s', 'iwi_s', 'duration_s', 'area_mm2',
                                  'ci_100um', 'ci_200um', 'ci_400um'}
  assert 'MWU p' in capsys.readouterr().out
  main(['compare', '--model=godfrey', f'--recording={path}', '--size=12', '--seconds=20',
        '--warmup=0', '--batch=1', f'--out={tmp_path / "g"}', '--json'])
  result = json.loads((tmp_path / 'g' / 'compare.json').read_text())
  assert result['model']['name'] == 'godfrey' and result['model']['params']['size'] == 12


@pytest.mark.parametrize('recording, args, message', [
    ({}, ['compare', '--param=nope=1'], "need NAME=VALUE with NAME one of"),
    ({}, ['compare', '--model=nope'], 'unknown wave model'),
    ({}, ['compare', '--batch=0'], 'need --batch >= 1'),
    (dict(starts=(5.0,), duration=60.0), ['compare'], 'too short or too sparse'),
    (dict(starts=(1.0, 7.0, 13.0), duration=20.0), ['compare'], 'too short or too sparse'),
    ({}, ['fit', '--fit=nope'], 'no such fittable parameter'),
    ({}, ['fit', '--model=godfrey'], 'supports --model=lansdell only'),
    ({}, ['fit', '--fit=diff', '--bounds=diff=0.01:0.03'], 'lies outside its bounds'),
    ({}, ['fit', '--bounds=diff=1'], 'need NAME=LOW:HIGH'),
    ({}, ['fit', '--fit=diff', '--bounds=tau_s=1:100'], 'which are not fitted'),
    # The searches' sizes (fit.SEARCHES), quick by default; a flag overrides one value.
    ({}, ['fit', '--budget=1000'], r'allows 0 generation\(s\) of 8 candidates x 1 retinas x 450 s'),
    ({}, ['fit', '--search=full', '--budget=1000'], r'of 16 candidates x 2 retinas x 600 s'),
    ({}, ['fit', '--search=full', '--budget=1000', '--warmup=100'],
     r'of 16 candidates x 2 retinas x 400'),
])
def test_compare_and_fit_bad_input_writes_nothing(tmp_path, recording, args, message):
  path = mea_files.fronts_file(tmp_path / 'r.h5', size=12, **recording)
  with pytest.raises(InputError, match=message):
    main(args + [f'--recording={path}', f'--out={tmp_path / "o"}'])
  assert not (tmp_path / 'o').exists()


def test_dataset_feeds_the_trainers_file_source(tmp_path, repo_module):
  for i, age in enumerate((4, 6, 12)):
    mea_files.fronts_file(tmp_path / f'r{i}.h5', size=32, age=age, duration=160.0 + 40 * i)
  out = tmp_path / 'ds'
  main(['mea-dataset', f'--folder={tmp_path}', '--ages=2:9', '--segment-s=50', f'--out={out}'])
  movie, labels = np.load(out / 'movie.npy'), np.load(out / 'labels.npy')
  # r0: 160 s -> 3 segments, r1: 200 s -> 4; r2 (P12) left out.
  assert movie.shape == (7, 500, 32, 32) and labels.shape == (7, 500)
  waves_r0 = set(labels[:3][labels[:3] >= 0].tolist())
  waves_r1 = set(labels[3:][labels[3:] >= 0].tolist())
  assert len(waves_r0) == len(waves_r1) == 4 and not waves_r0 & waves_r1
  config = repo_module('configs/pretrain_mea.py').get_config(str(out))
  assert config.data.source == 'file' and config.data.movie == str(out / 'movie.npy')
  source = trainer.build_source(config)  # sharded over the 8 devices (data.placement='auto')
  y = np.asarray(source.inputs[1])
  assert y.shape[0] == 8 * source.inputs[0].layout.rows and (y >= 0).sum() == (labels >= 0).sum()
  config.data.placement = 'replicated'  # the whole movie on every device
  x, y = trainer.build_source(config).inputs
  assert x.shape == (7, 500, 32, 32) and y.shape == (7, 500)
  assert (y == labels).all()
