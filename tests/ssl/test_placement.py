"""rwjax.ssl.placement: a file movie sharded over 8 devices or streamed from the host.

Planted movies: every pixel of frame (b, t) holds 1 + b * T + t (padding frames 0), so a view
says which movie frame it is and batches are checked against the movie's own labels.
"""

import gc
import threading
import time

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from rwjax import defaults
from rwjax import models
from rwjax.errors import InputError
from rwjax.ssl import optim
from rwjax.ssl import placement
from rwjax.ssl import trainer
from rwjax.ssl import wave_batches

SIZE = 16


def _planted(b, t):
  """(movie f32[b, t, 16, 16] of frame indices + 1, labels i32[b, t]): waves of 3 frames and a
  quiet one; row 3 starts with two interleaved waves (0 1 0 1 ...) over 8 frames."""
  movie = np.broadcast_to((1 + np.arange(b * t, dtype=np.float32)).reshape(b, t, 1, 1),
                          (b, t, SIZE, SIZE)).copy()
  labels = np.where(np.arange(t) % 4 < 3, np.arange(t) // 4, -1)[None].repeat(b, 0)
  if b > 3:
    labels[3, :8] = [0, 1, 0, 1, 0, 1, 0, 1]
  return movie, labels.astype(np.int32)


def _config(placement_name, batching='pairs', batch_pairs=16, **data):
  c = defaults.pretrain_config()
  c.model.update(width=4, projector=(16, 8), dtype='float32')
  c.data.update(source='file', input_size=SIZE, placement=placement_name, batching=batching,
                wave_batch_frames=16, val_fraction=0.25, **data)
  c.train.batch_pairs = batch_pairs
  return c


def _setup(movie, labels, *args, **kw):
  """(config, placed source, initial state, mesh); args and kw go to _config."""
  c = _config(*args, **kw)
  source = trainer.placed_source(c, movie, labels)
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ('data',))
  model = models.create_model(**c.model)
  tx = optim.make_optimizer(name='adam', lr=1e-3)
  return c, source, trainer.init_state(model, tx, source, mesh, 0, SIZE), mesh


def _draw(c, source, state, mesh, seed=0):
  """Every device's batch (stacked device by device) from state.source."""
  batch_fn = trainer.make_batch_fn(source, c, c.train.batch_pairs // 8)
  per_device = lambda s, k: batch_fn(s, jax.random.fold_in(k, jax.lax.axis_index('data')))[1]
  f = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P('data'), P()),
                            out_specs=P('data'), check_vma=False))
  return jax.tree.map(np.asarray, f(state.source, jax.random.PRNGKey(seed)))


def _index(views):
  """Planted frame index of each view f32[N, H, W(, C)] (-1: a padding frame)."""
  v = views[..., 0] if views.ndim == 4 else views
  assert (v == v[:, :1, :1]).all()  # constant frames: nothing else was mixed in
  return v[:, 0, 0].astype(int) - 1


def _check_pairs(batch, labels, held, n_local=2, separation=1):
  """Anchors then partners per device: real consecutive frames of one wave, ids = the movie's,
  each device's from the frames it holds (held[d]: a set of frame indices)."""
  t, seen = labels.shape[1], set()
  for d in range(8):
    part = slice(2 * n_local * d, 2 * n_local * (d + 1))
    idx, wid, valid = _index(batch['views'][part]), batch['wave_id'][part], batch['valid'][part]
    assert set(idx) <= held[d]
    a, p = idx[:n_local], idx[n_local:]
    ok = valid[:n_local]
    assert ok.any()
    assert (p[ok] == a[ok] + separation).all() and (p[ok] // t == a[ok] // t).all()
    la, lp = labels.reshape(-1)[a[ok]], labels.reshape(-1)[p[ok]]
    assert (la >= 0).all() and (la == lp).all()
    assert (wid[:n_local][ok] == wid[n_local:][ok]).all()
    seen |= set(zip(wid[:n_local][ok], a[ok] // t, la))
  # One wave id per movie wave (row, label), and the other way round.
  assert len({s[0] for s in seen}) == len({s[1:] for s in seen}) == len(seen)


def test_sharded_movie_holds_an_eighth_per_device_and_draws_real_pairs():
  movie, labels = _planted(4, 32)
  c, source, state, mesh = _setup(movie, labels, 'sharded')
  shards = state.source.movie.addressable_shards
  assert len(shards) == 8 and len({s.device for s in shards}) == 8
  held = [np.asarray(s.data) for s in shards]
  # Each device holds at most an eighth of the movie's bytes (the quiet frames between waves
  # are not held at all) ...
  assert all(h.shape[0] * 8 == state.source.movie.shape[0] for h in held)
  assert all(h.nbytes <= movie.nbytes / 8 for h in held)
  # ... and together the shards hold every wave frame of the movie exactly once.
  got = np.concatenate([_index(h[0]) for h in held])
  got = got[got >= 0]
  assert sorted(got) == list(np.flatnonzero(labels.reshape(-1) >= 0))
  # A shard is a contiguous stretch of the movie.
  firsts = [_index(h[0])[0] for h in held]
  assert firsts == sorted(firsts)
  for seed in range(3):  # each device draws from its own shard
    _check_pairs(_draw(c, source, state, mesh, seed), labels, [set(_index(h[0])) for h in held])


def test_sharded_whole_wave_batches_are_whole_waves_of_the_devices_own_shard():
  movie, labels = _planted(4, 32)
  c, source, state, mesh = _setup(movie, labels, 'sharded', batching='waves')
  held = [set(_index(np.asarray(s.data)[0])) for s in state.source[0].movie.addressable_shards]
  schedule = source.schedule
  flat = labels.reshape(-1)
  movie_waves = {}  # (row, label) -> frames
  for i in np.flatnonzero(flat >= 0):
    movie_waves.setdefault((i // 32, flat[i]), set()).add(i)
  seen = []
  local = schedule.capacity // 8
  for plan in schedule.epoch(0) + schedule.validation():
    batch = _draw(c, source, trainer.put_plan(state, plan, mesh), mesh)
    idx = _index(batch['views'])
    for d in range(8):
      part = slice(local * d, local * (d + 1))
      assert set(idx[part]) <= held[d]
      ok = batch['valid'][part]
      for w in np.unique(batch['wave_id'][part][ok]):
        mine = (batch['wave_id'][part] == w) & ok
        frames = set(idx[part][mine])
        assert frames in movie_waves.values() and len(frames) == mine.sum()
        order = np.argsort(batch['frame_idx'][part][mine])  # table positions follow time
        assert np.all(np.diff(idx[part][mine][order]) > 0)
        seen.append(frozenset(frames))
  # One epoch and the validation batches show every wave of the movie exactly once.
  assert sorted(map(sorted, seen)) == sorted(map(sorted, movie_waves.values()))
  assert len(schedule.val) == int(len(movie_waves) * 0.25)


def test_streamed_pairs_feed_each_steps_chunk_of_the_shards():
  movie, labels = _planted(16, 16)  # 24 wave frames per device: 2 packed rows of 16
  state = _setup(movie, labels, 'sharded')[2]
  rows = [np.asarray(s.data) for s in state.source.movie.addressable_shards]
  assert rows[0].shape[0] == 2
  row_bytes = 16 * (SIZE * SIZE * 4 + 4)
  c, source, state, mesh = _setup(movie, labels, 'stream', device_bytes=3 * row_bytes,
                                  stream_steps=2)  # one row per chunk
  for step in range(6):
    state = source.feed(state, step)
    k = step // 2  # chunk k of device d: its shard's row k mod 2
    for d, shard in enumerate(state.source.movie.addressable_shards):
      np.testing.assert_array_equal(np.asarray(shard.data), rows[d][k % 2:k % 2 + 1])
    _check_pairs(_draw(c, source, state, mesh, step), labels, [set(_index(r[k % 2])) for r in rows])
  source.feed(state, 1)  # a jump back (a resumed run) restarts the stream at its chunk
  np.testing.assert_array_equal(np.asarray(source.feed(state, 2).source.movie.addressable_shards[3]
                                           .data), rows[3][1:2])
  # Once the source is gone, its background thread stops (no chunk stays on the devices).
  alive = lambda: [t for t in threading.enumerate() if t.name.startswith('rwjax-prefetch')]
  assert alive()
  del source, state, shard
  gc.collect()
  for _ in range(50):
    if not alive():
      break
    time.sleep(0.1)
  assert not alive()


def test_streamed_whole_waves_are_the_replicated_schedules_frames():
  movie, labels = _planted(4, 32)
  c, source, state, mesh = _setup(movie, labels, 'stream', batching='waves', device_bytes=1e6)
  reference = wave_batches.make_schedule(labels, budget=16, val_fraction=0.25, seed=0,
                                         order='shuffled', temporal=None, n_devices=8)
  plans = source.schedule.plans_from(1)
  for ref in reference.epoch(0)[1:]:
    _, _, plan = next(plans)
    assert isinstance(plan.views, jax.Array) and len(plan.views.addressable_shards) == 8
    batch = _draw(c, source, trainer.put_plan(state, plan, mesh), mesh)
    np.testing.assert_array_equal(_index(batch['views']), ref.frame)
    np.testing.assert_array_equal(batch['wave_id'], ref.wave_id)
    np.testing.assert_array_equal(batch['valid'], ref.valid)
  plans.close()


def test_auto_placement_and_bad_budgets():
  movie, labels = _planted(4, 32)
  shard = 14 * (SIZE * SIZE * 4 + 4)  # 14 frames per device (see the sharded test)
  assert placement.choose('auto', movie, labels, 8, shard)[0] == 'sharded'
  assert placement.choose('auto', movie, labels, 8, shard - 1)[0] == 'stream'
  assert placement.choose('auto', movie[:1, :8], labels[:1, :8], 8, 1e9)[0] == 'replicated'
  c = _config('stream', device_bytes=1000.0)  # not one row of frames
  with pytest.raises(InputError, match=r'device_bytes=1000 cannot hold 3 streamed chunks of one '
                     r'row of 14 frames \(14392 bytes each\); raise it to at least 43176'):
    trainer.placed_source(c, movie, labels)
  c.data.batching = 'waves'
  with pytest.raises(InputError, match='cannot hold 3 streamed batches'):
    trainer.placed_source(c, movie, labels)
  c = _config('sharded', batch_pairs=8 * 40)  # 40 pairs per device, 13 positions in a shard
  with pytest.raises(InputError, match='40 pairs per device do not fit a shard'):
    trainer.placed_source(c, movie, labels)
  with pytest.raises(InputError, match='fewer than the 8 devices'):
    trainer.placed_source(_config('sharded'), movie[:1, :8], labels[:1, :8])


# (sharded pairs: the stream's packed shards and batches without its feed)
@pytest.mark.parametrize('where, batching', [('stream', 'pairs'), ('sharded', 'waves')])
def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, where, batching):
  movie, labels = _planted(16, 16)
  np.save(tmp_path / 'movie.npy', movie)
  np.save(tmp_path / 'labels.npy', labels)
  c = _config(where, batching, movie=str(tmp_path / 'movie.npy'),
              labels=str(tmp_path / 'labels.npy'),
              device_bytes=3 * 16 * (SIZE * SIZE * 4 + 4))  # stream: one row a chunk, 2 a shard
  c.loss.denominator = 'negatives' if batching == 'waves' else 'all'
  c.train.update(steps=2, checkpoint_every=1, log_every=1, monitor_every=0)
  whole = trainer.train(c, str(tmp_path / 'whole'))
  c.train.steps = 1
  trainer.train(c, str(tmp_path / 'resumed'))
  c.train.steps = 2  # stream: step 1 reads the shards' second rows, so the stream starts there
  resumed = trainer.train(c, str(tmp_path / 'resumed'))
  assert int(resumed.step) == 2
  jax.tree.map(np.testing.assert_array_equal, resumed.params, whole.params)
  jax.tree.map(np.testing.assert_array_equal, resumed.batch_stats, whole.batch_stats)
