"""On-device augmentations: exact shifts, flips, noise; everything off = identity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rwjax.errors import InputError
from rwjax.ssl.augment import augment, gaussian_noise, random_flip, random_translate

VIEWS = jax.random.uniform(jax.random.PRNGKey(0), (64, 8, 8, 2))


def test_translation_is_an_exact_zero_filled_shift():
  out = np.asarray(jax.jit(random_translate, static_argnums=2)(jax.random.PRNGKey(2), VIEWS, 3))
  views = np.asarray(VIEWS)
  seen = set()
  for v, o in zip(views, out):
    # Find the shift that explains the output; exactly one must.
    matches = []
    for dy in range(-3, 4):
      for dx in range(-3, 4):
        want = np.zeros_like(v)
        want[max(dy, 0):8 + min(dy, 0), max(dx, 0):8 + min(dx, 0)] = (
            v[max(-dy, 0):8 + min(-dy, 0), max(-dx, 0):8 + min(-dx, 0)])
        if np.array_equal(o, want):
          matches.append((dy, dx))
    assert len(matches) == 1
    seen.add(matches[0])
  assert len(seen) > 20  # shifts drawn per view


def test_flip_mirrors_about_half_the_views():
  out = np.asarray(random_flip(jax.random.PRNGKey(3), VIEWS))
  flipped = [np.array_equal(o, v[:, ::-1]) for o, v in zip(out, np.asarray(VIEWS))]
  kept = [np.array_equal(o, v) for o, v in zip(out, np.asarray(VIEWS))]
  assert all(f or k for f, k in zip(flipped, kept))
  assert 16 < sum(flipped) < 48


def test_noise_has_the_requested_std_and_composes():
  out = jax.jit(gaussian_noise, static_argnums=2)(jax.random.PRNGKey(4), VIEWS, 0.1)
  assert float(jnp.std(out - VIEWS)) == pytest.approx(0.1, rel=0.05)
  both = jax.jit(lambda k, v: augment(k, v, max_shift=1, flip=True, noise_std=0.01))(
      jax.random.PRNGKey(5), VIEWS)
  assert both.shape == VIEWS.shape and not np.allclose(both, VIEWS)


def test_off_is_identity_and_bad_values_raise():
  assert augment(jax.random.PRNGKey(1), VIEWS) is VIEWS
  with pytest.raises(InputError, match='max_shift'):
    augment(jax.random.PRNGKey(0), VIEWS, max_shift=-1)
  with pytest.raises(InputError, match='noise_std'):
    augment(jax.random.PRNGKey(0), VIEWS, noise_std=-0.1)
