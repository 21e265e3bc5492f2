"""Whole-wave batches: the wave table, the budget rule, the split, epochs, controls, bad input."""

import numpy as np
import pytest

from rwjax.errors import InputError
from rwjax.ssl import wave_batches as wb

# Two rows of 8 frames. Row 0: wave 3 at t 1-2, wave 1 at t 4-6 (label 1 is smaller, but row 0's
# waves are ordered by label); row 1: label 3 again (a different wave: another row), with a
# one-frame gap (t 0, 1, 3), then label 4 at t 5-7.
LABELS = np.array([[-1, 3, 3, -1, 1, 1, 1, -1],
                   [3, 3, -1, 3, -1, 4, 4, 4]], np.int32)


def test_wave_table_lays_waves_end_to_end():
  table = wb.wave_table(LABELS)
  # By row, then label, then time; frame = row * 8 + t.
  np.testing.assert_array_equal(table.frame, [4, 5, 6, 1, 2, 8, 9, 11, 13, 14, 15])
  np.testing.assert_array_equal(table.wave, [0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 3])
  np.testing.assert_array_equal(table.start, [0, 3, 5, 8])
  np.testing.assert_array_equal(table.length, [3, 2, 3, 3])


def test_batches_close_once_they_exceed_the_budget():
  length = np.array([5, 3, 4, 6, 2])
  # 5 + 3 = 8 > 7 closes; 4 + 6 = 10 > 7 closes; 2 is left over.
  got = wb.plan_batches(length, np.array([0, 1, 2, 3, 4]), budget=7)
  assert [b.tolist() for b in got] == [[0, 1], [2, 3], [4]]
  got = wb.plan_batches(length, np.array([3, 4, 0, 1, 2]), budget=7)
  assert [b.tolist() for b in got] == [[3, 4], [0, 1], [2]]  # 6 + 2; 5 + 3; 4


def test_split_is_random_by_seed_and_disjoint():
  train, val = wb.split_waves(10, 0.2, seed=0)
  assert len(val) == 2 and len(train) == 8
  assert sorted(train.tolist() + val.tolist()) == list(range(10))
  np.testing.assert_array_equal(wb.split_waves(10, 0.2, seed=0)[1], val)
  assert len({tuple(wb.split_waves(10, 0.2, seed=s)[1]) for s in range(10)}) > 3
  assert len(wb.split_waves(10, 0.0, seed=0)[1]) == 0
  assert len(wb.split_waves(3, 0.34, seed=0)[0]) == 2  # int(1.02) = 1 held out


def _movie_labels(n_waves=12):
  """One row: waves of 2-6 frames separated by a quiet frame."""
  lengths = np.random.default_rng(0).integers(2, 7, n_waves)
  row = [f for w, n in enumerate(lengths) for f in [w] * n + [-1]]
  return np.array([row], np.int32), lengths


def _schedule(labels, **kw):
  return wb.make_schedule(labels, **{**dict(budget=30, val_fraction=0.2, seed=0, order='shuffled',
                                            temporal=None, n_devices=1), **kw})


def test_an_epoch_is_one_pass_over_whole_training_waves():
  labels, lengths = _movie_labels()
  s = _schedule(labels, budget=8, val_fraction=0.25, seed=1, n_devices=4)
  assert len(s.val) == 3 and len(s.train) == 9
  # At most budget + the longest wave, rounded up to the devices.
  assert s.capacity == 8 + lengths.max() + (-(8 + lengths.max())) % 4
  orders = []
  for e in range(3):
    plans = s.epoch(e)
    waves_seen = []
    for i, p in enumerate(plans):
      assert p.frame.shape == (s.capacity,)
      n = int(p.valid.sum())
      assert p.valid[:n].all() and not p.valid[n:].any()
      if i < len(plans) - 1:
        assert n > 8  # closed once over the budget
      # Valid slots are whole waves, each a run of consecutive table positions in time order.
      ids = p.wave_id[:n]
      batch_waves = list(dict.fromkeys(ids.tolist()))
      for w in batch_waves:
        idx = p.frame_idx[:n][ids == w]
        np.testing.assert_array_equal(idx, s.table.start[w] + np.arange(lengths[w]))
        np.testing.assert_array_equal(p.frame[:n][ids == w], s.table.frame[idx])
      waves_seen += batch_waves
      assert set(p.frame[n:].tolist()) <= set(p.frame[:n].tolist())
    assert sorted(waves_seen) == s.train.tolist()
    orders.append(waves_seen)
  assert orders[0] != orders[1] != orders[2]  # reshuffled every epoch
  assert s.steps(3) == sum(len(s.epoch(e)) for e in range(3))
  # The paper's order: time order, every epoch.
  t = s._replace(order='time')
  assert [w for p in t.epoch(1) for w in dict.fromkeys(p.wave_id[p.valid].tolist())] == \
      s.train.tolist()
  val_waves = {w for p in s.validation() for w in p.wave_id[p.valid].tolist()}
  assert val_waves == set(s.val.tolist())
  # Resuming: the plans from step k are those of a run that did k steps first.
  all_plans = [p for e in range(2) for p in s.epoch(e)]
  for want, (_, _, got) in zip(all_plans[3:], s.plans_from(3)):
    np.testing.assert_array_equal(got.frame, want.frame)


def test_temporal_controls_permute_the_frames_shown_within_the_split_or_the_wave():
  labels, _ = _movie_labels(n_waves=40)
  s = _schedule(labels, temporal='global')
  table = s.table
  wave_of_frame = {f: w for f, w in zip(table.frame, table.wave)}
  for split in (s.train, s.val):
    pos = np.concatenate([np.arange(table.start[w], table.start[w] + table.length[w])
                          for w in split])
    # A permutation of the split's own frames: frame content intact, nothing crosses the split.
    assert sorted(s.shown[pos].tolist()) == sorted(table.frame[pos].tolist())
  shown_wave = np.array([wave_of_frame[f] for f in s.shown])
  # Positions keep their wave label; what they show mostly comes from other waves.
  assert np.mean(shown_wave == table.wave) < 0.2
  # Neighbours in a wave (the positives) no longer show neighbouring frames.
  same = table.wave[1:] == table.wave[:-1]
  assert np.mean(np.abs(np.diff(s.shown))[same] == 1) < 0.2
  # 'within_wave' keeps each frame in its own wave (and does shuffle); no control shows each.
  s = _schedule(labels, temporal='within_wave')
  for w in range(len(table.start)):
    p = np.arange(table.start[w], table.start[w] + table.length[w])
    assert sorted(s.shown[p].tolist()) == table.frame[p].tolist()
  assert np.mean(s.shown != table.frame) > 0.4
  np.testing.assert_array_equal(_schedule(labels).shown, table.frame)


def test_an_unknown_wave_order_raises():
  with pytest.raises(InputError, match='wave_order'):
    _schedule(_movie_labels()[0], order='random')
