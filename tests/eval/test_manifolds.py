"""Exemplar, class and wave manifolds (waves found in a movie as the trainer finds them)."""

import functools

import jax
import numpy as np
import pytest

from rwjax import defaults
from rwjax.errors import InputError
from rwjax.eval import evals
from rwjax.eval import manifolds as M
from rwjax.eval.transforms import Transform
from rwjax.waves import frames as frames_lib


@pytest.mark.parametrize('style, k', [('rwjax', 4), ('torchvision', 1)])
def test_translation_manifolds_are_exact_shifts_of_one_pool_image_each(style, k, shift):
  pool = np.asarray(jax.random.uniform(jax.random.PRNGKey(0), (6, 8, 8, 2)))
  # rwjax: int(0.5 * 8) = 4 pixels; the paper's translate=0.1: round(U(-0.8, 0.8)) = 1.
  t = Transform('translate', style, translate=0.5 if style == 'rwjax' else 0.1)
  points = np.asarray(M.exemplar(jax.random.PRNGKey(1), jax.random.PRNGKey(2), pool, p=3, m=7,
                                 t=t))
  assert points.shape == (3, 7, 8, 8, 2)
  sources, shifts = [], set()
  for p in range(3):
    for j in range(7):
      found = [(i, dy, dx) for i in range(6) for dy in range(-k, k + 1)
               for dx in range(-k, k + 1)
               if np.array_equal(shift(pool[i], dy, dx), points[p, j])]
      assert len(found) == 1
      sources.append(found[0][0])
      shifts.add(found[0][1:])
  assert [len(set(sources[7 * p:7 * p + 7])) for p in range(3)] == [1, 1, 1]
  assert len(set(sources)) == 3 and len(shifts) > 4  # 3 distinct images, several shifts


def test_rotation_manifolds_turn_about_the_centre_and_colour_ones_map_colours_affinely():
  # Smooth off-centre blobs: the centre of mass keeps its distance from the centre, and the
  # blob its mass, while the angle varies.
  size = 24
  y, x = np.mgrid[:size, :size] - (size - 1) / 2
  blobs = np.stack([np.exp(-((y - 5) ** 2 + (x - 2) ** 2) / 4),
                    np.exp(-((y + 1) ** 2 + (x + 6) ** 2) / 4)])[..., None].astype(np.float32)
  points = np.asarray(M.exemplar(jax.random.PRNGKey(1), jax.random.PRNGKey(2), blobs, p=2, m=5,
                                 t=Transform('rotate')))[..., 0]
  com = lambda im: np.array([(im * y).sum(), (im * x).sum()]) / im.sum()
  radii = [np.linalg.norm(com(b)) for b in blobs[..., 0]]  # 5.39 and 6.08
  sources = []
  for p in range(2):
    angles = []
    for j in range(5):
      c = com(points[p, j])
      sources.append(int(np.argmin([abs(np.linalg.norm(c) - r) for r in radii])))
      np.testing.assert_allclose(np.linalg.norm(c), radii[sources[-1]], atol=0.15)
      np.testing.assert_allclose(points[p, j].sum(), blobs[0].sum(), rtol=0.02)
      angles.append(np.arctan2(*c))
    assert np.ptp(angles) > 0.5
  assert sorted(sources) == [0] * 5 + [1] * 5 and sources[0] == sources[4]
  # Mid-range colours: no clipping, so every rwjax jitter is affine in RGB per image.
  pool = 0.4 + 0.2 * np.asarray(jax.random.uniform(jax.random.PRNGKey(3), (2, 6, 6, 3)))
  points = np.asarray(M.exemplar(jax.random.PRNGKey(0), jax.random.PRNGKey(4), pool, p=2, m=4,
                                 t=Transform('color')))
  for p in range(2):
    fits = []
    for i in range(2):
      design = np.concatenate([pool[i].reshape(-1, 3), np.ones((36, 1))], 1)
      residual = [np.abs(design @ np.linalg.lstsq(design, q.reshape(-1, 3), rcond=None)[0]
                         - q.reshape(-1, 3)).max() for q in points[p]]
      fits.append(max(residual))
    assert min(fits) < 2e-5  # all 4 points are colour maps of one source image
    assert np.abs(points[p, 0] - points[p, 1]).max() > 1e-3


def test_class_manifolds_of_each_selection_and_the_papers_ranked_lists():
  labels = np.repeat(np.arange(5), [6, 2, 6, 6, 6])  # class 1 has too few images for M=4
  index = M.random_classes(jax.random.PRNGKey(5), labels, p=4, m=4, what='config.x')
  assert index.shape == (4, 4) and len(np.unique(index)) == 16
  classes = labels[index[:, 0]]
  assert sorted(classes) == [0, 2, 3, 4] and (labels[index] == classes[:, None]).all()
  with pytest.raises(InputError, match=r'config.x: 5 class manifolds of m=4 images.*4 of the 5'):
    M.random_classes(jax.random.PRNGKey(5), labels, p=5, m=4, what='config.x')
  c10, c100 = M.ranked_indices('cifar10'), M.ranked_indices('cifar100')
  assert sorted(c10) == list(range(10)) and {len(v) for v in c10.values()} == {100}
  assert sorted(c100) == list(range(100)) and {len(v) for v in c100.values()} == {50}
  assert c10[0][:3] == [5382, 7836, 1067] and c100[99][-1] == 804  # the files' first / last
  every = [i for v in c100.values() for i in v]
  assert len(set(every)) == 5000 and 0 <= min(every) and max(every) < 10_000
  index = functools.partial(M.class_index, what='config.c')
  ranked = {0: [5, 2, 7], 1: [1, 9, 4]}
  original = np.array([9, 3, 7, 1, 0, 2, 8, 5, 4, 6])  # TFDS's shuffled storage order
  labels = np.zeros(10, int)
  labels[[0, 3, 8]] = 1  # originals 9, 1, 4 are class 1
  got = index(labels, [0, 1], 2, selection='ranked', ranked=ranked, original=original)
  np.testing.assert_array_equal(original[got], [[5, 2], [1, 9]])
  with pytest.raises(InputError, match=r'config.c: the paper ranked images of class 0.*m=4'):
    index(labels, [0], 4, selection='ranked', ranked=ranked, original=original)
  with pytest.raises(InputError, match='config.c: ranked images of class 1 carry other labels'):
    index(np.zeros(10, int), [1], 2, selection='ranked', ranked=ranked, original=original)
  labels = np.array([1, 0, 1, 1, 0, 1])
  scores = np.array([0.1, 0.5, 0.9, 0.3, 0.8, 0.9])
  np.testing.assert_array_equal(index(labels, [1, 0], 2, selection='first'), [[0, 2], [1, 4]])
  np.testing.assert_array_equal(  # highest own-class probability first, ties in order
      index(labels, [1, 0], 2, selection='confidence', scores=scores), [[2, 5], [4, 1]])
  with pytest.raises(InputError, match=r'config.c: class 0 has 2 test images.*m=3'):
    index(labels, [1, 0], 3, selection='first')
  np.testing.assert_array_equal(M.draw_classes(jax.random.PRNGKey(0), 10, 10), np.arange(10))
  drawn = M.draw_classes(jax.random.PRNGKey(0), 100, 50)
  assert len(set(drawn)) == 50 and drawn.max() < 100 and (np.diff(drawn) > 0).all()


def _manifold_eval(c, context, pre=None):
  evals.validate('m', c)
  return evals.build('m', c, context(pre))


def test_wave_manifolds_are_the_first_waves_by_onset_the_trainer_finds_or_labels_list(
    tmp_path, eval_context):
  lengths = {3: 60, 0: 10, 4: 140, 1: 55, 2: 80}  # wave id -> frames, listed in onset order
  labels = np.concatenate([np.full(n, i) for i, n in lengths.items()] + [np.full(5, -1)])
  labels = np.stack([labels[:175], labels[175:]])  # a batch of two retinas [2, T]
  waves = M.wave_index(labels, count=50, min_frames=50, max_frames=132)
  assert [len(w) for w in waves] == [60, 55, 80]  # ids 3, 1, 2 in onset order
  flat = labels.reshape(-1)
  assert all((flat[w] == i).all() for w, i in zip(waves, (3, 1, 2)))
  assert len(M.wave_index(labels, count=2, min_frames=50, max_frames=132)) == 2
  with pytest.raises(InputError, match='wave manifolds need at least 2'):
    M.wave_index(labels, count=50, min_frames=100, max_frames=132)
  # Squares above the threshold 0.5 over frames 2-7 (16 px x 6 frames = 96 pixel-frames),
  # 12-16 (4 px x 5 = 20), 20-26 (16 x 7 = 112) and 30-37 (9 x 8 = 72).
  movie = 0.1 * np.random.default_rng(0).random((40, 16, 16), np.float32)
  for (t0, t1), (y, x, side) in (((2, 8), (1, 1, 4)), ((12, 17), (9, 9, 2)),
                                 ((20, 27), (8, 2, 4)), ((30, 38), (3, 10, 3))):
    movie[t0:t1, y:y + side, x:x + side] = 1.0
  np.save(tmp_path / 'movie.npy', movie)
  pre = defaults.smoke_pretrain_config()
  pre.data.source, pre.data.movie, pre.data.threshold = 'file', str(tmp_path / 'movie.npy'), 0.5
  c = evals.new('manifolds')
  c.kinds, c.layers, c.waves.frames = ('waves',), 'pooled', (3, 20)
  frames = np.asarray(frames_lib.to_network_input(movie, 8, 1))
  # min_wave_size 50 pixel-frames: the 20-pixel-frame square is no wave.
  for min_size, waves in ((50, ((2, 8), (20, 27), (30, 38))), (80, ((2, 8), (20, 27)))):
    pre.data.min_wave_size = min_size
    images, sizes = _manifold_eval(c, eval_context, pre).manifolds(0)['waves']
    assert sizes == [t1 - t0 for t0, t1 in waves]
    np.testing.assert_allclose(images, np.concatenate([frames[t0:t1] for t0, t1 in waves]),
                               atol=1e-6)
  # A label file, when given, decides instead: its waves of 3..20 frames.
  labels = np.full(40, -1, np.int32)
  labels[0:10], labels[10:12], labels[15:35] = 0, 1, 2
  np.save(tmp_path / 'labels.npy', labels)
  c.waves.labels = str(tmp_path / 'labels.npy')
  c.waves.movie = str(tmp_path / 'movie.npy')
  assert _manifold_eval(c, eval_context, pre).manifolds(0)['waves'][1] == [10, 20]
  c.waves.frames = (10, 10)  # 1 wave: too few, one error naming the key
  with pytest.raises(InputError, match=r'1 of the 3 waves.*config.evals.m.waves.frames'):
    _manifold_eval(c, eval_context, pre)
  # No movie: the kind is skipped, and the report says so.
  pre.data.source, c.waves.movie, c.kinds = 'sim', '', ('waves', 'translate')
  c.exemplar.source, c.exemplar.p, c.exemplar.m = 'digits', 2, 2
  skipped = _manifold_eval(c, eval_context, pre)
  assert skipped.kinds == ('translate',) and 'waves.movie' in skipped.notes[0]
