"""The online monitor: the weighted k-NN classifier and its records as the trainer's hook."""

import os
import runpy

import numpy as np
import pytest

from rwjax import metrics
from rwjax.errors import InputError
from rwjax.eval import monitor
from rwjax.ssl import trainer

TINY = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'configs', 'tiny_pretrain.py')


def test_knn_votes_are_weighted_by_exp_similarity_over_temperature():
  # One test point; its 3 nearest train points (cosine) are labels 0, 1, 1 at angles 0.1,
  # 0.5, 0.6 rad; a far point of label 2 is not among them.
  angles = np.array([0.1, 0.5, 0.6, 3.0])
  train_x = np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32) * [[1], [3], [2], [5]]
  train_y = np.array([0, 1, 1, 2], np.int32)
  test_x, test_y = np.array([[1.0, 0.0]], np.float32), np.array([0], np.int32)
  # Votes, by hand: class 0 exp(cos 0.1 / T); class 1 exp(cos 0.5 / T) + exp(cos 0.6 / T).
  # T = 0.07: 1.49e6 vs 2.78e5 + 1.32e5 -> class 0. T = 10: 1.105 vs 2.18 -> class 1.
  acc = lambda t: float(monitor.knn_accuracy(train_x, train_y, test_x, test_y, num_classes=3,
                                             k=3, temperature=t))
  assert acc(0.07) == 1.0 and acc(10.0) == 0.0
  # k = 1: the nearest neighbour alone (label 0) whatever the temperature.
  assert float(monitor.knn_accuracy(train_x, train_y, test_x, test_y, num_classes=3, k=1,
                                    temperature=10.0)) == 1.0


def test_trainer_logs_monitor_accuracies_for_the_network_and_its_init_and_bad_settings_fail(
    tmp_path):
  c = runpy.run_path(TINY)['get_config']()
  c.train.steps, c.train.log_every, c.train.monitor_every = 4, 1, 2
  c.monitor.max_train, c.monitor.max_test, c.monitor.probe_steps = 300, 200, 30
  c.monitor.batch_size = 100  # one compiled feature step for both splits
  trainer.train(c, str(tmp_path), hooks=monitor.hooks(c))
  rows = metrics.read_metrics(str(tmp_path))
  with_monitor = [r for r in rows if 'monitor/knn_acc' in r]
  assert [r['step'] for r in with_monitor] == [2, 4]
  for r in with_monitor:
    for k in ('knn_acc', 'probe_acc', 'knn_acc_init', 'probe_acc_init'):
      assert 0.0 <= r[f'monitor/{k}'] <= 1.0
  # The initial network is measured once; its features already separate digits far above
  # chance (0.1), which a features/labels mix-up would not.
  assert with_monitor[0]['monitor/knn_acc_init'] == with_monitor[1]['monitor/knn_acc_init']
  assert with_monitor[0]['monitor/knn_acc_init'] > 0.3
  assert with_monitor[0]['monitor/probe_acc_init'] > 0.3
  c = runpy.run_path(TINY)['get_config']()
  c.train.monitor_every, c.monitor.source = 2, 'imagenet'
  with pytest.raises(InputError, match="monitor.source='imagenet' is unknown"):
    monitor.hooks(c)
  c.monitor.source, c.train.monitor_every = 'digits', -1
  with pytest.raises(InputError, match='monitor_every=-1 must be an integer >= 0'):
    trainer.train(c, str(tmp_path / 'w'), hooks=monitor.hooks(c))
  assert not os.path.exists(tmp_path / 'w')
  c.monitor.source, c.train.monitor_every = 'imagenet', 0  # off: its settings are not read
  assert monitor.hooks(c) == ()
