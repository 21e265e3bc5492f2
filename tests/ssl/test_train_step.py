"""The sharded SimCLR step: 1 device == 8 devices, per-device keys, loss goes down."""

import jax
import numpy as np
import optax
from jax.sharding import Mesh

from rwjax.models import create_model
from rwjax.ssl import sources
from rwjax.ssl import trainer
from rwjax.ssl.optim import make_schedule
from rwjax.ssl.train_step import make_eval_step, make_train_step

N_VIEWS, SIZE, N_DEV = 16, 16, 8
MODEL = create_model(width=4, projector=(16, 8), dtype='float32', channels=1)
# Plain SGD: the update is proportional to the gradient, so the 1-vs-8 comparison sees any error
# in gradient accumulation (Adam would normalise it away).
TX = optax.sgd(0.02, momentum=0.9)


def batch_fn(source, key):
  """A fixed buffer: the local views themselves; records the key it was given."""
  batch = {k: source[k] for k in ('views', 'wave_id', 'frame_idx', 'valid')}
  return dict(source, key=key[None]), batch


def fresh_state(mesh, tx=TX):
  """The state placed as the trainer places it (rwjax.ssl.trainer.init_state), its source split
  over the devices as a sharded movie is (a device's state: its share of the views, the key its
  step drew): 8 waves of 2 frames (t, t + 1), a wave's pattern plus frame noise; 2 invalid."""
  rng = np.random.default_rng(0)
  patterns = rng.random((8, SIZE, SIZE, 1))
  wave = np.tile(np.arange(8), 2)
  views = patterns[wave] + 0.3 * rng.random((N_VIEWS, SIZE, SIZE, 1))
  inputs = (views.astype(np.float32), (100 + wave).astype(np.int32),
            np.repeat([5, 6], 8).astype(np.int32), np.arange(N_VIEWS) < 14)

  def init(key, views, wave_id, frame_idx, valid):
    del key
    return {'views': views, 'wave_id': wave_id, 'frame_idx': frame_idx, 'valid': valid,
            'key': np.zeros((1, 2), np.uint32)}

  source = sources.Source(init=init, advance=None, checkpoint_view=None, restore_view=None,
                          inputs=inputs, sharded=True)
  return trainer.init_state(MODEL, tx, source, mesh, 42, SIZE)


def test_one_step_same_on_1_and_8_devices_and_eval_step_reports_its_loss():
  results = {}
  for n in (1, N_DEV):
    mesh = Mesh(np.array(jax.devices()[:n]), ('data',))
    step = make_train_step(MODEL, TX, mesh, batch_fn, temperature=0.5, separation=1,
                           learning_rate_fn=make_schedule('adam', lr=0.02))  # only reported
    results[n] = jax.device_get(step(fresh_state(mesh)))
  (s1, m1), (s8, m8) = results[1], results[N_DEV]
  assert int(m1['n_anchors']) == int(m8['n_anchors']) == 12  # 14 valid, 2 lost their partner
  np.testing.assert_allclose(m8['loss'], m1['loss'], rtol=1e-5)
  np.testing.assert_allclose(m8['grad_norm'], m1['grad_norm'], rtol=1e-4)
  np.testing.assert_allclose(m1['lr'], 0.02)
  assert int(s1.step) == int(s8.step) == 1
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               s8.batch_stats, s1.batch_stats)
  state = fresh_state(mesh)
  before = jax.device_get((state.params, state.batch_stats))
  update = lambda s: np.concatenate([np.ravel(a - b) for a, b in zip(
      jax.tree.leaves(s.params), jax.tree.leaves(before[0]))])
  u1, u8 = update(s1), update(s8)
  assert np.linalg.norm(u1) > 1e-3
  # A gradient summed once too often over the 8 devices would make u8 = 8 u1.
  assert np.linalg.norm(u8 - u1) < 1e-4 * np.linalg.norm(u1)
  np.testing.assert_allclose(u8, u1, atol=1e-5)
  # Each device drew key = fold_in(fold_in(rng, step), device index): all different.
  want = [jax.random.fold_in(jax.random.fold_in(s8.rng, 0), d) for d in range(N_DEV)]
  np.testing.assert_array_equal(s8.source['key'], np.stack(want))
  # The eval step's 'loss_batch' is the training step's loss for the same state (computed there
  # under value_and_grad, before its update); 'loss' (running statistics: at initialisation
  # mean 0, variance 1) is another number; nothing in the state changes.
  m = jax.device_get(make_eval_step(MODEL, mesh, batch_fn, temperature=0.5, separation=1)(state))
  np.testing.assert_allclose(m['loss_batch'], m8['loss'], rtol=1e-5)
  assert int(m['n_anchors']) == 12
  assert abs(float(m['loss']) - float(m['loss_batch'])) > 1e-3
  jax.tree.map(np.testing.assert_array_equal, jax.device_get((state.params, state.batch_stats)),
               before)


def test_loss_decreases_on_an_easy_task():
  """Judged on averages over steps: one value of a trajectory depends on float details that differ
  between CPUs (with SGD + momentum 0.9 the first ~10 steps oscillate by +-0.4); Adam at lr 1e-3
  descends steadily (here 2.24 -> 0.89 in 30 steps). A step whose gradient does not reach the
  parameters (e.g. a stop_gradient on z) keeps the loss at its first value and fails this.
  """
  mesh = Mesh(np.array(jax.devices()[:N_DEV]), ('data',))
  tx = optax.adam(1e-3)
  step = make_train_step(MODEL, tx, mesh, batch_fn, temperature=0.5, separation=1)
  state = fresh_state(mesh, tx)
  losses = []
  for _ in range(30):
    state, metrics = step(state)
    losses.append(float(metrics['loss']))
  assert np.all(np.isfinite(losses))
  first, last = losses[0], np.array(losses[-5:])
  assert last.mean() < 0.6 * first, losses
  assert last.max() < 0.7 * first, losses
  assert np.mean(losses[-10:]) < np.mean(losses[:10]), losses
  assert int(state.step) == 30
