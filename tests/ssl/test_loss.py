"""The multi-positive SimCLR loss against a plain NumPy version, and sharded == single-device."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec as P

from rwjax.errors import InputError
from rwjax.ssl.loss import sharded_simclr_loss, simclr_loss


def numpy_loss(z, wave, frame, valid, tau, sep, denominator='all'):
  """L_i = -log(sum_pos exp(s/tau) / sum_D exp(s/tau)), written out in float64.

  Positives of anchor i: other valid frames of its wave at frame i - sep or i + sep. Negatives:
  valid frames of other waves. D = the negatives ('negatives', the paper's) or the positives and
  the negatives ('all', NT-Xent). Anchors: valid views with a positive (and, for 'negatives', a
  negative). Returns (mean over anchors, number of anchors).
  """
  z = np.asarray(z, np.float64)
  losses = []
  for i in range(len(z)):
    if not valid[i]:
      continue
    num, neg_sum = 0.0, 0.0
    has_pos = has_neg = False
    for j in range(len(z)):
      if j == i or not valid[j]:
        continue
      e = np.exp(np.dot(z[i], z[j]) / tau)
      if wave[j] != wave[i]:
        neg_sum += e
        has_neg = True
      elif frame[j] in (frame[i] - sep, frame[i] + sep):
        num += e
        has_pos = True
    if not has_pos or (denominator == 'negatives' and not has_neg):
      continue
    den = neg_sum if denominator == 'negatives' else num + neg_sum
    losses.append(-np.log(num / den))
  return np.mean(losses), len(losses)


def random_batch(seed, n=32, d=8, n_waves=5, n_frames=6):
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(n, d))
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  wave = rng.integers(0, n_waves, n).astype(np.int32)
  frame = rng.integers(0, n_frames, n).astype(np.int32)
  valid = rng.random(n) > 0.2
  return z.astype(np.float32), wave, frame, valid


@pytest.mark.parametrize('denominator', ['all', 'negatives'])
@pytest.mark.parametrize('sep,tau', [(1, 0.5), (2, 0.1)])
def test_matches_numpy_formula(sep, tau, denominator):
  z, wave, frame, valid = random_batch(sep)
  want, n_want = numpy_loss(z, wave, frame, valid, tau, sep, denominator)
  got, n_got = jax.jit(simclr_loss, static_argnames=('temperature', 'separation', 'denominator'))(
      z, wave, frame, valid, temperature=tau, separation=sep, denominator=denominator)
  assert n_got == n_want > 5
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('denominator', ['negatives', 'all'])
def test_hand_built_batch(denominator):
  # Wave 10: frames 0, 1, 2 all at e1; wave 20: frames 5, 6 at e2; 3 padding views (8 in all).
  # With tau = 0.5, exp(s / tau) is e^2 within a wave and e^0 = 1 across waves. Per anchor:
  # 'negatives': frames 0 and 2 of wave 10: -log(e^2 / 2); frame 1 (two positives): -log(2e^2 / 2);
  # frames of wave 20: -log(e^2 / 3). Mean (2 log 2 + 2 log 3 - 10) / 5 = 2 log 6 / 5 - 2.
  # 'all': -log(e^2 / (e^2 + 2)) twice, -log(2e^2 / (2e^2 + 2)) once, -log(e^2 / (e^2 + 3)) twice.
  e1, e2 = [1.0, 0.0], [0.0, 1.0]
  pad = [0.6, 0.8]  # a unit vector that would change every value if it counted
  z = np.array([e1, e1, e1, e2, e2, pad, pad, pad], np.float32)
  wave = np.array([10, 10, 10, 20, 20, 10, 20, 30], np.int32)
  frame = np.array([0, 1, 2, 5, 6, 3, 4, 0], np.int32)
  valid = np.array([1, 1, 1, 1, 1, 0, 0, 0], bool)
  e2_ = np.exp(2.0)
  want = {'negatives': 2 * np.log(6) / 5 - 2,
          'all': (2 * np.log((e2_ + 2) / e2_) + np.log((2 * e2_ + 2) / (2 * e2_))
                  + 2 * np.log((e2_ + 3) / e2_)) / 5}
  ref, n_ref = numpy_loss(z, wave, frame, valid, 0.5, 1, denominator)
  assert n_ref == 5
  np.testing.assert_allclose(ref, want[denominator], rtol=1e-12)
  got, n = simclr_loss(z, wave, frame, valid, temperature=0.5, denominator=denominator)
  assert n == 5
  np.testing.assert_allclose(got, want[denominator], rtol=1e-6)
  assert want['negatives'] < 0  # not an error: the numerator is not part of the denominator
  # One wave only: no anchor has a negative, so there is no 'negatives' anchor (not -inf).
  loss, n = simclr_loss(z, np.full(8, 10, np.int32), frame, valid, denominator=denominator)
  assert (n, loss) == (0, 0) if denominator == 'negatives' else n > 0


def test_one_positive_per_view_is_two_view_nt_xent():
  rng = np.random.default_rng(0)
  n, tau = 8, 0.5
  z = rng.normal(size=(2 * n, 16))
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  # Views i and i + n are frames 3 and 4 of wave i: each view's only positive is its partner.
  wave = np.tile(np.arange(n), 2).astype(np.int32) * 7
  frame = np.repeat([3, 4], n).astype(np.int32)
  s = z @ z.T / tau
  partner = (np.arange(2 * n) + n) % (2 * n)
  off_diag = ~np.eye(2 * n, dtype=bool)
  nt_xent = np.mean([np.log(np.exp(s[i][off_diag[i]]).sum()) - s[i, partner[i]]
                     for i in range(2 * n)])
  got, count = simclr_loss(jnp.asarray(z, jnp.float32), wave, frame, np.ones(2 * n, bool),
                           temperature=tau)
  assert count == 2 * n
  np.testing.assert_allclose(got, nt_xent, rtol=1e-5)


def test_no_positives_is_zero_loss_zero_anchors_and_a_zero_gradient():
  # (Invalid views ignored: test_matches_numpy_formula, test_hand_built_batch's padding.)
  z, wave, frame, valid = random_batch(3)
  loss, count = simclr_loss(z, np.arange(len(z), dtype=np.int32), frame, valid)
  assert count == 0 and loss == 0
  grad = jax.grad(lambda z: simclr_loss(z, wave, frame, valid & False)[0])(jnp.asarray(z))
  assert np.all(np.isfinite(grad)) and np.all(grad == 0)


@pytest.mark.parametrize('kw, match', [
    (dict(separation=0), 'separation'), (dict(temperature=0.0), 'temperature'),
    (dict(denominator='nagatives'), "denominator 'nagatives' is unknown")])
def test_bad_settings_raise(kw, match):
  with pytest.raises(InputError, match=match):
    simclr_loss(*random_batch(0), **kw)


@pytest.mark.parametrize('denominator', ['negatives', 'all'])
def test_sharded_loss_and_gradients_match_single_device(denominator):
  rng = np.random.default_rng(1)
  n, d = 32, 6
  x = rng.normal(size=(n, d)).astype(np.float32)
  w = rng.normal(size=(d, 4)).astype(np.float32)
  _, wave, frame, valid = random_batch(2, n=n)
  project = lambda w, x: x @ w / jnp.linalg.norm(x @ w, axis=1, keepdims=True)
  grads = lambda f: jax.value_and_grad(f, argnums=(0, 1), has_aux=True)
  (want_loss, want_n), (want_gw, want_gx) = grads(lambda w, x: simclr_loss(
      project(w, x), wave, frame, valid, denominator=denominator))(w, x)

  def per_device(w, x, wave, frame, valid):  # as the train step: w replicated, x sharded
    (loss, n), (gw, gx) = grads(lambda w, x: sharded_simclr_loss(
        project(w, x), wave, frame, valid, temperature=0.5, denominator=denominator))(w, x)
    return loss, n, gw, gx

  for devices in (jax.devices()[:1], jax.devices()[:8]):
    fn = jax.shard_map(per_device, mesh=Mesh(np.array(devices), ('data',)),
                       in_specs=(P(),) + (P('data'),) * 4, out_specs=(P(), P(), P(), P('data')))
    loss, n_got, gw, gx = jax.jit(fn)(w, x, wave, frame, valid)
    assert n_got == want_n > 5
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    # A gradient counted once per device would be 8x too large here.
    np.testing.assert_allclose(gw, want_gw, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gx, want_gx, rtol=1e-4, atol=1e-6)
