"""Capacity manifolds: exact translations, true rotations and colour maps, class draws, the
random projection and the zero-padding that lets layers share one compiled analysis."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rwjax.errors import InputError
from rwjax.eval import capacity
from rwjax.eval import manifolds
from rwjax.eval.features import extract_features, random_projection
from rwjax.models import create_model, init_variables

exemplar = jax.jit(manifolds.exemplar_manifolds, static_argnames=(
    'kind', 'm', 'max_shift', 'max_degrees', 'fill'))


def test_translation_manifolds_are_exact_shifts_of_their_image():
  images = np.asarray(jax.random.uniform(jax.random.PRNGKey(0), (3, 8, 10, 2)))
  key = jax.random.PRNGKey(1)
  points = np.asarray(exemplar(key, images, kind='translate', m=7, max_shift=0.5, fill=-1.0))
  assert points.shape == (3, 7, 8, 10, 2)
  shifts = np.asarray(manifolds.random_shifts(key, 3, 7, 4))  # int(0.5 * min(8, 10)) = 4
  assert np.abs(shifts).max() <= 4 and len({tuple(s) for s in shifts.reshape(-1, 2)}) > 10
  h, w = 8, 10
  for p in range(3):
    for j in range(7):
      dy, dx = shifts[p, j]
      expected = np.full((h, w, 2), -1.0, np.float32)
      expected[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = (
          images[p, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)])
      np.testing.assert_array_equal(points[p, j], expected)


def test_rotation_manifolds_turn_their_image_about_the_centre():
  # A smooth off-centre blob: its centre of mass must turn with the drawn angle.
  size, p, m = 24, 2, 5
  y, x = np.mgrid[:size, :size] - (size - 1) / 2
  blobs = np.stack([np.exp(-((y - 5) ** 2 + (x - 2) ** 2) / 4),
                    np.exp(-((y + 1) ** 2 + (x + 6) ** 2) / 4)])[..., None].astype(np.float32)
  key = jax.random.PRNGKey(2)
  points = np.asarray(exemplar(key, blobs, kind='rotate', m=m, max_degrees=180.0))[..., 0]
  angles = np.deg2rad(np.asarray(manifolds.random_angles(key, p, m, 180.0)))
  com = lambda im: np.array([(im * y).sum(), (im * x).sum()]) / im.sum()
  for i in range(p):
    cy, cx = com(blobs[i, ..., 0])
    for j in range(m):
      # Counter-clockwise as displayed (row 0 on top): (y, x) -> (c y - s x, s y + c x)
      # with y pointing down, i.e. the rwjax.data.tasks.rotate convention.
      c, s = np.cos(angles[i, j]), np.sin(angles[i, j])
      np.testing.assert_allclose(com(points[i, j]), [c * cy - s * cx, s * cy + c * cx],
                                 atol=0.15)
      np.testing.assert_allclose(points[i, j].sum(), blobs[i].sum(), rtol=0.02)
  assert np.ptp(angles) > 1.0


def test_colour_manifolds_apply_one_affine_colour_map_per_point():
  # Mid-range colours: no clipping, so every jitter is exactly affine in RGB per image.
  images = 0.4 + 0.2 * np.asarray(jax.random.uniform(jax.random.PRNGKey(3), (2, 6, 6, 3)))
  points = np.asarray(exemplar(jax.random.PRNGKey(4), images, kind='color', m=4))
  assert points.shape == (2, 4, 6, 6, 3)
  for p in range(2):
    design = np.concatenate([images[p].reshape(-1, 3), np.ones((36, 1))], 1)
    for j in range(4):
      target = points[p, j].reshape(-1, 3)
      coef = np.linalg.lstsq(design, target, rcond=None)[0]
      np.testing.assert_allclose(design @ coef, target, atol=2e-5)
    assert np.abs(points[p, 0] - points[p, 1]).max() > 1e-3


def test_class_manifolds_hold_distinct_images_of_one_class_each():
  labels = np.repeat(np.arange(5), [6, 2, 6, 6, 6])  # class 1 has too few images for M=4
  images = np.arange(len(labels), dtype=np.float32).reshape(-1, 1, 1, 1)  # value = index
  points, classes = manifolds.class_manifolds(jax.random.PRNGKey(5), images, labels, p=4, m=4)
  assert points.shape == (4, 4, 1, 1, 1) and sorted(classes) == [0, 2, 3, 4]
  index = points.reshape(4, 4).astype(int)
  assert len(np.unique(index)) == 16 and (labels[index] == classes[:, None]).all()
  with pytest.raises(InputError, match='lower capacity.P or capacity.M'):
    manifolds.class_manifolds(jax.random.PRNGKey(5), images, labels, p=5, m=4)


def test_build_stacks_kinds_reproducibly_and_each_kind_independently():
  pool = jax.random.uniform(jax.random.PRNGKey(6), (9, 8, 8, 1))
  labels = np.arange(9) % 3
  kw = dict(exemplar_pool=pool, class_images=pool, class_labels=labels, p=3, m=3)
  key = jax.random.PRNGKey(7)
  both = manifolds.build(key, ('translate', 'rotate', 'class'), **kw)
  assert both.shape == (3, 3, 3, 8, 8, 1)
  np.testing.assert_array_equal(both, manifolds.build(key, ('translate', 'rotate', 'class'),
                                                      **kw))
  np.testing.assert_array_equal(both[1], manifolds.build(key, ('rotate',), **kw)[0])
  with pytest.raises(InputError, match='choose from'):
    manifolds.build(key, ('shear',), **kw)
  with pytest.raises(InputError, match='lower capacity.P'):
    manifolds.build(key, ('translate',), **{**kw, 'p': 10})


def test_random_projection_keeps_norms_and_distances_and_ignores_batching():
  x = jax.random.normal(jax.random.PRNGKey(8), (12, 3000)) * jnp.linspace(0.5, 3, 12)[:, None]
  project = jax.jit(random_projection, static_argnames=('dims', 'block'))
  y = np.asarray(project(x, jax.random.PRNGKey(9), dims=1500, block=1024))  # 3 blocks, padded
  x = np.asarray(x)
  # Relative error of a norm ~ sqrt(1 / (2 dims)) = 0.018: 0.06 is > 3 sigma.
  np.testing.assert_allclose(np.linalg.norm(y, axis=1), np.linalg.norm(x, axis=1), rtol=0.06)
  dist = lambda a: np.linalg.norm(a[:, None] - a[None], axis=-1)[np.triu_indices(len(a), 1)]
  np.testing.assert_allclose(dist(y), dist(x), rtol=0.1)
  np.testing.assert_allclose(project(x[5:7], jax.random.PRNGKey(9), dims=1500, block=1024),
                             y[5:7], rtol=1e-5, atol=1e-5)


def test_unpooled_features_are_the_flattened_stages_and_wide_ones_get_projected():
  model = create_model(stem='cifar', width=2, projector=(4, 2), dtype='float32', channels=1)
  variables = jax.jit(lambda k: init_variables(model, k, 16))(jax.random.PRNGKey(10))
  images = jax.random.uniform(jax.random.PRNGKey(11), (5, 16, 16, 1))
  layers = ('layer1', 'layer4', 'pooled')
  flat = extract_features(model, variables, images, batch_size=4, layers=layers, pool=False)
  assert [flat[l].shape for l in layers] == [(5, 16 * 16 * 2), (5, 2 * 2 * 16), (5, 16)]
  # 'pooled' is the spatial mean of the 2 x 2 layer4 map: flattening is (h, w, c)-major.
  np.testing.assert_allclose(flat['layer4'].reshape(5, 4, 16).mean(1), flat['pooled'],
                             rtol=1e-5, atol=1e-6)
  projected = extract_features(model, variables, images, batch_size=4, layers=layers,
                               pool=False, project_dims=32, project_key=jax.random.PRNGKey(12))
  assert projected['layer1'].shape == (5, 32)
  np.testing.assert_array_equal(projected['pooled'], flat['pooled'])  # narrower: kept
  with pytest.raises(InputError, match='project_key'):
    extract_features(model, variables, images, batch_size=4, pool=False, project_dims=32)


def test_zero_padding_features_leaves_the_manifold_analysis_unchanged():
  # The shapes of tests/eval/test_evaluate_binary.py's analyses: compiled once for both.
  rng = np.random.default_rng(0)
  points = (rng.normal(size=(3, 4, 32)) + 2 * rng.normal(size=(3, 1, 32))).astype(np.float32)
  padded = manifolds.pad_features(points, 64)
  assert padded.shape == (3, 4, 64)
  assert manifolds.pad_features(points[:, :, :3], 64).shape[-1] == 3  # N < M: D would change
  a, b = (capacity.manifold_analysis(x, n_t=20, key=jax.random.PRNGKey(1))
          for x in (points, padded))
  for k in ('alpha', 'radius', 'dimension', 'center_corr'):
    assert a[k] == pytest.approx(b[k], rel=1e-4), k
  assert a['K'] == b['K']
