"""The evaluate binary end to end on a tiny pre-training workdir and the shipped digits."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rwjax import evaluate
from rwjax.errors import InputError
from rwjax.models.resnet import relu_names

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(workdir, out):
  spec = importlib.util.spec_from_file_location(
      'evaluate_config', os.path.join(_REPO, 'configs', 'evaluate.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config('digits')
  config.workdir, config.out = workdir, out
  config.seeds = 2
  config.layers = ('layer1', 'pooled')
  config.data.max_train, config.data.max_test = 200, 100
  config.probe.steps = 50
  config.shift.pixels = (0, 2)
  config.exemplar.images, config.exemplar.n_train, config.exemplar.n_test = 4, 3, 2
  config.exemplar.transforms = ('translate', 'rotate')
  config.capacity.kinds = ('translate', 'class')
  config.capacity.P, config.capacity.M, config.capacity.n_t = 3, 4, 20
  config.capacity.project_dims = 64  # layer1 (8x8x4 = 256 wide) is projected.
  return config


def test_report_has_every_number_configs_and_plots(workdir, tmp_path, capsys):
  out = str(tmp_path / 'eval')
  report = evaluate.run(_config(workdir, out))
  with open(os.path.join(out, 'report.json')) as f:
    saved = json.load(f)
  assert saved == json.loads(json.dumps(report))
  assert saved['step'] == 7 and saved['seeds'] == 2 and saved['steps'] == [7]
  # One workdir: rwjax's original protocol, one pre-trained network paired over seeds.
  assert saved['statistics']['unit'] == 'seed' and saved['statistics']['test'] == 'paired t'
  assert saved['batchnorm']['mode'] == 'running' and 'rwjax' in saved['protocols']
  assert saved['data']['train'] == 200 and saved['data']['classes'] == list('0123456789')
  assert saved['configs']['pretrain']['model']['width'] == 4
  assert saved['configs']['evaluate']['layers'] == ['layer1', 'pooled']
  results = [saved['classification']] + list(saved['shift'].values()) + list(
      saved['exemplar'].values())
  assert set(saved['shift']) == {'0', '2'} and set(saved['exemplar']) == {'translate', 'rotate'}
  for layers in results:
    assert set(layers) == {'layer1', 'pooled'}
    for c in layers.values():
      for arm in ('pretrained', 'random_init'):
        assert len(c[arm]['values']) == 2 and all(0 <= v <= 1 for v in c[arm]['values'])
      assert c['difference'] == pytest.approx(c['pretrained']['mean'] - c['random_init']['mean'])
  # The pre-trained (here: one fixed init) network's centred-test accuracy is the shift-0 one.
  assert saved['shift']['0'] == saved['classification']
  # Digits are easy even through a tiny random ResNet: well above chance (0.1).
  assert saved['classification']['layer1']['random_init']['mean'] > 0.3
  cap = saved['capacity']
  assert (cap['P'], cap['M'], cap['n_t'], cap['kinds']) == (3, 4, 20, ['translate', 'class'])
  assert cap['width'] == {'layer1': 256, 'pooled': 32} and cap['dims'] == {'layer1': 64,
                                                                           'pooled': 32}
  for metric in ('alpha', 'radius', 'dimension', 'center_corr'):
    assert set(cap[metric]) == {'translate', 'class'}
    for layers in cap[metric].values():
      assert set(layers) == {'layer1', 'pooled'}
      for c in layers.values():
        for arm in ('pretrained', 'random_init'):
          assert len(c[arm]['values']) == 2 and all(v >= 0 for v in c[arm]['values'])
  # At kappa = 0 no manifold beats the capacity of points (2); these are far from lines.
  for layers in cap['alpha'].values():
    for c in layers.values():
      assert all(0.3 < v <= 2.0 + 1e-3 for arm in ('pretrained', 'random_init')
                 for v in c[arm]['values'])
  assert cap['solver_residual'] < 1e-3
  for name in ('accuracy_per_layer.png', 'accuracy_vs_shift.png', 'summary.png',
               'capacity_per_layer.png'):
    with open(os.path.join(out, name), 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  table = capsys.readouterr().out
  assert 'classification' in table and 'shift 2 px' in table and 'exemplar rotate' in table
  assert '2 seeds per arm; test: paired t' in table and 'note: one pre-trained network' in table
  assert 'alpha pre / rand' in table and 'translate' in table


def test_without_the_random_init_arm_the_pretrained_numbers_are_unchanged(workdir, tmp_path):
  """config.random_init_arm=False (rwjax.experiment) evaluates only the pre-trained arm: every
  pre-trained value equals the both-arm run's, and nothing is compared."""
  config = _config(workdir, str(tmp_path / 'both'))
  config.exemplar.transforms = ('translate',)
  config.capacity.kinds = ('translate',)
  both = evaluate.evaluate(config)
  config.random_init_arm, config.out = False, str(tmp_path / 'alone')
  alone = evaluate.evaluate(config)
  rows = lambda r: [r['classification'], *r['shift'].values(), *r['exemplar'].values(),
                    *[r['capacity'][g]['translate'] for g in ('alpha', 'radius', 'dimension')]]
  pairs = [(a[l], b[l]) for a, b in zip(rows(alone), rows(both)) for l in b]
  assert len(pairs) == 2 * (1 + 2 + 1 + 3)
  for a, b in pairs:
    assert a['pretrained']['values'] == pytest.approx(b['pretrained']['values'], rel=1e-5)
    assert a['random_init'] == {'n': 0, 'mean': None, 'std': None, 'values': []}
    assert a['difference'] is None and a['p'] is None and b['p'] is not None


def test_capacity_of_every_relu_output_and_the_projector(workdir, tmp_path, capsys):
  out = str(tmp_path / 'eval')
  config = _config(workdir, out)
  config.seeds, config.layers = 1, ('pooled',)  # The probes stay per stage.
  config.shift.enabled = config.exemplar.enabled = False
  config.capacity.kinds = ('translate',)
  config.capacity.layers = 'relus'
  config.capacity.project_dims = 128  # The stem and layer1 ReLUs (8x8x4 = 256) are projected.
  evaluate.run(config)
  with open(os.path.join(out, 'report.json')) as f:
    cap = json.load(f)['capacity']
  names = list(relu_names((8, 4)))  # The workdir's projector: one hidden ReLU, then the output.
  assert len(names) == 19 and cap['layers'] == 'relus'
  assert list(cap['width']) == names and list(cap['dims']) == names
  assert cap['width']['stem_relu'] == 256 and cap['dims']['stem_relu'] == 128
  assert cap['width']['layer2_block0_relu1'] == cap['dims']['layer2_block0_relu1'] == 4 * 4 * 8
  assert cap['dims']['projector_hidden0_relu'] == 8 and cap['dims']['projector_output'] == 4
  for metric in ('alpha', 'radius', 'dimension', 'center_corr'):
    assert list(cap[metric]['translate']) == names  # Network order.
    for c in cap[metric]['translate'].values():
      for arm in ('pretrained', 'random_init'):
        assert len(c[arm]['values']) == 1 and np.isfinite(c[arm]['values'][0])
  for c in cap['alpha']['translate'].values():
    assert all(0.3 < c[arm]['values'][0] <= 2.0 + 1e-3 for arm in ('pretrained', 'random_init'))
  with open(os.path.join(out, 'capacity_per_layer.png'), 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  table = capsys.readouterr().out
  assert 'layer3_block0_relu1' in table and 'projector_output' in table


def test_cli_reports_a_missing_workdir_in_one_line(tmp_path):
  proc = subprocess.run(
      [sys.executable, '-m', 'rwjax.evaluate', f'--config={_REPO}/configs/evaluate.py:digits',
       f'--config.workdir={tmp_path}/nothing'],
      capture_output=True, text=True, cwd=_REPO, timeout=300,
      env={**os.environ, 'JAX_PLATFORMS': 'cpu'})
  assert proc.returncode == 2
  lines = proc.stderr.strip().splitlines()
  assert lines[-1].startswith('error: ') and 'config.json' in lines[-1]
  assert 'Traceback' not in proc.stderr


@pytest.mark.parametrize('field, value, message', [
    ('kinds', ('translate', 'shear'), 'choose distinct kinds from'),
    ('kinds', ('class', 'class'), 'choose distinct kinds from'),
    ('kinds', (), 'choose distinct kinds from'),
    ('P', 1, 'config.capacity.P=1 must be an integer >= 2'),
    ('M', 0, 'config.capacity.M=0 must be an integer >= 1'),
    ('n_t', 0, 'config.capacity.n_t=0'),
    ('project_dims', 0, 'config.capacity.project_dims=0'),
    ('kappa', -0.5, 'config.capacity.kappa=-0.5 must be a finite number >= 0'),
    ('kappa', float('inf'), 'must be a finite number'),
    ('layers', 'relu', "config.capacity.layers='relu': use one of"),
])
def test_bad_capacity_settings_are_input_errors(tmp_path, field, value, message):
  config = _config(str(tmp_path), '')
  config.capacity[field] = value
  with pytest.raises(InputError, match=message):
    evaluate.validate(config)
  config.capacity.enabled = False  # Unused settings are not checked.
  evaluate.validate(config)
