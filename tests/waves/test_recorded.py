"""rwjax.waves.recorded: MEA spike files -> activity movies -> wave statistics, bad files."""

import json

import h5py
import numpy as np
import pytest

from rwjax.errors import InputError
from rwjax.waves import recorded, stats
from rwjax.waves.__main__ import main

PITCH_UM = 42.0


def planar_wave_file(path, speed_mm_s=0.1, one_based=False, spikes_per_burst=6):
  """Every electrode of the 64x64 array bursts (6 spikes over 0.6 s) when a planar front,
  moving along the columns at `speed_mm_s`, passes it."""
  rows, cols = np.meshgrid(np.arange(64), np.arange(64), indexing='ij')
  rows, cols = rows.ravel(), cols.ravel()
  onset = 1.0 + cols * recorded.PITCH_MM / speed_mm_s
  times = onset[:, None] + np.linspace(0.0, 0.6, spikes_per_burst)[None]
  epos = np.stack([rows, cols]).astype(np.float64) + (1 if one_based else 0)
  with h5py.File(path, 'w') as f:
    f['epos'] = epos * PITCH_UM
    f['sCount'] = np.full(rows.size, spikes_per_burst, np.int32)
    f['spikes'] = times.ravel()
    f['summary/duration'] = np.array([onset.max() + 3.0])
    f['meta/age'] = np.array([5], np.int32)
  return path


def test_a_planar_front_is_one_wave_at_its_speed(tmp_path):
  rec = recorded.load_mea(str(planar_wave_file(tmp_path / 'w.h5')))
  assert rec.age_days == 5 and rec.times.size == 64 * 64 * 6
  counts = recorded.spike_counts(rec)
  assert counts.sum() == rec.times.size and counts.shape[1:] == (64, 64)
  movie = recorded.activity_movie(rec)
  s = stats.summary(stats.wave_stats(movie, threshold=recorded.THRESHOLD, frame_dt=0.1,
                                     pixel_mm=recorded.PITCH_MM))
  assert s['n_waves'] == 1 and s['coverage'] == 1.0
  assert s['speed_mm_s_median'] == pytest.approx(0.1, rel=0.1)


def test_one_based_positions_give_the_same_movie(tmp_path):
  zero = recorded.load_mea(str(planar_wave_file(tmp_path / 'a.h5')))
  one = recorded.load_mea(str(planar_wave_file(tmp_path / 'b.h5', one_based=True)))
  np.testing.assert_array_equal(recorded.spike_counts(zero), recorded.spike_counts(one))


def test_convert_then_stats(tmp_path, capsys):
  src = planar_wave_file(tmp_path / 'w.h5', speed_mm_s=0.2)
  main(['convert', f'--mea={src}', f'--out={tmp_path / "out"}', '--gif-seconds=5'])
  movie = np.load(tmp_path / 'out' / 'movie.npy')
  meta = json.loads((tmp_path / 'out' / 'meta.json').read_text())
  assert movie.dtype == np.float32 and movie.shape[0] == 1 and movie.shape[2:] == (64, 64)
  assert meta['model'] == 'recorded' and meta['threshold'] == recorded.THRESHOLD
  assert (tmp_path / 'out' / 'preview.gif').exists()
  capsys.readouterr()
  main(['stats', f'--movie={tmp_path / "out"}', '--json'])
  s = json.loads(capsys.readouterr().out)
  assert s['n_waves'] == 1 and s['speed_mm_s_median'] == pytest.approx(0.2, rel=0.1)


def _rewrite(path, **changes):
  with h5py.File(path, 'a') as f:
    for key, value in changes.items():
      del f[key]
      if value is not None:
        f[key] = value


@pytest.mark.parametrize('change, message', [
    (dict(spikes=None), r"no \['spikes'\] dataset"),
    (dict(sCount=np.full(4096, 5, np.int32)), 'sCount sums to 20480 but there are 24576'),
    (dict(epos=np.zeros((2, 3))), r'epos has shape \(2, 3\)'),
    (dict(epos=np.full((2, 4096), 65 * PITCH_UM)), 'not on the 64x64 grid'),
    (dict(epos=np.full((2, 4096), 10.0)), 'not on the 64x64 grid'),
    (dict(sCount=np.zeros(0, np.int32)), 'no channels'),
    (dict(spikes=np.array([b'x'] * 24576)), 'must be numeric arrays'),
])
def test_malformed_files_are_input_errors(tmp_path, change, message):
  path = planar_wave_file(tmp_path / 'w.h5')
  _rewrite(path, **change)
  with pytest.raises(InputError, match=message):
    recorded.load_mea(str(path))


def test_missing_or_non_hdf5_files(tmp_path):
  with pytest.raises(InputError, match='does not exist'):
    recorded.load_mea(str(tmp_path / 'nope.h5'))
  (tmp_path / 'text.h5').write_text('not hdf5')
  with pytest.raises(InputError, match='not a readable HDF5 file'):
    recorded.load_mea(str(tmp_path / 'text.h5'))
