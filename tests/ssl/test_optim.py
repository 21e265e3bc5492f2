"""Optimisers: masks, PyTorch-style Adam weight decay, LARS scaling, schedules, bad values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rwjax.errors import InputError
from rwjax.models import create_model, init_variables
from rwjax.ssl.optim import decay_mask, make_optimizer, make_schedule, peak_learning_rate

PARAMS = {'conv': {'kernel': jnp.full((3, 3, 2, 2), 0.5)},
          'bn': {'scale': jnp.full((2,), 0.5), 'bias': jnp.full((2,), 0.5)},
          'dense': {'kernel': jnp.full((4, 2), -0.5), 'bias': jnp.full((2,), 0.5)}}


def test_mask_excludes_batchnorm_and_biases_of_the_model():
  model = create_model(width=4, projector=(16, 8))
  params = jax.eval_shape(lambda k: init_variables(model, k, 16), jax.random.PRNGKey(0))['params']
  flat = jax.tree_util.tree_flatten_with_path(decay_mask(params))[0]
  for path, decayed in flat:
    assert decayed == jax.tree_util.keystr(path).endswith("['kernel']"), path
  assert sum(d for _, d in flat) == 20 + 2  # 20 conv kernels, 2 dense kernels


def test_lars_skips_decay_and_trust_ratio_for_batchnorm_and_biases():
  tx = make_optimizer('lars', batch_pairs=256, weight_decay=0.1)
  zero = jax.tree.map(jnp.zeros_like, PARAMS)
  updates, _ = tx.update(zero, tx.init(PARAMS), PARAMS)
  for leaf in (updates['bn']['scale'], updates['bn']['bias'], updates['dense']['bias']):
    np.testing.assert_array_equal(leaf, 0)
  # Kernels: decay, then the trust ratio 1e-3 |w| / |wd w| = 1e-2, then lr 0.3.
  np.testing.assert_allclose(updates['conv']['kernel'], -0.3 * 1e-2 * 0.1 * 0.5, rtol=1e-5)
  # BN parameters follow the plain gradient (scaled by lr only, no trust ratio).
  grads = jax.tree.map(lambda p: jnp.full_like(p, 2.0), PARAMS)
  updates, _ = tx.update(grads, tx.init(PARAMS), PARAMS)
  np.testing.assert_allclose(updates['bn']['scale'], -0.3 * 2.0, rtol=1e-6)


def test_adam_weight_decay_is_l2_on_the_gradient_like_pytorch():
  tx = make_optimizer('adam', lr=1e-3, weight_decay=1e-2)
  zero = jax.tree.map(jnp.zeros_like, PARAMS)
  updates, _ = tx.update(zero, tx.init(PARAMS), PARAMS)
  # Adam normalises g + wd * w: the first step is -lr * sign(w) (AdamW would give -lr * wd * w).
  for p, u in zip(jax.tree.leaves(PARAMS), jax.tree.leaves(updates)):
    np.testing.assert_allclose(u, -1e-3 * np.sign(p), rtol=1e-4)


def test_learning_rates_and_schedules():
  assert peak_learning_rate('adam') == 1e-3
  assert peak_learning_rate('lars', batch_pairs=512) == pytest.approx(0.6)
  assert peak_learning_rate('lars', lr=1.0, batch_pairs=128) == pytest.approx(0.5)
  cosine = make_schedule('adam', lr=1.0, warmup_steps=10, total_steps=110, schedule='cosine')
  for step, want in [(0, 0.0), (5, 0.5), (10, 1.0), (60, 0.5), (110, 0.0)]:
    assert float(cosine(step)) == pytest.approx(want, abs=1e-6), step
  constant = make_schedule('adam', lr=2.0, warmup_steps=4)
  for step, want in [(0, 0.0), (2, 1.0), (4, 2.0), (1000, 2.0)]:
    assert float(constant(step)) == pytest.approx(want), step
  assert float(make_schedule('lars', batch_pairs=256)(7)) == pytest.approx(0.3)
  # A cosine schedule needs more steps than its warmup (config.optim's other values are checked
  # by their rules: tests/test_train.py).
  for kwargs in ({}, {'warmup_steps': 10, 'total_steps': 5}):
    with pytest.raises(InputError, match='cosine schedule needs total_steps > warmup_steps'):
      make_optimizer(schedule='cosine', **kwargs)
