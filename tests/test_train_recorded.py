"""configs/pretrain_recorded.py: training on several recorded movie files; bad files refused
before the workdir is written."""

import json
import os
import runpy

import numpy as np
import pytest
import tifffile

from rwjax import checkpoint
from rwjax.errors import InputError
from rwjax.ssl import trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, 'configs', 'pretrain_recorded.py')
TINY = os.path.join(ROOT, 'tests', 'configs', 'tiny_pretrain.py')


def _recording(t, retina, seed):
  """Two expanding bright disks (tiny_pretrain.disk_movie's, starting at frames 2 and t // 2)
  on a noisy 32x32 background (uint16, like a camera)."""
  disks = runpy.run_path(TINY)['disk_movie'](t, (2, t // 2))[retina] == 0
  return (np.random.default_rng(seed).normal(500, 5, (t, 32, 32)) + 300 * disks).astype(np.uint16)


def _config(tmp_path):
  """configs/pretrain_recorded.py at the tiny sizes of tests/configs/tiny_pretrain.py."""
  c = runpy.run_path(CONFIG)['get_config']()
  c.model.update(width=4, projector=(16, 8), dtype='float32')
  c.data.update(input_size=16, wave_batch_frames=24)
  c.train.update(batch_pairs=16, steps=2, log_every=1, epochs=0)  # steps: whole-wave batches
  tifffile.imwrite(tmp_path / 'r1.tif', _recording(24, 0, 0))
  tifffile.imwrite(tmp_path / 'r2.tif', _recording(30, 1, 1))
  np.save(tmp_path / 'r1.npy', np.array([[2, 10], [12, 20]]))
  np.save(tmp_path / 'r2.npy', np.array([[2, 10], [15, 23]]))
  c.data.movie = f'{tmp_path}/r1.tif,{tmp_path}/r2.tif'
  c.data.recorded.intervals = f'{tmp_path}/r1.npy,{tmp_path}/r2.npy'
  return c


def test_pretrain_recorded_trains_on_several_files(tmp_path):
  c = _config(tmp_path)
  c.data.recorded.rotations = (90,)
  data = trainer.recorded_dataset(c)
  assert data.movie.shape == (4, 30, 16, 16) and list(data.lengths) == [24, 30, 24, 30]
  state = trainer.train(c, str(tmp_path / 'w'))
  assert int(state.step) == 2
  rows = [json.loads(l) for l in open(tmp_path / 'w' / 'metrics.jsonl')]
  assert [r['step'] for r in rows] == [1, 2]
  assert all(r['n_anchors'] > 0 and np.isfinite(r['loss']) for r in rows)
  # The dataset is sharded over the 8 devices (config.data.placement='auto'; whole-wave batches
  # keep their plan beside it): each holds its own part, together each wave frame once.
  file_state = state.source[0]
  held = np.asarray(file_state.labels)
  assert held.shape[0] == 8 * file_state.labels.addressable_shards[0].data.shape[0]
  assert (held >= 0).sum() == (data.labels >= 0).sum()
  assert len(np.unique(held[held >= 0])) == 8  # 4 rows x 2 waves
  # A recording damaged after the run started (found when the frames are read): one
  # clear error, and the run's checkpoints stay.
  bad = _recording(30, 1, 1).astype(np.float32)
  bad[7, 3, 3] = np.nan
  tifffile.imwrite(tmp_path / 'r2.tif', bad)
  c.train.steps = 4
  with pytest.raises(InputError, match=r"r2.tif' contains NaN or infinite values \(first in "
                     r'frame 7\)'):
    trainer.train(c, str(tmp_path / 'w'))
  assert checkpoint.latest_step(str(tmp_path / 'w')) == 2
  tifffile.imwrite(tmp_path / 'r2.tif', _recording(30, 1, 1))
  # Waves found with a threshold instead of interval files: the disks.
  c.data.recorded.intervals = ''
  c.data.threshold = 600.0
  found = trainer.recorded_dataset(c)
  np.testing.assert_array_equal(found.labels[0] >= 0, np.isin(np.arange(30), [*range(2, 10),
                                                                           *range(12, 20)]))


@pytest.mark.parametrize('change, message', [
    (lambda c, p: setattr(c.data, 'movie', f'{p}/r1.tif,{p}/missing.tif'),
     "missing.tif' does not exist"),
    (lambda c, p: (p / 'r2.tif').write_bytes((p / 'r2.tif').read_bytes()[:3000]),
     r"r2.tif' is not a readable TIFF file"),
    (lambda c, p: np.save(p / 'r2.npy', np.array([[2, 10], [8, 12]])), 'overlap'),
    (lambda c, p: np.save(p / 'r2.npy', np.array([[25, 31]])), 'falls outside'),
    (lambda c, p: setattr(c.data.recorded, 'key', 'V') or setattr(c.data, 'movie_format', 'mat'),
     'not a readable MATLAB file'),
    (lambda c, p: setattr(c.data, 'input_size', 12), 'cannot be block-pooled'),
    (lambda c, p: setattr(c.data.recorded, 'intervals', ''), 'need wave labels'),
    (lambda c, p: setattr(c.data, 'labels', f'{p}/r1.npy'), 'does not apply to recordings'),
    (lambda c, p: setattr(c.data.recorded, 'dff_window_s', 30.0),
     'set config.data.recorded.frame_dt'),
])
def test_bad_recordings_are_refused_before_anything_is_written(tmp_path, change, message):
  c = _config(tmp_path)
  change(c, tmp_path)
  with pytest.raises(InputError, match=message):
    trainer.train(c, str(tmp_path / 'w'))
  assert not os.path.exists(tmp_path / 'w')
