"""The on-device simulator source: retinas advancing in groups (data.sim_groups), wave
labels against the wave finder on a planted movie."""

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
import numpy as np
from scipy import ndimage
from sklearn.metrics import adjusted_rand_score

from rwjax.ssl import sources
from rwjax.ssl import trainer
from rwjax.ssl import wave_labels
from rwjax.waves import lansdell
from rwjax.waves import stats


def test_groups_take_turns_and_match_advancing_all_at_once():
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:2]), ('data',))
  init = lambda s: trainer.source_init(s, mesh)
  whole, halves = (sources.make_sim_source(
      model=lansdell, params=lansdell.Params(size=16, spont_prob=0.01), input_size=8, retinas=4,
      frames_per_step=1, buffer_frames=4, warmup_s=1.0, calibration_s=1.0,
      threshold=lansdell.THRESHOLD, active_fraction=0.01, groups=g) for g in (1, 2))
  key = jax.random.PRNGKey(0)
  state = init(halves)(key)
  np.testing.assert_array_equal(state.turn, [0, 0])  # one counter per device
  step = trainer.source_step(halves, mesh)
  once = step(state)
  # Device rows: [0, 1] (group 0) and [2, 3] (group 1) of each device's 4 retinas.
  buf0, buf1 = np.asarray(state.buffer), np.asarray(once.buffer)
  moved = np.any(buf0 != buf1, axis=(1, 2, 3))
  assert list(moved) == [True, True, False, False] * 2
  np.testing.assert_array_equal(buf1[:2, :-1], buf0[:2, 1:])  # group 0 shifted by a frame
  np.testing.assert_array_equal(once.turn, [1, 1])
  # Two steps of two groups = one step of all retinas: same frames, labels, simulator.
  twice = step(once)
  together = trainer.source_step(whole, mesh)(init(whole)(key))
  np.testing.assert_array_equal(twice.turn, [0, 0])
  for field in ('buffer', 'labels', 'count', 'active'):
    np.testing.assert_array_equal(getattr(twice, field), getattr(together, field), field)
  jax.tree.map(np.testing.assert_array_equal, twice.sim, together.sim)
  jax.tree.map(np.testing.assert_array_equal, twice.tracker, together.tracker)
  assert (np.asarray(together.labels) >= 0).any()  # waves were labelled, ids compared


def test_a_file_movie_is_an_argument_of_the_init_program_not_a_constant():
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ('data',))
  key = jax.random.PRNGKey(0)

  def program_chars(n_frames):
    movie = np.random.default_rng(0).random((2, n_frames, 16, 16), np.float32)
    source = sources.make_file_source(movie, np.zeros((2, n_frames), np.int32))
    return len(trainer.source_init(source, mesh).lower(key, *source.inputs).as_text())

  small, large = program_chars(4), program_chars(400)  # 8 KB and 800 KB of frames
  assert large < small + 1000, (small, large)


class _Planted:
  """A stand-in simulator that replays a planted movie f32[T, 16, 16] in a loop; retina b
  starts at frame 7 b (so retinas differ), plus (`keyed`) an offset drawn from the device's key
  (so devices differ). State: i32[B] frames played so far."""
  THRESHOLD = 0.5

  def __init__(self, movie, keyed=False):
    self.movie, self.keyed = movie, keyed

  def init(self, key, batch, params):
    del params
    offset = jax.random.randint(key, (), 0, 40) if self.keyed else 0
    return offset + 7 * jnp.arange(batch, dtype=jnp.int32)

  def warmup(self, state, seconds, params):
    return state

  def advance(self, state, n, params):
    idx = (state[:, None] + jnp.arange(n)) % self.movie.shape[0]
    return state + n, jnp.asarray(self.movie)[idx]


def _planted_source(model, **kw):
  """(source, mesh, initial state): a sim source of `model`, 2 retinas on each of 2 devices."""
  source = sources.make_sim_source(
      model=model, params=lansdell.Params(size=16, frame_dt=0.1), input_size=8, retinas=2,
      frames_per_step=1, warmup_s=0.0, threshold=0.5, active_fraction=0.01, **kw)
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:2]), ('data',))
  return source, mesh, trainer.source_init(source, mesh)(jax.random.PRNGKey(0))


def test_stream_labels_are_the_wave_finders_on_the_frames_it_tracked():
  field = ndimage.uniform_filter(np.random.default_rng(0).random((60, 16, 16)), size=3)
  movie = (field > 0.55).astype(np.float32)
  retinas, buffer, delay, n_cal = 2, 12, 5, 11  # calibration: 1 + one chunk of 10 frames
  source, mesh, state = _planted_source(_Planted(movie), buffer_frames=buffer, calibration_s=0.1,
                                        label_delay=delay, min_wave_size=20)
  step = jax.jit(jax.shard_map(source.advance, mesh=mesh, in_specs=P('data'),
                               out_specs=P('data')))
  for _ in range(30):
    state, frames, labels = step(state)
  labels = np.asarray(labels)
  assert frames.shape == (2 * retinas, buffer, 8, 8) and labels.shape == (2 * retinas, buffer)
  played = np.asarray(state.sim)  # per retina (2 devices x 2 retinas): frames played
  for row in range(2 * retinas):
    start = 7 * (row % retinas)
    seq = movie[np.arange(start, played[row]) % len(movie)]
    tracked = seq[n_cal:]  # the tracker begins after calibration
    finder = stats.frame_labels(tracked, 0.5, 20)
    window = finder[len(tracked) - buffer - delay:len(tracked) - delay]
    mine = labels[row]
    np.testing.assert_array_equal(mine >= 0, window >= 0)
    assert adjusted_rand_score(window, mine) == 1.0, (row, window, mine)
    # Ids carry the global retina index (device * retinas + row) in their top bits.
    assert ((mine[mine >= 0] >> wave_labels.SLOT_BITS) == row).all()
  assert (labels >= 0).mean() > 0.3


def test_paper_norm_calibrates_one_transform_over_every_retina_and_device():
  """movie_norm='paper' in the stream: frames pooled first, then one per-pixel z-score and one
  min-max from the calibration frames of all retinas of both devices (what the paper's
  StandardScaler and min-max do over a whole movie), the same for every retina."""
  rng = np.random.default_rng(1)
  movie = (rng.random((60, 16, 16)) * (1 + np.arange(16.0))).astype(np.float32)
  retinas, key = 2, jax.random.PRNGKey(0)
  _, _, state = _planted_source(_Planted(movie, keyed=True), buffer_frames=4, calibration_s=1.0,
                                label_delay=0, norm='paper')
  # The calibration frames (1 s of 0.1 s frames): after a reference frame, 10 per retina.
  starts = [int(jax.random.randint(jax.random.fold_in(key, d), (), 0, 40)) + 7 * r
            for d in range(2) for r in range(retinas)]
  seen = np.stack([movie[(s + 1 + np.arange(10)) % 60] for s in starts])
  assert len(set(starts)) == 4  # the devices' retinas differ
  pooled = seen.reshape(4, 10, 8, 2, 8, 2).mean(axis=(3, 5)).reshape(40, 8, 8)
  mean, std = pooled.mean(0), pooled.std(0)
  z = (pooled - mean) / std
  for b in range(4):
    np.testing.assert_allclose(state.shift[b], mean, rtol=1e-5)
    np.testing.assert_allclose(state.scale[b], 1 / std, rtol=1e-3)
  np.testing.assert_allclose(state.lo, z.min(), rtol=1e-3)
  np.testing.assert_allclose(state.hi, z.max(), rtol=1e-3)
  # Buffered frames: pooled, z-scored and min-maxed with those, clipped to [0, 1].
  played = np.asarray(state.sim)
  last = movie[(played - 1) % 60].reshape(4, 8, 2, 8, 2).mean(axis=(2, 4))
  want = np.clip(((last - mean) / std - z.min()) / (z.max() - z.min()), 0, 1)
  np.testing.assert_allclose(np.asarray(state.buffer)[:, -1], want, atol=1e-4)
