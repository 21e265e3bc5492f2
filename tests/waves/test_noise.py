"""waves.noise: a noise movie with a wave movie's histogram and correlation lengths, no waves;
the `noise` subcommand keeps the wave movie's labels."""

import json
import os

import jax
import numpy as np
import pytest
from scipy import ndimage

from rwjax.errors import InputError
from rwjax.waves import movie as movie_io
from rwjax.waves import noise, stats
from rwjax.waves.cli import main

THRESHOLD = -60.0


def _fronts(t=300, size=32, seed=0):
  """Planted waves f32[t, size, size]: straight fronts 4 pixels wide crossing the retina at
  0.4 pixels per frame, one after another in random directions, on a -70 mV rest with noise."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
  movie = -70 + 0.5 * rng.standard_normal((t, size, size))
  for start in range(0, t, 100):
    angle = rng.uniform(0, 2 * np.pi)
    along = np.cos(angle) * xx + np.sin(angle) * yy  # distance along the travel direction
    for i in range(100):
      if start + i < t:
        front = -size / 2 - 2 + 0.4 * i
        movie[start + i][np.abs(along - front) < 2] += 80
  return movie.astype(np.float32)


def test_histogram_and_correlation_lengths_match_without_travelling_waves():
  wave = _fronts()[None]
  out, report = noise.noise_like(wave, jax.random.PRNGKey(0))
  assert out.shape == wave.shape and out.dtype == np.float32
  q = np.linspace(0.01, 0.99, 99)
  spread = np.quantile(wave, 0.99) - np.quantile(wave, 0.01)
  np.testing.assert_allclose(np.quantile(out, q), np.quantile(wave, q), atol=0.01 * spread)
  # The active share (what the wave finder thresholds) is the wave movie's.
  assert (out > THRESHOLD).mean() == pytest.approx((wave > THRESHOLD).mean(), rel=0.05)
  want, got = noise.correlation_lengths(wave[0]), noise.correlation_lengths(out[0])
  assert (got.frames, got.pixels) == pytest.approx((want.frames, want.pixels), rel=0.1)
  assert report[0]['got_frames'] == pytest.approx(got.frames)
  # The fronts sweep the retina (footprint ~ the retina, ~8x a frame's band: sweep 6-7 over
  # seeds 0-3); the noise's active patches grow and fade in place (1.4-1.8).
  assert noise.sweep(wave[0], THRESHOLD) > 4.0
  assert noise.sweep(out[0], THRESHOLD) < 2.0
  assert stats.label_waves(out[0], THRESHOLD)[1] > 0  # it has active patches, just no waves


def test_correlation_lengths_of_smoothed_white_noise():
  """Smoothed white noise (scipy's Gaussian filter, sigma in frames and pixels) has
  autocorrelation exp(-d^2 / (4 sigma^2)): 1/e at 2 sigma."""
  white = np.random.default_rng(1).standard_normal((4000, 48, 48))
  field = ndimage.gaussian_filter(white, (3.0, 0.0, 0.0), mode='wrap')
  field = ndimage.gaussian_filter(field, (0.0, 2.0, 2.0), mode='wrap').astype(np.float32)
  got = noise.correlation_lengths(field, max_frames=40)
  assert (got.frames, got.pixels) == pytest.approx((6.0, 4.0), rel=0.05)


def test_cli_writes_the_noise_with_the_wave_movies_labels(tmp_path, capsys):
  wave = _fronts(t=200)[None]
  labels = stats.frame_labels(wave, THRESHOLD)
  like = str(tmp_path / 'waves')
  movie_io.save_movie(like, wave, labels, dict(model='lansdell', threshold=THRESHOLD,
                                               frame_dt=0.1, pixel_mm=0.03, min_size=50,
                                               summary={'n_waves': 2}))
  out = str(tmp_path / 'noise')
  main(['noise', f'--like={like}', f'--out={out}', '--seed=3', '--refine=1'])
  frames = np.load(os.path.join(out, 'movie.npy'))
  assert frames.shape == wave.shape
  np.testing.assert_array_equal(np.load(os.path.join(out, 'labels.npy')), labels)
  meta = json.load(open(os.path.join(out, 'meta.json')))
  assert meta['threshold'] == THRESHOLD and meta['frame_dt'] == 0.1 and 'summary' not in meta
  assert meta['noise']['seed'] == 3 and len(meta['noise']['retinas']) == 1
  assert 'wrote' in capsys.readouterr().out
  again = noise.noise_like(wave, jax.random.PRNGKey(3), refine=1)[0]
  np.testing.assert_array_equal(frames, again)
  np.save(os.path.join(like, 'labels.npy'), labels[:, :-1])
  with pytest.raises(InputError, match='one label per frame'):
    main(['noise', f'--like={like}', f'--out={out}'])
