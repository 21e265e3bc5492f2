"""rwjax.waves.recorded: MEA spike files -> activity movies -> wave statistics, bad files."""

import json

import h5py
import numpy as np
import pytest

import mea_files  # tests/waves/mea_files.py (on the path: conftest.py)
from rwjax.errors import InputError
from rwjax.waves import recorded, stats
from rwjax.waves.cli import main

write_mea, front_trains = mea_files.write_mea, mea_files.front_trains


def test_a_planar_front_is_one_wave_at_its_speed_from_0_or_1_based_positions(tmp_path, capsys):
  # The 64x64 array (42 um) crossed 1 s in by one planar front at 0.1 mm/s.
  front = dict(size=64, speed_mm_s=0.1, starts=(1.0,), duration=4.0 + 63 * 0.042 / 0.1, age=5)
  src = mea_files.fronts_file(tmp_path / 'w.h5', **front)
  rec = recorded.load_mea(str(src))
  assert rec.age_days == 5 and rec.times.size == 64 * 64 * 6
  counts = recorded.spike_counts(rec)
  assert counts.sum() == rec.times.size and counts.shape[1:] == (64, 64)
  main(['convert', f'--mea={src}', f'--out={tmp_path / "out"}', '--gif-seconds=5'])
  movie = np.load(tmp_path / 'out' / 'movie.npy')
  meta = json.loads((tmp_path / 'out' / 'meta.json').read_text())
  assert movie.dtype == np.float32 and movie.shape == (1, *counts.shape)
  np.testing.assert_array_equal(movie[0], recorded.activity_movie(rec))
  assert meta['model'] == 'recorded' and meta['threshold'] == recorded.THRESHOLD
  assert meta['pixel_mm'] == recorded.PITCH_MM and (tmp_path / 'out' / 'preview.gif').exists()
  capsys.readouterr()
  main(['stats', f'--movie={tmp_path / "out"}', '--json'])
  s = json.loads(capsys.readouterr().out)
  assert s['n_waves'] == 1 and s['coverage'] == 1.0
  assert s['speed_mm_s_median'] == pytest.approx(0.1, rel=0.1)
  one = recorded.load_mea(str(mea_files.fronts_file(tmp_path / 'b.h5', shift_um=42.0, **front)))
  np.testing.assert_array_equal(recorded.spike_counts(one), counts)


def test_an_mcs_8x8_grid_with_corners_missing_and_positions_off_it(tmp_path):
  pos = mea_files.mcs_8x8()
  trains, duration = front_trains(pos, 0.4)
  rec = recorded.load_mea(str(write_mea(tmp_path / 'm.h5', pos, trains, duration=duration,
                                        age=6, array='MCS_8x8_200um')))
  assert rec.shape == (8, 8) and rec.pitch_mm == 0.2 and rec.layout == 'square'
  assert rec.age_days == 6 and rec.array == 'MCS_8x8_200um'
  counts = recorded.spike_counts(rec).sum(0)
  want = np.full((8, 8), 6.0)
  want[[0, 0, 7, 7], [0, 7, 0, 7]] = 0  # the missing corners; x is the column
  np.testing.assert_array_equal(counts, want)
  # The electrode at (x, y) = (600, 400) um, 1-based site (3, 2), is row 1, column 2.
  k = int(np.flatnonzero((pos[:, 0] == 600) & (pos[:, 1] == 400))[0])
  assert (rec.row[k], rec.col[k]) == (1, 2)
  path = write_mea(tmp_path / 'off.h5', pos + 37.0, trains, array='MCS_8x8_200um')
  with pytest.raises(InputError, match='not on the 8x8 grid of 200 um'):
    recorded.load_mea(str(path))


def test_a_front_on_a_hexagonal_array_keeps_its_speed_and_area(tmp_path):
  pos = mea_files.hexagonal(18, 20)  # 360 electrodes, 60 um apart
  trains, duration = front_trains(pos, 0.1)
  path = write_mea(tmp_path / 'h.h5', pos, trains, duration=duration, array='litke_hex_60um')
  rec = recorded.load_mea(str(path))
  assert rec.layout == 'resampled' and rec.pitch_mm == pytest.approx(0.03)
  # Voronoi resampling: each pixel inside shows its nearest electrode (brute force here).
  h, w = rec.shape
  ys, xs = np.nonzero(rec.pixel_train >= 0)
  lo = pos.min(0) - 30.0
  centres = np.stack([xs, ys], 1) * 30.0 + lo
  d2 = ((centres[:, None] - pos[None]) ** 2).sum(-1)  # [pixels, electrodes]
  got = d2[np.arange(ys.size), rec.pixel_train[ys, xs]]
  np.testing.assert_allclose(got, d2.min(1), atol=1e-6)  # (ties between electrodes: either)
  assert np.sqrt(d2.min(1)).max() <= 0.6 * 60.0 + 1e-9
  s = stats.summary(stats.wave_stats(recorded.activity_movie(rec), threshold=recorded.THRESHOLD,
                                     frame_dt=0.1, pixel_mm=rec.pitch_mm))
  assert s['n_waves'] == 1
  assert s['speed_mm_s_median'] == pytest.approx(0.1, rel=0.15)
  # The wave covers the array: its bounding box padded by half a spacing, give or take
  # the box-average's reach at the border (one pixel of 30 um).
  width, height = np.ptp(pos, 0) + 60.0
  assert s['area_mm2_median'] == pytest.approx(width * height / 1e6, rel=0.15)
  # Without the array name the layout is recognised as not square all the same.
  path2 = write_mea(tmp_path / 'h2.h5', pos, trains, duration=duration)
  rec2 = recorded.load_mea(str(path2))
  assert rec2.layout == 'resampled' and rec2.pitch_mm == pytest.approx(0.03, rel=1e-4)


def test_layout_quirks_transposed_scalars_offset_times_shared_electrodes(tmp_path):
  pos = mea_files.mcs_8x8(100.0)
  trains, duration = front_trains(pos, 0.3)
  ref = recorded.load_mea(str(write_mea(tmp_path / 'a.h5', pos, trains, duration=duration)))
  # [N, 2] instead of R's [2, N], plain scalars instead of 1-element arrays.
  plain = recorded.load_mea(str(write_mea(tmp_path / 'b.h5', pos, trains, duration=duration,
                                          transposed=False, scalars_as_arrays=False)))
  np.testing.assert_array_equal(recorded.spike_counts(ref), recorded.spike_counts(plain))
  # Spike times starting at 1000 s (beyond the stated duration): shifted to start at 0.
  late = recorded.load_mea(str(write_mea(tmp_path / 'c.h5', pos,
                                         [t + 999.0 for t in trains], duration=duration)))
  assert late.times.min() == pytest.approx(0.0) and late.duration_s == duration
  # ...so its movie is the reference's 1 s (10 frames) earlier (the first spike was at 1 s).
  np.testing.assert_array_equal(recorded.spike_counts(late)[:50],
                                recorded.spike_counts(ref)[10:60])
  # No duration stored: it lasts from the first to the last spike.
  bare = recorded.load_mea(str(write_mea(tmp_path / 'd.h5', pos, trains)))
  assert bare.duration_s == pytest.approx(max(map(max, trains)) - min(map(min, trains)))
  # Two units (spike-sorted trains) at one electrode: their spikes add up there.
  two = recorded.load_mea(str(write_mea(tmp_path / 'e.h5', np.vstack([pos, pos[:1]]),
                                        trains + [trains[0]], duration=duration)))
  counts = recorded.spike_counts(two).sum(0)
  assert counts[two.row[0], two.col[0]] == 12 and two.electrode[0] == two.electrode[-1]


@pytest.mark.parametrize('change, message', [
    (dict(sCount=None), r"no \['sCount'\] dataset"),
    (dict(epos=None), r"no \['epos'\] dataset"),
    (dict(spikes=None), r"no \['spikes'\] dataset"),
    (dict(sCount=np.array([-1] + [6] * 58 + [6 * 2 + 1], np.int32)), r'sCount\[0\] = -1'),
    (dict(sCount=np.full(60, 5, np.int32)), 'sCount sums to 300 but there are 360'),
    (dict(sCount=np.zeros(0, np.int32)), 'no channels'),
    (dict(spikes=np.where(np.arange(360) == 7, np.nan, 1.0)), '1 spike time.s. are NaN'),
    (dict(spikes=np.where(np.arange(360) == 7, np.inf, 1.0)), 'NaN or infinite'),
    (dict(spikes=np.array([b'x'] * 360)), 'must be numeric arrays'),
    (dict(epos=np.zeros((3, 60))), r'epos has shape \(3, 60\)'),
    (dict(epos=np.full((2, 60), 400.0)), 'sit at one electrode position'),
    (dict(epos=np.full((2, 60), np.nan)), 'positions .epos. must be finite'),
])
def test_malformed_files_are_input_errors(tmp_path, change, message):
  pos = mea_files.mcs_8x8()
  trains, duration = front_trains(pos, 0.4)
  path = write_mea(tmp_path / 'm.h5', pos, trains, duration=duration)
  with h5py.File(path, 'a') as f:
    for key, value in change.items():
      del f[key]
      if value is not None:
        f[key] = value
  with pytest.raises(InputError, match=message):
    recorded.load_mea(str(path))
