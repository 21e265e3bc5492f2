"""The paper's Adam linear probe: against a NumPy Adam typed from torch.optim.Adam's update
rule, on a planted separable problem, and its epoch count and best-over-epochs rule."""

import jax
import numpy as np
import pytest

from rwjax.errors import InputError
from rwjax.eval import paper_probe


def numpy_adam_linear(w, b, x, y, orders, batch, lr, wd, steps_per_epoch):
  """torch.optim.Adam(weight_decay=wd) on softmax regression, mean CE per batch."""
  params = [w.astype(np.float64), b.astype(np.float64)]
  m = [np.zeros_like(p) for p in params]
  v = [np.zeros_like(p) for p in params]
  t = 0
  for order in orders:
    for s in range(steps_per_epoch):
      idx = order[s * batch:(s + 1) * batch]
      xb, yb = x[idx].astype(np.float64), y[idx]
      logits = xb @ params[0] + params[1]
      p = np.exp(logits - logits.max(1, keepdims=True))
      p /= p.sum(1, keepdims=True)
      p[np.arange(len(yb)), yb] -= 1.0
      grads = [xb.T @ p / len(yb), p.mean(0)]
      t += 1
      for i, g in enumerate(grads):
        g = g + wd * params[i]
        m[i] = 0.9 * m[i] + 0.1 * g
        v[i] = 0.999 * v[i] + 0.001 * g * g
        params[i] = params[i] - lr * (m[i] / (1 - 0.9 ** t)) / (
            np.sqrt(v[i] / (1 - 0.999 ** t)) + 1e-8)
  return params


def test_adam_steps_match_torch_adam_from_its_equations():
  rng = np.random.default_rng(0)
  n, d, k, batch, epochs = 120, 6, 3, 50, 2
  x = rng.normal(size=(n, d)).astype(np.float32)
  y = rng.integers(0, k, n).astype(np.int32)
  key = jax.random.PRNGKey(3)
  orders = paper_probe.epoch_orders(key, n, epochs)
  per_epoch = 3  # 50 + 50 + 20
  batches = np.pad(orders, ((0, 0), (0, 30))).reshape(epochs, per_epoch, batch)
  mask = np.pad(np.ones((epochs, n), np.float32), ((0, 0), (0, 30))).reshape(batches.shape)
  w0, b0 = map(np.asarray, paper_probe.init_linear(key, d, k))
  assert np.abs(w0).max() <= d ** -0.5 and np.abs(b0).max() <= d ** -0.5
  (w, b), _, _ = paper_probe.train_linear((w0, b0), x, y, batches, mask, x[:10], y[:10],
                                          lr=0.05, weight_decay=0.01)
  ref_w, ref_b = numpy_adam_linear(w0, b0, x, y, orders, batch, 0.05, 0.01, per_epoch)
  np.testing.assert_allclose(np.asarray(w), ref_w, atol=2e-5)
  np.testing.assert_allclose(np.asarray(b), ref_b, atol=2e-5)


def test_planted_separable_problem_is_solved_and_the_best_epoch_is_reported():
  rng = np.random.default_rng(1)
  k, d, n = 5, 20, 600
  means = 3.0 * np.eye(k, d)
  y = rng.integers(0, k, n).astype(np.int32)
  x = (means[y] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)
  result = paper_probe.adam_probe(jax.random.PRNGKey(0), x[:500], y[:500], x[500:], y[500:],
                                  num_classes=k, lr=1e-2)
  assert result.best_test_accuracy == 1.0
  assert len(result.test_accuracies) == 4 and result.steps == 4 * 10  # 500 / 50 per epoch
  assert result.best_test_accuracy == max(result.test_accuracies)
  # At the paper's lr 1e-4, 4 epochs of 10 steps move each weight by at most 40 * 1e-4:
  # far from separating these classes, so the best epoch is well below 1 but the rule holds.
  slow = paper_probe.adam_probe(jax.random.PRNGKey(0), x[:500], y[:500], x[500:], y[500:],
                                num_classes=k)
  assert slow.best_test_accuracy == max(slow.test_accuracies) < 1.0
  assert slow.steps == 40 and len(slow.train_accuracies) == 4


def test_l2_normalisation_and_bad_shapes():
  x = np.array([[3.0, 4.0], [0.0, 0.0]], np.float32)
  np.testing.assert_allclose(paper_probe.l2_normalize(x), [[0.6, 0.8], [0.0, 0.0]])
  with pytest.raises(InputError, match='features'):
    paper_probe.adam_probe(jax.random.PRNGKey(0), x, np.zeros(2, int), x[:, :1],
                           np.zeros(2, int), num_classes=2)
