"""report['paper'] in the PNG plots: paper_probes.png and paper_manifolds.png."""

import math
import os

import pytest

from rwjax.eval import report as report_lib
from rwjax.eval import stats

PNG = b'\x89PNG\r\n\x1a\n'
LAYERS = ('stem_relu', 'layer1_block0_relu1', 'pooled')


def _row(pre, rand):
  return stats.compare(list(pre), list(rand))


def _paper_block():
  probes = {}
  for t, task in enumerate(('invariance_translate', 'invariance_none', 'classification digits')):
    probes[task] = {l: {'paper_protocol': _row([0.5 + 0.1 * t + 0.01 * i, 0.52 + 0.1 * t],
                                               [0.3 + 0.01 * i, 0.31]),
                        'logistic': _row([0.6 + 0.01 * i, 0.62], [0.4, 0.41 + 0.01 * i])}
                    for i, l in enumerate(LAYERS)}
  manifolds = {}
  for k, kind in enumerate(('translate', 'class_digits')):
    manifolds[kind] = {
        l: {g: _row([1.0 + j + 0.1 * i + k, 1.2 + j], [0.5 + j, 0.6 + j + 0.1 * i])
            for j, g in enumerate(('alpha', 'radius', 'dimension', 'center_corr',
                                   'participation_ratio', 'pcs_90'))}
        for i, l in enumerate(LAYERS)}
  manifolds['translate']['pooled']['sim_alpha'] = _row([0.2, 0.25], [0.1, 0.12])
  return {'probes': probes, 'manifolds': manifolds, 'notes': []}


def _report(paper):
  return {'seeds': 2, 'statistics': {'unit': 'seed'}, 'paper': paper}


def _same(plotted, expected):
  assert len(plotted) == len(expected)
  for a, b in zip(plotted, expected):
    assert (math.isnan(a) and b is None) or a == pytest.approx(b)


def test_write_plots_the_paper_block(tmp_path):
  report = _report(_paper_block())
  paths = report_lib.write(report, str(tmp_path))
  for name in ('paper_probes.png', 'paper_manifolds.png'):
    path = os.path.join(tmp_path, name)
    assert path in paths
    with open(path, 'rb') as f:
      assert f.read(8) == PNG
    assert os.path.getsize(path) > 1000


def test_plotted_values_are_the_reports_means(tmp_path):
  report = _report(_paper_block())
  paper = report['paper']
  out = report_lib.plot_paper_probes(report, str(tmp_path / 'p.png'))
  assert set(out['series']) == set(paper['probes'])
  for task, layers in paper['probes'].items():
    assert out['layers'][task] == list(LAYERS)
    for measure in ('paper_protocol', 'logistic'):
      for arm in ('pretrained', 'random_init'):
        _same(out['series'][task][measure][arm],
              [layers[l][measure][arm]['mean'] for l in LAYERS])
  out = report_lib.plot_paper_manifolds(report, str(tmp_path / 'm.png'))
  assert set(out['series']) == set(paper['manifolds'])
  for kind, layers in paper['manifolds'].items():
    for measure in ('alpha', 'radius', 'dimension', 'participation_ratio'):
      for arm in ('pretrained', 'random_init'):
        _same(out['series'][kind][measure][arm],
              [layers[l][measure][arm]['mean'] for l in LAYERS])
  for name in ('p.png', 'm.png'):
    assert (tmp_path / name).read_bytes()[:8] == PNG


def test_missing_values_and_probes_are_left_out(tmp_path):
  paper = _paper_block()
  paper['probes']['invariance_none']['pooled'].pop('logistic')
  paper['manifolds']['translate']['stem_relu']['alpha']['pretrained']['mean'] = None
  report = _report(paper)
  out = report_lib.plot_paper_probes(report, str(tmp_path / 'p.png'))
  assert math.isnan(out['series']['invariance_none']['logistic']['pretrained'][-1])
  out = report_lib.plot_paper_manifolds(report, str(tmp_path / 'm.png'))
  assert math.isnan(out['series']['translate']['alpha']['pretrained'][0])


@pytest.mark.parametrize('paper', [None, {}, {'probes': {}, 'manifolds': {}, 'notes': []},
                                   'absent'])
def test_write_without_a_paper_block_writes_neither(tmp_path, paper):
  report = {'seeds': 2} if paper == 'absent' else _report(paper)
  paths = report_lib.write(report, str(tmp_path))
  assert paths == [os.path.join(tmp_path, 'report.json')]
  assert sorted(os.listdir(tmp_path)) == ['report.json']


def test_only_the_present_half_is_plotted(tmp_path):
  paper = _paper_block()
  paper['manifolds'] = {}
  paths = report_lib.write(_report(paper), str(tmp_path))
  assert [os.path.basename(p) for p in paths] == ['report.json', 'paper_probes.png']
