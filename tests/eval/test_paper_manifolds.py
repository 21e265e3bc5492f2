"""The paper's manifolds: its shipped ranked lists, the three class selections, exemplar and
wave manifolds, and one clear error for too few images."""

import jax
import numpy as np
import pytest

from rwjax.data import augs
from rwjax.data.sources import original_positions, parse_ids
from rwjax.errors import InputError
from rwjax.eval import paper_manifolds as pm


def test_shipped_ranked_lists_have_the_papers_sizes():
  c10, c100 = pm.ranked_indices('cifar10'), pm.ranked_indices('cifar100')
  assert sorted(c10) == list(range(10)) and {len(v) for v in c10.values()} == {100}
  assert sorted(c100) == list(range(100)) and {len(v) for v in c100.values()} == {50}
  assert c10[0][:3] == [5382, 7836, 1067] and c100[99][-1] == 804  # the files' first / last
  every = [i for v in c100.values() for i in v]
  assert len(set(every)) == 5000 and 0 <= min(every) and max(every) < 10_000


def test_ranked_selection_maps_original_indices_through_the_loaded_order():
  ranked = {0: [5, 2, 7], 1: [1, 9, 4]}
  original = np.array([9, 3, 7, 1, 0, 2, 8, 5, 4, 6])  # TFDS's shuffled storage order
  labels = np.zeros(10, int)
  labels[[0, 3, 8]] = 1  # originals 9, 1, 4 are class 1
  index = pm.class_manifold_index(labels, [0, 1], 2, selection='ranked', ranked=ranked,
                                  original=original)
  np.testing.assert_array_equal(original[index], [[5, 2], [1, 9]])
  with pytest.raises(InputError, match='image folders keep none'):
    pm.class_manifold_index(labels, [0, 1], 2, selection='ranked', ranked=ranked)
  with pytest.raises(InputError, match='M=4 needs more'):
    pm.class_manifold_index(labels, [0], 4, selection='ranked', ranked=ranked,
                            original=original)
  np.testing.assert_array_equal(parse_ids([b'test_00042', 'train_7']), [42, 7])
  with pytest.raises(InputError, match='original'):
    parse_ids(['cat.jpg'])
  with pytest.raises(InputError, match='keeps no original image order'):
    original_positions('folder:/nowhere', 'test')


def test_first_and_confidence_selections_and_too_few_images():
  labels = np.array([1, 0, 1, 1, 0, 1])
  scores = np.array([0.1, 0.5, 0.9, 0.3, 0.8, 0.9])
  np.testing.assert_array_equal(
      pm.class_manifold_index(labels, [1, 0], 2, selection='first'), [[0, 2], [1, 4]])
  np.testing.assert_array_equal(  # highest own-class probability first, ties in order
      pm.class_manifold_index(labels, [1, 0], 2, selection='confidence', scores=scores),
      [[2, 5], [4, 1]])
  with pytest.raises(InputError, match=r'class 0 has 2 test images; a manifold of M=3'):
    pm.class_manifold_index(labels, [1, 0], 3, selection='first')
  np.testing.assert_array_equal(pm.draw_classes(jax.random.PRNGKey(0), 10, 10), np.arange(10))
  drawn = pm.draw_classes(jax.random.PRNGKey(0), 100, 50)
  assert len(set(drawn)) == 50 and drawn.max() < 100


def test_exemplar_manifolds_are_draws_of_one_image_each():
  pool = np.asarray(jax.random.uniform(jax.random.PRNGKey(1), (6, 8, 8, 3)))
  key = jax.random.PRNGKey(2)
  points = np.asarray(pm.exemplar_manifolds(key, pool, p=3, m=4,
                                            spec=augs.MANIFOLD_TRANSFORMS['translate']))
  assert points.shape == (3, 4, 8, 8, 3)
  chosen = np.asarray(jax.random.choice(jax.random.fold_in(key, 0), 6, (3,), replace=False))
  _, shifts = augs.affine_params(jax.random.fold_in(key, 1), 12, 8, 8, augs.Affine(0, 0.1))
  assert np.abs(np.asarray(shifts)).max() <= 1  # round(U(-0.8, 0.8))
  for p in range(3):
    for j in range(4):
      dy, dx = np.asarray(shifts)[p * 4 + j]
      inner = points[p, j, max(dy, 0):8 + min(dy, 0), max(dx, 0):8 + min(dx, 0)]
      np.testing.assert_array_equal(
          inner, pool[chosen[p], max(-dy, 0):8 + min(-dy, 0), max(-dx, 0):8 + min(-dx, 0)])
  with pytest.raises(InputError, match='7 exemplar manifolds need 7 source images'):
    pm.exemplar_manifolds(key, pool, p=7, m=2, spec=None)


def test_wave_manifolds_take_the_first_waves_of_50_to_132_frames_by_onset():
  lengths = {3: 60, 0: 10, 4: 140, 1: 55, 2: 80}  # wave id -> frames, listed in onset order
  labels = np.concatenate([np.full(n, i) for i, n in lengths.items()] + [np.full(5, -1)])
  labels = np.stack([labels[:175], labels[175:]])  # a batch of two retinas [2, T]
  waves = pm.wave_manifolds(labels)
  assert [len(w) for w in waves] == [60, 55, 80]  # ids 3, 1, 2 in onset order
  flat = labels.reshape(-1)
  assert all((flat[w] == i).all() for w, i in zip(waves, (3, 1, 2)))
  assert len(pm.wave_manifolds(labels, count=2)) == 2
  with pytest.raises(InputError, match='wave manifolds need at least 2'):
    pm.wave_manifolds(labels, min_frames=100)
