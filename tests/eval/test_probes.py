"""Linear probes; the paper's Adam probe against a NumPy Adam typed from torch.optim.Adam."""

import jax
import numpy as np
import pytest

from rwjax.data import load_images, to_network_input
from rwjax.errors import InputError
from rwjax.eval import probes


def test_logistic_probe_is_perfect_on_separable_data_and_good_on_raw_digit_pixels():
  rng = np.random.default_rng(0)
  classes, dim = 5, 12
  centres = rng.normal(size=(classes, dim)) * 4

  def sample(n):
    labels = rng.integers(0, classes, n)
    return (centres[labels] + 0.3 * rng.normal(size=(n, dim))).astype(np.float32), labels

  (x_train, y_train), test, other = sample(300), sample(200), sample(50)
  results = probes.logistic(jax.random.PRNGKey(0), x_train, y_train, [test, other],
                            num_classes=classes)
  assert results == [probes.ProbeResult(1.0, 1.0, ())] * 2
  probe = probes.fit_probe(jax.random.PRNGKey(0), x_train, y_train, num_classes=classes)
  assert probe.train_accuracy == 1.0 and probe.l2 in probes.L2_GRID
  assert len(probe.val_accuracies) == len(probes.L2_GRID)
  flat = lambda x: np.asarray(to_network_input(x, 8, 1)).reshape(len(x), -1)
  images, labels, names = load_images('digits', 'train')
  test_images, test_labels, _ = load_images('digits', 'test')
  probe = probes.fit_probe(jax.random.PRNGKey(0), flat(images), labels, num_classes=len(names))
  assert probes.probe_accuracy(probe, flat(test_images), test_labels) > 0.9
  # The strength with the best validation accuracy, the strongest among ties.
  best = max(probe.val_accuracies)
  assert probe.val_accuracies[probes.L2_GRID.index(probe.l2)] == best
  assert all(v < best for v in probe.val_accuracies[probes.L2_GRID.index(probe.l2) + 1:])


def test_probes_reject_bad_shapes_and_splits_and_l2_normalisation():
  x, y = np.zeros((10, 3), np.float32), np.zeros(10, np.int32)
  with pytest.raises(InputError, match='same layer'):
    probes.logistic(jax.random.PRNGKey(0), x, y, [(x[:, :2], y)], num_classes=2)
  with pytest.raises(InputError, match='val_fraction'):
    probes.fit_probe(jax.random.PRNGKey(0), x, y, num_classes=2, val_fraction=0.0)
  with pytest.raises(InputError, match=r'features \[N, D\]'):
    probes.fit_probe(jax.random.PRNGKey(0), x[:, 0], y, num_classes=2)
  x = np.array([[3.0, 4.0], [0.0, 0.0]], np.float32)
  np.testing.assert_allclose(probes.l2_normalize(x), [[0.6, 0.8], [0.0, 0.0]])


def numpy_adam_accuracies(w, b, xs, y, orders, batch, lr, wd, tests):
  """torch.optim.Adam(lr, weight_decay=wd) on softmax regression, mean cross-entropy per
  batch (the last one smaller), each test set's accuracy after each epoch; epoch e trains
  on xs[e] and tests on tests' [e]."""
  params = [w.astype(np.float64), b.astype(np.float64)]
  m = [np.zeros_like(p) for p in params]
  v = [np.zeros_like(p) for p in params]
  t, out = 0, []
  for e, order in enumerate(orders):
    x = xs[e]
    for start in range(0, len(order), batch):
      idx = order[start:start + batch]
      logits = x[idx].astype(np.float64) @ params[0] + params[1]
      p = np.exp(logits - logits.max(1, keepdims=True))
      p /= p.sum(1, keepdims=True)
      p[np.arange(len(idx)), y[idx]] -= 1.0
      grads = [x[idx].T @ p / len(idx), p.mean(0)]
      t += 1
      for i, g in enumerate(grads):
        g = g + wd * params[i]
        m[i] = 0.9 * m[i] + 0.1 * g
        v[i] = 0.999 * v[i] + 0.001 * g * g
        params[i] = params[i] - lr * (m[i] / (1 - 0.9 ** t)) / (
            np.sqrt(v[i] / (1 - 0.999 ** t)) + 1e-8)
    out.append([np.mean(np.argmax(xt[e] @ params[0] + params[1], 1) == yt) for xt, yt in tests])
  return np.asarray(out)


@pytest.mark.parametrize('redraw', ['once', 'epoch'])
def test_adam_probe_is_torch_adam_epoch_by_epoch_and_reports_best_and_last(redraw):
  rng = np.random.default_rng(4)
  n, d, k = 120, 6, 3  # batches of 50, 50 and 20
  x = rng.normal(size=(n + 200, d)).astype(np.float32)
  y = np.argmax(x @ rng.normal(size=(d, k)) + 1.5 * rng.normal(size=(n + 200, k)), 1)
  # 'epoch': the features of a new draw of the images for each epoch, train and test.
  xs = np.stack([x] * 5) + (0.3 * rng.normal(size=(5,) + x.shape) if redraw == 'epoch' else 0)
  xs = xs.astype(np.float32)
  tests = [(xs[:, n:n + 120], y[n:n + 120]), (xs[:, n + 120:], y[n + 120:])]
  given = lambda a: a if redraw == 'epoch' else a[0]
  key = jax.random.PRNGKey(3)
  # A large step, so that the accuracy goes up and down over the epochs.
  results = probes.adam(key, given(xs[:, :n]), y[:n], [(given(a), b) for a, b in tests],
                        num_classes=k, lr=0.5, epochs=5, weight_decay=0.01)
  w0, b0 = map(np.asarray, probes.init_linear(jax.random.fold_in(key, 0), d, k))
  assert np.abs(w0).max() <= d ** -0.5 and np.abs(b0).max() <= d ** -0.5  # nn.Linear's
  orders = probes.epoch_orders(key, n, 5)
  assert all(sorted(o) == list(range(n)) for o in orders) and len({tuple(o) for o in orders}) == 5
  want = numpy_adam_accuracies(w0, b0, xs[:, :n], y[:n], orders, 50, 0.5, 0.01, tests)
  for s, r in enumerate(results):
    np.testing.assert_allclose(r.epochs, want[:, s], atol=1e-6)
    assert r.last == r.epochs[-1] and r.accuracy == max(r.epochs)
  assert any(r.accuracy > r.last for r in results)  # the best epoch is not the last
