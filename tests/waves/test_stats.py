"""Wave statistics on synthetic movies whose waves have known speed, size and timing."""

import json

import numpy as np
import pytest

from rwjax.errors import InputError
from rwjax.waves import stats

PX = 2 / 63  # mm, the Lansdell grid spacing
DT = 0.1  # s per frame
REST, UP = -70.0, -20.0
THR = -60.0


def disk_wave(movie, t0, center, speed, r_max, width=0.1):
  """Adds a ring of activity expanding from `center` (mm) at `speed` (mm/s).

  A pixel is active from when the front (radius r0 + speed * t) reaches it for
  `width` mm of further front travel; the wave ends when the front reaches r_max.
  """
  n_t, size, _ = movie.shape
  y, x = np.mgrid[:size, :size] * PX
  dist = np.hypot(y - center[0], x - center[1])
  r0 = 1.5 * PX
  for i in range(n_t - t0):
    r = r0 + speed * i * DT
    if r > r_max + width:
      break
    movie[t0 + i][(dist <= min(r, r_max)) & (dist > r - width)] = UP
  return movie


def blank(n_t, size=48):
  return np.full((n_t, size, size), REST, np.float32)


@pytest.mark.parametrize('speed', [0.05, 0.12, 0.3, 1.0])
def test_speed_of_an_expanding_disk(speed):
  r_max = 0.6
  n_t = int((r_max + 0.5) / speed / DT) + 10
  # The active band must overlap between frames for the wave to stay one component.
  movie = disk_wave(blank(n_t), 3, (0.75, 0.75), speed, r_max, width=0.1 + 2 * speed * DT)
  s = stats.wave_stats(movie, threshold=THR, frame_dt=DT, pixel_mm=PX)
  assert s.area_mm2.size == 1
  assert s.speed_mm_s[0] == pytest.approx(speed, rel=0.1)
  assert s.area_mm2[0] == pytest.approx(np.pi * r_max**2, rel=0.1)
  active = (movie > THR).any((1, 2))
  assert s.duration_s[0] == pytest.approx(active.sum() * DT)
  assert s.start_s[0] == pytest.approx(3 * DT)
  np.testing.assert_array_equal(s.frame_labels, np.where(active, 0, -1))


@pytest.mark.parametrize('speed', [0.1, 0.5])
def test_speed_of_a_planar_front(speed):
  size = 40
  x = np.mgrid[:size, :size][1] * PX
  n_t = int(x.max() / speed / DT) + 5
  movie = blank(n_t, size)
  for i in range(n_t):
    front = speed * i * DT
    movie[i][(x <= front) & (x > front - 0.15)] = UP
  s = stats.wave_stats(movie, threshold=THR, frame_dt=DT, pixel_mm=PX)
  assert s.area_mm2.size == 1
  assert s.speed_mm_s[0] == pytest.approx(speed, rel=0.05)
  assert s.coverage[0] == 1.0


def test_inter_wave_interval_and_coverage():
  # The same disk twice, 40 s apart: every pixel it covers has one 40 s interval.
  movie = blank(600)
  for t0 in (20, 420):
    disk_wave(movie, t0, (0.7, 0.7), 0.15, 0.4)
  s = stats.wave_stats(movie, threshold=THR, frame_dt=DT, pixel_mm=PX)
  assert s.area_mm2.size == 2
  covered = (movie > THR).any(0)
  assert s.iwi_s.size == covered.sum()
  np.testing.assert_allclose(s.iwi_s, 40.0)
  assert s.coverage[0] == pytest.approx(covered.mean())
  np.testing.assert_allclose(s.active_fraction, (movie > THR).mean((1, 2)), rtol=1e-6)
  assert set(np.unique(s.frame_labels)) == {-1, 0, 1}


def test_flicker_within_a_wave_is_one_onset_and_small_events_are_not_waves():
  movie = disk_wave(blank(60), 2, (0.7, 0.7), 0.3, 0.4, width=0.3)
  # A pixel drops below threshold for one frame in the middle of the wave.
  on = np.nonzero(movie[:, 22, 22] > THR)[0]
  movie[on[len(on) // 2], 22, 22] = REST
  s = stats.wave_stats(movie, threshold=THR, frame_dt=DT, pixel_mm=PX)
  assert s.area_mm2.size == 1 and s.iwi_s.size == 0
  movie = disk_wave(blank(80), 30, (0.7, 0.7), 0.2, 0.3)
  movie[5:8, 3, 3] = UP  # 3 pixel-frames: a failed initiation
  s = stats.wave_stats(movie, threshold=THR, frame_dt=DT, pixel_mm=PX, min_size=10)
  assert s.area_mm2.size == 1
  assert (s.frame_labels[5:8] == -1).all()
  s1 = stats.wave_stats(movie, threshold=THR, frame_dt=DT, pixel_mm=PX, min_size=1)
  assert s1.area_mm2.size == 2 and (s1.frame_labels[5:8] == 0).all()


def test_frame_label_is_the_largest_wave():
  movie = blank(80)
  disk_wave(movie, 5, (0.3, 0.3), 0.1, 0.2)  # small, starts first
  disk_wave(movie, 10, (1.1, 1.1), 0.1, 0.35)  # large, overlaps in time
  s = stats.wave_stats(movie, threshold=THR, frame_dt=DT, pixel_mm=PX)
  assert s.area_mm2.size == 2 and s.area_mm2[0] < s.area_mm2[1]
  lab = np.stack([(movie[:, :24] > THR).sum((1, 2)), (movie[:, 24:] > THR).sum((1, 2))], 1)
  want = np.where(lab.max(1) > 0, lab.argmax(1), -1)
  np.testing.assert_array_equal(s.frame_labels, want)


def test_batch_ids_are_globally_unique_and_summary_is_json_with_or_without_waves():
  a = blank(200)
  for t0 in (10, 110):
    disk_wave(a, t0, (0.7, 0.7), 0.2, 0.3)
  b = disk_wave(blank(200), 50, (0.5, 0.9), 0.2, 0.5)
  s = stats.wave_stats(np.stack([a, b]), threshold=THR, frame_dt=DT, pixel_mm=PX)
  assert s.frame_labels.shape == (2, 200) and s.frame_labels.dtype == np.int32
  np.testing.assert_array_equal(s.retina, [0, 0, 1])
  assert set(np.unique(s.frame_labels[0])) == {-1, 0, 1}
  assert set(np.unique(s.frame_labels[1])) == {-1, 2}
  single = stats.wave_stats(b, threshold=THR, frame_dt=DT, pixel_mm=PX)
  np.testing.assert_array_equal(single.frame_labels, np.where(s.frame_labels[1] >= 0, 0, -1))
  np.testing.assert_array_equal(stats.frame_labels(np.stack([a, b]), THR), s.frame_labels)
  np.testing.assert_array_equal(stats.frame_labels(b, THR), single.frame_labels)
  out = stats.summary(s)
  json.dumps(out, allow_nan=False)
  assert {'speed_mm_s_median', 'iwi_s_median', 'duration_s_median', 'area_mm2_median',
          'area_mm2_p90', 'coverage', 'n_waves'} <= set(out)
  assert out['n_waves'] == 3 and out['iwi_s_median'] == pytest.approx(10.0)
  assert out['speed_mm_s_median'] == pytest.approx(0.2, rel=0.1)
  out = stats.summary(stats.wave_stats(blank(10), threshold=THR, pixel_mm=PX))
  json.dumps(out, allow_nan=False)
  assert out['n_waves'] == 0 and out['speed_mm_s_median'] is None and out['coverage'] == 0


@pytest.mark.parametrize('shape', [(5, 5), (1, 2, 3, 4, 5), (0, 4, 4)])
def test_bad_shapes_are_input_errors(shape):
  with pytest.raises(InputError, match='movie'):
    stats.wave_stats(np.zeros(shape, np.float32), threshold=THR, pixel_mm=PX)
