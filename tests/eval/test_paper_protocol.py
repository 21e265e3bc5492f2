"""The paper's protocol inside the evaluate binary: its config checks, its bad-input errors
before any network runs, and one tiny end-to-end run whose rows land in report['paper']."""

import os

import numpy as np
import pytest

from rwjax import defaults, evaluate, models
from rwjax.errors import InputError
from rwjax.eval import paper_protocol
from rwjax.eval import report as report_lib


def _config(workdir):
  c = defaults.evaluate_config('paper_digits')
  c.workdir, c.out, c.seeds = workdir, workdir + '/eval', 1
  # Today's tasks off: this test is about the paper's block.
  c.shift.enabled = c.exemplar.enabled = c.capacity.enabled = False
  c.layers = ('pooled',)
  c.data.max_train, c.data.max_test = 100, 60
  c.probe.steps, c.probe.l2_grid = 30, (1e-3, 1e-1)
  c.paper_tasks.per_class, c.paper_tasks.transforms = 30, ('translate',)
  c.paper_probe.layers, c.paper_probe.epochs = 'pooled,stem_relu', 2
  c.paper_probe.max_train, c.paper_probe.max_test = 100, 60
  c.paper_manifolds.layers = 'stem_relu,projector_output'
  c.paper_manifolds.exemplar_p, c.paper_manifolds.exemplar_m = 3, 4
  # Equal shapes for both kinds and layers (64 dims, M = 4): one compiled analysis.
  c.paper_manifolds.classes.digits.p, c.paper_manifolds.classes.digits.m = 3, 4
  c.paper_manifolds.simulate = False  # tests/eval/test_paper.py covers it
  c.paper_manifolds.n_t, c.paper_manifolds.project_dims, c.paper_manifolds.sim_trials = 20, 64, 2
  return c


def test_bad_paper_config_and_inputs_fail_before_any_network_runs(workdir):
  c = _config(workdir)
  c.paper_manifolds.kinds = ('translate', 'rotation')
  with pytest.raises(InputError, match="kinds=.*'rotation'"):
    evaluate.validate(c)
  c = _config(workdir)
  c.paper_manifolds.class_selection = 'best'
  with pytest.raises(InputError, match='class_selection'):
    evaluate.validate(c)
  model = models.create_model(stem='cifar', width=4, projector=(8, 4), dtype='float32',
                              channels=1)
  pre = defaults.smoke_pretrain_config()
  never = lambda arm, seed: pytest.fail('no network may run before the inputs are checked')
  c = _config(workdir)
  c.paper_tasks.classes = ('0', '1', 'eleven')
  with pytest.raises(InputError, match=r"unknown class name.*'eleven'"):
    paper_protocol.prepare(c, model, pre, never, 8, 1)
  c = _config(workdir)
  c.paper_manifolds.classes.digits.m = 500  # digits has ~50 test images per class
  with pytest.raises(InputError, match='a manifold of M=500 needs more'):
    paper_protocol.prepare(c, model, pre, never, 8, 1)
  c = _config(workdir)
  c.paper_manifolds.exemplar_p = 501  # the digits test split holds 500
  with pytest.raises(InputError, match='501 exemplar manifolds need 501 source images'):
    paper_protocol.prepare(c, model, pre, never, 8, 1)
  c = _config(workdir)
  c.paper_manifolds.classes.digits.ranked = ''
  c.paper_manifolds.class_selection = 'ranked'
  with pytest.raises(InputError, match="ranked only 'cifar10' and 'cifar100'"):
    paper_protocol.prepare(c, model, pre, never, 8, 1)


def test_paper_rows_in_the_report(workdir, tmp_path):
  config = _config(workdir)
  config.paper_probe.classification = ()  # the invariance task alone
  report = evaluate.evaluate(config)
  paper = report['paper']
  assert set(paper['probes']) == {'invariance_translate'}
  row = paper['probes']['invariance_translate']['stem_relu']
  assert set(row) == {'paper_protocol', 'logistic'}
  assert len(row['paper_protocol']['pretrained']['values']) == 1  # one per seed
  assert all(0 <= v <= 1 for v in row['paper_protocol']['random_init']['values'])
  assert 'best test accuracy over epochs' in paper['protocol']
  assert set(paper['manifolds']) == {'translate', 'class_digits'}
  layer = paper['manifolds']['class_digits']['projector_output']
  assert {'alpha', 'radius', 'dimension', 'center_corr', 'participation_ratio',
          'pcs_90'} == set(layer)
  assert paper['manifold_layers'] == ['stem_relu', 'projector_output']
  assert any('digits in place' in n for n in paper['notes'])
  assert report['timing']['paper_s'] > 0
  printed = paper_protocol.table(paper)
  assert 'paper protocol' in printed and 'logistic' in printed and 'class_digits' in printed
  # The PNG plots of the block (tests/eval/test_report_paper.py checks their values).
  written = [os.path.basename(p) for p in report_lib.write(report, str(tmp_path))]
  assert {'paper_probes.png', 'paper_manifolds.png'} <= set(written)
  for name in ('paper_probes.png', 'paper_manifolds.png'):
    assert (tmp_path / name).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_wave_manifolds_come_from_a_movie_and_its_labels(workdir, tmp_path):
  rng = np.random.default_rng(0)
  movie = rng.normal(size=(130, 16, 16)).astype(np.float32)
  labels = np.full(130, -1, np.int32)
  labels[5:60], labels[60:70], labels[70:130] = 0, 1, 2  # 55, 10 and 60 frames
  np.save(tmp_path / 'movie.npy', movie)
  np.save(tmp_path / 'labels.npy', labels)
  c = _config(workdir)
  c.paper_manifolds.wave_movie = str(tmp_path / 'movie.npy')
  c.paper_manifolds.wave_labels = str(tmp_path / 'labels.npy')
  frames, index, path = paper_protocol._wave_images(c, defaults.smoke_pretrain_config(), 8, 1)
  assert frames.shape == (130, 8, 8, 1) and path.endswith('movie.npy')
  assert [len(i) for i in index] == [55, 60]  # the 10-frame wave is too short
  assert float(frames.min()) >= 0 and float(frames.max()) <= 1
  c.paper_manifolds.wave_movie = c.paper_manifolds.wave_labels = ''
  assert paper_protocol._wave_images(c, defaults.smoke_pretrain_config(), 8, 1) is None
