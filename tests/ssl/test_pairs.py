"""Positive pairs: same wave, right separation, the shuffle controls, quiet buffers."""

import functools

import jax
import numpy as np
import pytest

from rwjax.errors import InputError
from rwjax.ssl.pairs import (control_parts, make_pixel_perm, sample_pairs,
                              shuffle_pixels_per_frame)

R, T, H, W = 4, 10, 4, 4
LABELS = np.array([
    [-1, -1, 0, 0, 0, 0, -1, 1, 1, 1],
    [-1] * 10,
    [2] * 10,
    [5, 5, 5, -1, 5, 5, 6, 6, 6, 6],  # wave 5 pauses for a frame: still one wave
], np.int32)
# Pixel p of frame (r, t) holds r * T + t + p / 100: the integer part names the frame, the
# fraction the pixel.
FRAMES = (np.arange(R * T, dtype=np.float32).reshape(R, T, 1, 1)
          + np.arange(H * W, dtype=np.float32).reshape(1, 1, H, W) / 100)
PERM = make_pixel_perm(jax.random.PRNGKey(3), H, W)


def n_chop_positions(sep):
  return int(np.sum((LABELS[:, :-sep] >= 0) & (LABELS[:, sep:] == LABELS[:, :-sep])))


@functools.cache
def compiled(n_pairs, separation, shuffle, id_offset):
  return jax.jit(lambda key, perm: sample_pairs(
      key, FRAMES, LABELS, n_pairs, separation=separation, shuffle=shuffle, perm=perm,
      id_offset=id_offset))


def sample(key, n_pairs, separation=1, shuffle='none', perm=None, id_offset=0):
  out = compiled(n_pairs, separation, shuffle, id_offset)(jax.random.PRNGKey(key), perm)
  return {k: np.asarray(v) for k, v in out.items()}


def source_frames(views):
  """(row, t) of the buffer frame each view shows."""
  ident = np.floor(views.reshape(len(views), -1).min(axis=1) + 1e-3).astype(int)
  return ident // T, ident % T


@pytest.mark.parametrize('sep', [1, 2])
def test_chop_pairs_are_same_wave_at_separation(sep):
  n = n_chop_positions(sep)
  out = sample(0, n, separation=sep, id_offset=1000)
  assert out['valid'].all() and out['views'].shape == (2 * n, H, W)
  rows, ts = source_frames(out['views'])
  a, b = slice(0, n), slice(n, 2 * n)
  np.testing.assert_array_equal(rows[a], rows[b])
  np.testing.assert_array_equal(ts[b] - ts[a], sep)
  assert (LABELS[rows[a], ts[a]] >= 0).all()
  np.testing.assert_array_equal(LABELS[rows[a], ts[a]], LABELS[rows[b], ts[b]])
  np.testing.assert_array_equal(out['frame_idx'], ts)
  # Without replacement: with n = #positions, every position exactly once.
  assert len(set(zip(rows[a], ts[a]))) == n
  # Wave id = offset + row * T + first frame of the label in the row.
  first = np.array([np.argmax(LABELS[r] == LABELS[r, t]) for r, t in zip(rows, ts)])
  np.testing.assert_array_equal(out['wave_id'], 1000 + rows * T + first)
  np.testing.assert_array_equal(out['wave_id'][a], out['wave_id'][b])


def test_missing_pairs_are_invalid_views():
  n = n_chop_positions(1) + 5  # more pairs than positions: the extra ones are invalid
  out = sample(1, n)
  assert out['valid'].sum() == 2 * (n - 5)
  np.testing.assert_array_equal(out['valid'][:n], out['valid'][n:])
  # A quiet buffer gives invalid (finite) views only; so does a channel axis, carried along.
  fn = jax.jit(functools.partial(sample_pairs, n_pairs=6, shuffle='temporal'))
  out = fn(jax.random.PRNGKey(0), np.repeat(FRAMES[..., None], 3, axis=-1),
           np.full((R, T), -1, np.int32))
  assert not np.asarray(out['valid']).any() and out['views'].shape == (12, H, W, 3)
  assert np.isfinite(np.asarray(out['views'])).all()


@pytest.mark.parametrize('shuffle, alias', [('spatial', 'spatial_fixed'),
                                            ('spatiotemporal', 'spatiotemporal_within_wave')])
def test_spatial_shuffle_applies_one_pixel_permutation_under_either_name(shuffle, alias):
  n = 8
  out = sample(2, n, shuffle=shuffle, perm=PERM)
  jax.tree.map(np.testing.assert_array_equal, sample(2, n, shuffle=alias, perm=PERM), out)
  rows, ts = source_frames(out['views'])
  want = FRAMES[rows, ts].reshape(2 * n, -1)[:, np.asarray(PERM)].reshape(2 * n, H, W)
  np.testing.assert_array_equal(out['views'], want)
  assert not np.array_equal(np.asarray(PERM), np.arange(H * W))
  np.testing.assert_array_equal(LABELS[rows[:n], ts[:n]], LABELS[rows[n:], ts[n:]])
  if shuffle == 'spatial':
    np.testing.assert_array_equal(ts[n:] - ts[:n], 1)
  else:
    assert (ts[n:] != ts[:n]).all()


@pytest.mark.parametrize('shuffle', ['temporal', 'temporal_global'])
def test_temporal_shuffles_show_wave_frames_at_the_chopped_positions(shuffle):
  n = n_chop_positions(1)
  if shuffle == 'temporal':  # the old name of 'temporal_within_wave'
    jax.tree.map(np.testing.assert_array_equal, sample(0, n, shuffle=shuffle),
                 sample(0, n, shuffle='temporal_within_wave'))
  cross, offsets = [], []
  for key in range(5):
    out = sample(key, n, shuffle=shuffle)
    rows, ts = source_frames(out['views'])
    # Frame content is intact (each view is one whole buffer frame) and always a wave frame.
    np.testing.assert_array_equal(out['views'], FRAMES[rows, ts])
    assert (LABELS[rows, ts] >= 0).all()
    # Labels and positions are those of the chopped pair, not of the frames shown.
    np.testing.assert_array_equal(out['frame_idx'][n:] - out['frame_idx'][:n], 1)
    np.testing.assert_array_equal(out['wave_id'][:n], out['wave_id'][n:])
    # One permutation per step: a position always shows the same frame, and different
    # positions show different frames.
    shown = {}
    for r_t, pos in zip(zip(rows, ts), zip(out['wave_id'], out['frame_idx'])):
      assert shown.setdefault(pos, r_t) == r_t
    assert len(set(shown.values())) == len(shown)
    wave = list(zip(rows, LABELS[rows, ts]))  # (row, label) of the wave shown
    cross += [a != b for a, b in zip(wave[:n], wave[n:])]
    offsets.extend(ts[n:] - ts[:n])
  if shuffle == 'temporal':  # the partner is a random other frame of the anchor's own wave
    assert not any(cross) and 0 not in offsets and len(set(offsets)) > 3
  else:  # positives mostly show frames of two different waves
    assert np.mean(cross) > 0.5


def test_spatial_per_frame_permutes_every_frame_and_channel_independently():
  rng = np.random.default_rng(0)
  views = np.repeat(rng.normal(size=(6, H, W, 1)).astype(np.float32), 3, axis=-1)
  keys = jax.random.split(jax.random.PRNGKey(0), 6)
  out = np.asarray(jax.jit(shuffle_pixels_per_frame)(keys, views))
  flat_in, flat_out = views.reshape(6, H * W, 3), out.reshape(6, H * W, 3)
  orders = set()
  for i in range(6):
    for c in range(3):
      # The frame's pixel values survive (a permutation), their places do not.
      np.testing.assert_array_equal(np.sort(flat_out[i, :, c]), np.sort(flat_in[i, :, c]))
      src = np.argsort(flat_in[i, :, c])[np.searchsorted(np.sort(flat_in[i, :, c]),
                                                         flat_out[i, :, c])]
      orders.add(tuple(src))  # output pixel j shows input pixel src[j]
  assert len(orders) == 18  # every frame and channel its own permutation
  # The same key gives the same permutations (a movie frame keeps its own for the run).
  again = np.asarray(jax.jit(shuffle_pixels_per_frame)(keys, views))
  np.testing.assert_array_equal(again, out)


def test_control_parts():
  assert control_parts('none') == (None, None)
  assert control_parts('spatiotemporal_global') == ('global', 'per_frame')
  assert control_parts('spatiotemporal') == ('within_wave', 'fixed')


@pytest.mark.parametrize('kw, match', [
    (dict(shuffle='temporal_local'), "shuffle 'temporal_local' is unknown"),
    (dict(separation=T), 'separation'), (dict(shuffle='spatial'), 'perm'),
    (dict(n_pairs=R * T), 'n_pairs')])
def test_bad_arguments_raise(kw, match):
  with pytest.raises(InputError, match=match):
    sample_pairs(jax.random.PRNGKey(0), FRAMES, LABELS, **{'n_pairs': 4, **kw})
