"""waves.dataset: the paper's preprocessing of recordings, streamed; interval and found labels."""

import jax.numpy as jnp
import numpy as np
import pytest
import tifffile
from scipy import ndimage

from rwjax.errors import InputError
from rwjax.waves import dataset, readers, stats
from rwjax.waves.frames import to_network_input


def _recording(t, size=16, seed=0):
  """Fluorescence-like frames: per-pixel baseline and gain, noise, and bright blobs."""
  rng = np.random.default_rng(seed)
  base = rng.uniform(100, 200, (1, size, size))
  gain = rng.uniform(0.5, 2.0, (1, size, size))
  x = base + gain * rng.normal(0, 1, (t, size, size))
  x[t // 3:t // 3 + 4, 2:9, 3:12] += 40
  return x.astype(np.float32)


def test_streamed_preprocessing_is_to_network_input_of_the_whole_movie(tmp_path):
  x = _recording(100)
  np.save(tmp_path / 'r.npy', x)
  ds = dataset.load_dataset(str(tmp_path / 'r.npy'), out_size=4, minmax='recording',
                            rotations=(), threshold=1e9, chunk_frames=7)
  want = np.asarray(to_network_input(jnp.asarray(x), 4))[..., 0]
  np.testing.assert_allclose(ds.movie[0], want, atol=2e-6)
  assert ds.movie.shape == (1, 100, 4, 4) and ds.labels.shape == (1, 100)
  with readers.open_movie(str(tmp_path / 'r.npy')) as movie:
    spans = []
    read = movie.read
    movie.read = lambda t0=0, t1=None: spans.append((t0, t1)) or read(t0, t1)
    pooled, lo, hi = dataset.prepare_recording(movie, 4, chunk_frames=16)
  # Two passes (moments, then z-scores), 7 chunks each, none longer than 16 frames.
  assert len(spans) == 14 and max(t1 - t0 for t0, t1 in spans) == 16
  np.testing.assert_allclose((pooled - lo) / (hi - lo), want, atol=2e-6)


def test_the_paper_s_rotations_zscore_minmax_and_pooling(tmp_path):
  a, b = _recording(30, seed=1), _recording(30, seed=2) * 3 + 50
  tifffile.imwrite(tmp_path / 'a.tif', a)
  tifffile.imwrite(tmp_path / 'b.tif', b)
  ds = dataset.load_dataset(str(tmp_path), out_size=4, rotations=(90, 180, 270),
                            threshold=1e9, chunk_frames=8)
  # The paper's order from its equations (src/data.py): rotate the raw frames, z-score each
  # pixel over time (here per recording), min-max over everything, then block means.
  copies = [np.rot90(m.astype(np.float64), k, axes=(1, 2)) for k in range(4) for m in (a, b)]
  z = [(c - c.mean(0)) / c.std(0) for c in copies]
  lo, hi = min(c.min() for c in z), max(c.max() for c in z)
  want = [((c - lo) / (hi - lo)).reshape(30, 4, 4, 4, 4).mean((2, 4)) for c in z]
  assert ds.movie.shape == (8, 30, 4, 4)
  assert ds.rotation == [0, 0, 90, 90, 180, 180, 270, 270]
  assert ds.paths == [str(tmp_path / 'a.tif'), str(tmp_path / 'b.tif')] * 4
  for row, ref in zip(ds.movie, want):
    np.testing.assert_allclose(row, ref, atol=1e-5)
  assert ds.movie.min() >= 0.0 and ds.movie.max() <= 1.0


def test_paper_norm_pools_then_zscores_and_minmaxes_every_row_at_once(tmp_path):
  """norm='paper' on recordings of different lengths with rotated copies, against the
  paper's equations (src/data.py: one StandardScaler over the concatenation of every
  recording and rotated copy, then one min-max over it), on block means first."""
  a, b = _recording(30, seed=1), _recording(20, seed=2) * 3 + 50
  np.save(tmp_path / 'a.npy', a)
  np.save(tmp_path / 'b.npy', b)
  ds = dataset.load_dataset(f'{tmp_path}/a.npy,{tmp_path}/b.npy', out_size=4,
                            rotations=(90, 270), threshold=1e9, chunk_frames=8, norm='paper')
  pooled = [m.astype(np.float64).reshape(len(m), 4, 4, 4, 4).mean((2, 4)) for m in (a, b)]
  copies = [np.rot90(m, k, axes=(1, 2)) for k in (0, 1, 3) for m in pooled]
  joined = np.concatenate(copies).reshape(-1, 16)  # [frames, pixels], as the paper's
  z = (joined - joined.mean(0)) / joined.std(0)
  unit = ((z - z.min()) / (z.max() - z.min())).reshape(-1, 4, 4)
  want = np.split(unit, np.cumsum([len(c) for c in copies])[:-1])
  assert ds.movie.shape == (6, 30, 4, 4) and list(ds.lengths) == [30, 20] * 3
  for row, n, ref in zip(ds.movie, ds.lengths, want):
    np.testing.assert_allclose(row[:n], ref, atol=2e-5)
    assert (row[n:] == 0).all()  # padding untouched
  # One recording without rotations: the saved-movie path's transform.
  one = dataset.load_dataset(f'{tmp_path}/a.npy', out_size=4, rotations=(), threshold=1e9,
                             norm='paper')
  np.testing.assert_allclose(
      one.movie[0], np.asarray(to_network_input(jnp.asarray(a), 4, 1, 'paper'))[..., 0],
      atol=2e-5)


def test_recordings_of_different_length_are_padded_with_unlabelled_frames(tmp_path):
  np.save(tmp_path / 'long.npy', _recording(40))
  np.save(tmp_path / 'short.npy', _recording(25))
  np.save(tmp_path / 'long_iv.npy', np.array([[5, 9], [20, 31]]))
  np.savetxt(tmp_path / 'short_iv.csv', np.array([[0, 3], [24, 25]]), delimiter=',', fmt='%d')
  ds = dataset.load_dataset(f'{tmp_path}/long.npy,{tmp_path}/short.npy', out_size=8,
                            rotations=(180,),
                            intervals=f'{tmp_path}/long_iv.npy,{tmp_path}/short_iv.csv')
  assert ds.movie.shape == (4, 40, 8, 8) and list(ds.lengths) == [40, 25, 40, 25]
  want_long = np.full(40, -1)
  want_long[5:9], want_long[20:31] = 0, 1
  want_short = np.full(40, -1)
  want_short[0:3], want_short[24] = 0, 1
  np.testing.assert_array_equal(ds.labels, [want_long, want_short] * 2)
  assert (ds.movie[1, 25:] == 0).all() and (ds.movie[3, 25:] == 0).all()
  np.testing.assert_allclose(ds.movie[2], np.rot90(ds.movie[0], 2, axes=(1, 2)))


def test_one_interval_file_counts_frames_over_the_recordings_in_order(tmp_path):
  for name, t in (('a.npy', 20), ('b.npy', 30)):
    np.save(tmp_path / name, _recording(t))
  (tmp_path / 'all.txt').write_text('2 5\n20 24\n45 50\n')
  ds = dataset.load_dataset(str(tmp_path), out_size=8, rotations=(),
                            intervals=str(tmp_path / 'all.txt'))
  assert np.nonzero(ds.labels[0] >= 0)[0].tolist() == [2, 3, 4]
  np.testing.assert_array_equal(np.nonzero(ds.labels[1] >= 0)[0], [0, 1, 2, 3, 25, 26, 27, 28, 29])
  assert ds.labels[1, 0] == 0 and ds.labels[1, 29] == 1  # ids per recording
  (tmp_path / 'cross.txt').write_text('18 22\n')
  with pytest.raises(InputError, match=r'\[18, 22\) crosses from recording 0 into the next'):
    dataset.load_dataset(str(tmp_path), out_size=8, intervals=str(tmp_path / 'cross.txt'))


@pytest.mark.parametrize('content, message', [
    ('0 5\n4 8\n', r'intervals \[0, 5\) and \[4, 8\) overlap'),
    ('10 21\n', r'\[10, 21\) falls outside the movie\'s 20 frames'),
    ('-1 3\n', r'\[-1, 3\) falls outside')])
def test_bad_intervals_name_the_file_and_the_interval(tmp_path, content, message):
  np.save(tmp_path / 'r.npy', _recording(20))
  (tmp_path / 'iv.txt').write_text(content)
  with pytest.raises(InputError, match=message) as e:
    dataset.load_dataset(str(tmp_path / 'r.npy'), out_size=8, intervals=str(tmp_path / 'iv.txt'))
  assert str(tmp_path / 'iv.txt') in str(e.value)


def test_bad_movies_in_a_dataset(tmp_path):
  x = _recording(20)
  ok = str(tmp_path / 'ok.npy')
  np.save(ok, x)
  np.save(tmp_path / 'const.npy', np.full((20, 16, 16), 7.0, np.float32))
  x[13, 0, 0] = np.inf
  np.save(tmp_path / 'inf.npy', x)
  for movies, kwargs, message in [
      (f'{ok},{tmp_path}/const.npy', dict(threshold=0.), r"const.npy' is constant"),
      (f'{tmp_path}/inf.npy', dict(threshold=0., chunk_frames=4),
       r"inf.npy' contains NaN or infinite values \(first in frame 13\)"),
      (ok, dict(out_size=5, threshold=0.), 'cannot be block-pooled to 5x5'),
      (ok, {}, 'need wave labels'),
      (ok, dict(intervals='a.npy,b.npy'), '2 interval files for 1 movies'),
      (ok, dict(threshold=0., dff_window_s=5.0), 'set the frame interval frame_dt'),
  ]:
    with pytest.raises(InputError, match=message):
      dataset.load_dataset(movies, **{'out_size': 8, **kwargs})


def test_rolling_median_is_exact_for_short_windows_and_follows_a_linear_drift():
  rng = np.random.default_rng(3)
  x = rng.normal(0, 1, (60, 3, 3)).astype(np.float32)
  read = lambda a, b: x[a:b]
  full = dataset.rolling_median(read, 60, 0, 60, 7)  # window < 10: one median per frame
  want = ndimage.median_filter(x, size=(7, 1, 1), mode='nearest')
  np.testing.assert_allclose(full[3:-3], want[3:-3], atol=1e-6)  # edges: truncated windows
  chunked = np.concatenate([dataset.rolling_median(read, 60, t0, min(60, t0 + 11), 7)
                            for t0 in range(0, 60, 11)])
  np.testing.assert_array_equal(chunked, full)
  # A long window is sampled at anchors and interpolated: a linear drift (the median of a
  # symmetric window of a line is its centre) is followed exactly away from the ends.
  t = np.arange(400, dtype=np.float32)
  ramp = np.broadcast_to((5 + 0.1 * t)[:, None, None], (400, 2, 2)).copy()
  drift = dataset.rolling_median(lambda a, b: ramp[a:b], 400, 0, 400, 101)
  np.testing.assert_allclose(drift[60:-60], ramp[60:-60], rtol=1e-5)
  # The anchors of the whole recording, computed once, give every chunk the same values.
  anchors = dataset.median_anchors(lambda a, b: ramp[a:b], 400, 101)
  for t0, t1 in ((0, 37), (37, 250), (250, 400)):
    np.testing.assert_array_equal(
        dataset.rolling_median(lambda a, b: ramp[a:b], 400, t0, t1, 101, anchors), drift[t0:t1])


def test_dff_removes_a_slow_baseline(tmp_path):
  t = np.arange(300, dtype=np.float32)
  baseline = (100 + 0.2 * t)[:, None, None] * np.ones((1, 8, 8), np.float32)
  signal = np.zeros((300, 8, 8), np.float32)
  signal[140:146, 2:6, 2:6] = 0.5  # a transient of dF/F = 0.5
  np.save(tmp_path / 'f.npy', baseline * (1 + signal))
  ds = dataset.load_dataset(str(tmp_path / 'f.npy'), out_size=8, rotations=(), zscore=False,
                            minmax='none', dff_window_s=6.0, frame_dt=0.1, threshold=0.25,
                            background_s=6.0, detect_dff=True, chunk_frames=50)
  # Exact on a linear baseline; within a window of the transient its 6 bright frames move
  # the median up by a few ranks of the drift (0.2 per frame on ~128, ~1% of dF/F).
  np.testing.assert_allclose(ds.movie[0, 40:100], 0.0, atol=1e-4)
  np.testing.assert_allclose(ds.movie[0, 40:-40], signal[40:-40], atol=0.02)
  assert np.nonzero(ds.labels[0] >= 0)[0].tolist() == list(range(140, 146))
  np.save(tmp_path / 'neg.npy', baseline - 150)
  with pytest.raises(InputError, match='dF/F needs a positive baseline'):
    dataset.load_dataset(str(tmp_path / 'neg.npy'), out_size=8, dff_window_s=6.0, frame_dt=0.1,
                         threshold=0.)


def test_waves_found_after_background_subtraction_and_smoothing():
  t = np.arange(200, dtype=np.float32)
  rng = np.random.default_rng(4)
  x = (10 + 0.05 * t)[:, None, None] + rng.normal(0, 0.3, (200, 16, 16)).astype(np.float32)
  x[100:110, 4:12, 4:12] += 3.0  # one wave on a rising baseline
  raw = x > 12.0
  assert raw[150:].mean() > 0.9  # without removing the baseline, the drift crosses 12
  y = dataset.detection_movie(x, frame_dt=0.1, pixel_mm=0.05, background_s=8.0,
                              smooth_s=0.1, smooth_mm=0.05)
  labels = stats.frame_labels(y, threshold=1.5, min_size=50)
  assert np.nonzero(labels >= 0)[0].tolist() == list(range(100, 110))
  with pytest.raises(InputError, match='set the pixel size pixel_mm'):
    dataset.detection_movie(x, frame_dt=0.1, smooth_mm=0.1)
