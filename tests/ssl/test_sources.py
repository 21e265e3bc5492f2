"""The on-device simulator source: retinas advancing in groups (data.sim_groups)."""

import jax
import numpy as np

from rwjax import train
from rwjax.ssl import sources
from rwjax.waves import lansdell



def _source(groups):
  params = lansdell.Params(size=16, spont_prob=0.01)
  return sources.make_sim_source(
      model=lansdell, params=params, input_size=8, retinas=4, frames_per_step=1,
      buffer_frames=4, warmup_s=1.0, calibration_s=1.0, threshold=lansdell.THRESHOLD,
      active_fraction=0.01, groups=groups)


def test_groups_take_turns_and_match_advancing_all_at_once():
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:2]), ('data',))
  init = lambda s: train.source_init(s, mesh)
  whole, halves = _source(1), _source(2)
  key = jax.random.PRNGKey(0)
  state = init(halves)(key)
  np.testing.assert_array_equal(state.turn, [0, 0])  # one counter per device
  step = train.source_step(halves, mesh)
  once = step(state)
  # Device rows: [0, 1] (group 0) and [2, 3] (group 1) of each device's 4 retinas.
  buf0, buf1 = np.asarray(state.buffer), np.asarray(once.buffer)
  moved = np.any(buf0 != buf1, axis=(1, 2, 3))
  assert list(moved) == [True, True, False, False] * 2
  np.testing.assert_array_equal(buf1[:2, :-1], buf0[:2, 1:])  # group 0 shifted by a frame
  np.testing.assert_array_equal(once.turn, [1, 1])
  # Two steps of two groups = one step of all retinas: same frames, labels, simulator.
  twice = step(once)
  together = train.source_step(whole, mesh)(init(whole)(key))
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
    return len(train.source_init(source, mesh).lower(key, *source.inputs).as_text())

  small, large = program_chars(4), program_chars(400)  # 8 KB and 800 KB of frames
  assert large < small + 1000, (small, large)
