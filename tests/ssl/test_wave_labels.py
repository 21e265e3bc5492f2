"""On-device wave labels (rwjax.ssl.wave_labels) against the host wave finder
(rwjax.waves.stats.frame_labels: 3-D connected components, min size, one label per frame)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import adjusted_rand_score

from rwjax.ssl import wave_labels as wl
from rwjax.waves import godfrey, lansdell, stats

MIN_SIZE = 50
DELAY = 10  # config.data.label_delay's default


def _stream(masks, delay=DELAY, min_size=MIN_SIZE, candidates=wl.CANDIDATES):
  """Stream labels i32[B, T] of masks bool[B, T, H, W], made unique across retinas."""
  lab = np.asarray(jax.jit(wl.label_movie, static_argnums=(1, 2, 3))(
      jnp.asarray(masks), min_size, delay, candidates))
  return np.where(lab >= 0, lab + np.arange(len(lab))[:, None] * wl.SLOTS, -1)


def _agreement(stream, finder):
  """(ARI over the frames either labels as a wave, share of stream waves that span more
  than one finder wave, number of finder waves)."""
  s, f = np.ravel(stream), np.ravel(finder)
  either = (s >= 0) | (f >= 0)
  ari = adjusted_rand_score(f[either], s[either])
  spans = [np.unique(f[(s == w) & (f >= 0)]).size > 1 for w in np.unique(s[s >= 0])]
  return ari, float(np.mean(spans)), np.unique(f[f >= 0]).size


@functools.lru_cache(maxsize=None)
def _simulated(name):
  """(frames f32[2, 300, 32, 32], threshold): 30 s of 2 small retinas in which waves come
  at once. Lansdell: from a random refractory mosaic (S ~ U(0, 1)) instead of the long
  warm-up, so waves begin, fragment and coexist with failed starts; Godfrey: recovery
  period P = 4 s instead of 30 s, so several waves follow one another."""
  key = jax.random.PRNGKey(0)
  model, p = ((lansdell, lansdell.Params(size=32, spont_prob=1e-3)) if name == 'lansdell' else
              (godfrey, godfrey.Params(size=32, p=4.0)))
  state = model.init(key, 2, p)
  if name == 'lansdell':
    state = state._replace(s=jax.random.uniform(jax.random.PRNGKey(1), state.s.shape))
  _, frames = model.advance(state, 300, p)
  return np.asarray(frames), model.THRESHOLD


@pytest.mark.parametrize('name', ['lansdell', 'godfrey'])
def test_agrees_with_the_wave_finder_on_simulated_retinas(name):
  frames, threshold = _simulated(name)
  finder = stats.frame_labels(frames, threshold, MIN_SIZE)
  ari, spanning, n_waves = _agreement(_stream(frames > threshold), finder)
  assert n_waves >= 3, n_waves  # the comparison covers several waves
  assert ari >= 0.9, ari
  assert spanning <= 0.05, spanning


def test_the_active_fraction_rule_does_not_agree():
  # The same measure tells the 'active_fraction' rule apart: on the Lansdell movie it merges
  # waves.
  frames, threshold = _simulated('lansdell')
  finder = stats.frame_labels(frames, threshold, MIN_SIZE)
  masks = jnp.asarray(frames > threshold)
  count, active = jnp.zeros(2, jnp.int32), jnp.zeros(2, bool)
  old = []
  for t in range(masks.shape[1]):
    count, active, wave = wl.active_fraction_update(count, active, masks[:, t], 0.01)
    old.append(np.asarray(wave))
  old = np.stack(old, 1)
  old = np.where(old >= 0, old + np.arange(2)[:, None] * 10_000, -1)
  ari, spanning, _ = _agreement(old, finder)
  assert ari < 0.9 or spanning > 0.05, (ari, spanning)


def test_equals_the_wave_finder_when_the_whole_movie_is_known():
  # Random blobs in space-time: components that split, merge (also several at once, and
  # through earlier frames) and small ones under min_size. With the whole movie in the
  # window and room for every component, the partitions must be identical.
  rng = np.random.default_rng(0)
  field = ndimage.uniform_filter(rng.random((3, 40, 16, 16)), size=(1, 3, 3, 3))
  masks = field > 0.55
  finder = stats.frame_labels(masks.astype(np.float32), 0.5, 20)
  per_frame = [ndimage.label(m)[1] for m in masks.reshape(-1, 16, 16)]
  assert max(per_frame) >= 3 and (finder >= 0).mean() > 0.3  # a non-trivial movie
  stream = _stream(masks, delay=masks.shape[1] - 1, min_size=20, candidates=64)
  np.testing.assert_array_equal(stream >= 0, finder >= 0)
  assert adjusted_rand_score(finder.ravel(), stream.ravel()) == 1.0


def test_planted_merge_and_small_blob():
  # Hand-built movie (T=20, 12x12): wave A (left, frames 0-15), wave B (right, frames
  # 2-15) joined by a bridge at frames 8-9 (one 3-D component for the finder), and a
  # 2x2 blob for frames 16-18 (12 pixel-frames < min_size 20: no wave).
  masks = np.zeros((20, 12, 12), bool)
  masks[0:16, 2:10, 0:4] = True    # A: 32 pixels per frame
  masks[2:16, 2:8, 8:12] = True    # B: 24 pixels per frame
  masks[8:10, 4:5, 4:8] = True     # the bridge
  masks[16:19, 5:7, 5:7] = True    # too small
  finder = stats.frame_labels(masks.astype(np.float32), 0.5, 20)
  np.testing.assert_array_equal(finder, [0] * 16 + [-1] * 4)  # one wave, then none
  stream = _stream(masks[None], delay=10, min_size=20)[0]
  assert stream[0] >= 0 and (stream[:16] == stream[0]).all() and (stream[16:] == -1).all()
  # Nothing reaches a min_size above A + B's 32 * 16 + 24 * 14 + 8 pixel-frames.
  assert (_stream(masks[None], delay=10, min_size=1000)[0] == -1).all()


def test_a_merge_later_than_the_delay_is_not_seen_in_time():
  # A 4-pixel seed (top left, frames 0-11) and a big wave (right, from frame 0) that the
  # seed's expansion at frame 12 joins: one 3-D component, so the finder's label is the
  # same in every frame.
  masks = np.zeros((20, 8, 16), bool)
  masks[0:12, 0:2, 0:2] = True     # the seed: first in raster order, slot 0
  masks[0:20, 0:8, 9:16] = True    # right wave: slot 1
  masks[12:20, 0:8, 0:9] = True    # the seed expands and touches it at frame 12
  finder = stats.frame_labels(masks.astype(np.float32), 0.5, 20)
  assert (finder == 0).all()
  # Labelled 3 frames later, frames 0-8 are labelled before the merge, as the larger right
  # wave; frames 9-19 after it, as the merged wave, which keeps the smaller slot (the
  # seed's). With a delay of 12 frames every frame sees the merge.
  stream = _stream(masks[None], delay=3, min_size=20)[0]
  np.testing.assert_array_equal(stream, [1] * 9 + [0] * 11)
  assert (_stream(masks[None], delay=12, min_size=20)[0] == 0).all()
