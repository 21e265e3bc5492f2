"""Linear probes: multinomial logistic regression on frozen features, full-batch on device.

Features are standardised with the train split's statistics. For every L2 strength of a
grid (solved at once, vmapped) accelerated gradient descent minimises mean cross-entropy
+ l2/2 * |W|^2 on the train split minus a held-out validation part; the strength with the
best validation accuracy, refit on the whole train split, is the probe, scored top-1 on
test splits.

Rows are weighted (weight 0 leaves a row out) and arrays are zero-padded to a few bucketed
shapes, so one compiled program serves the sweep, the refit and features of any layer.
"""

import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rwjax.errors import InputError

L2_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
_ROWS = 256  # Rows are padded to a multiple of this...
_MIN_DIM = 64  # ...and feature dimensions to a power of two, at least this.


class Probe(NamedTuple):
  """A fitted probe (host arrays and Python numbers)."""
  mean: np.ndarray  # f32[D] train mean of the features.
  std: np.ndarray  # f32[D] train std of the features.
  weights: np.ndarray  # f32[D, K] on standardised features.
  bias: np.ndarray  # f32[K]
  l2: float  # The chosen L2 strength.
  val_accuracies: tuple[float, ...]  # One per L2 strength of the grid.
  train_accuracy: float


class ProbeResult(NamedTuple):
  """Outcome of `linear_probe` (plain Python numbers, JSON-ready)."""
  test_accuracy: float
  train_accuracy: float
  val_accuracy: float
  l2: float
  val_accuracies: tuple[float, ...]


def fit_logistic(x: jax.Array, y: jax.Array, weights: jax.Array, l2: jax.Array, *,
                 num_classes: int, steps: int = 300) -> tuple[jax.Array, jax.Array]:
  """Fits multinomial logistic regression by Nesterov-accelerated gradient descent.

  The loss is L-smooth with L <= lambda_max(X1^T W X1 / sum(w)) / 2 + l2 (X1: x with a ones
  column for the bias), so a fixed step of 1/L needs no line search: every step is two
  matmuls, which keeps compilation and each step cheap on any device.

  Args:
    x: f32[N, D] (standardised) features.
    y: i32[N] labels in [0, num_classes).
    weights: f32[N] example weights (0 leaves an example out; keeps shapes static).
    l2: f32[] L2 strength on the weights (the bias is not penalised).
    num_classes: number of classes (static).
    steps: gradient steps (static).

  Returns:
    weights f32[D, K], bias f32[K].
  """
  share = weights / weights.sum()

  def loss(params):
    w, b = params
    ce = optax.softmax_cross_entropy_with_integer_labels(x @ w + b, y)
    return jnp.sum(share * ce) + 0.5 * l2 * jnp.sum(w * w)

  x1 = jnp.concatenate([x, jnp.ones((x.shape[0], 1), x.dtype)], 1)
  gram = x1.T @ (share[:, None] * x1)  # [D + 1, D + 1]

  def power(v, _):
    v = gram @ v
    return v / jnp.linalg.norm(v), None

  v, _ = jax.lax.scan(power, jnp.ones(x1.shape[1]) / x1.shape[1] ** 0.5, None, length=30)
  # 1.05: margin for the power iteration's slight underestimate of lambda_max.
  rate = 1.0 / (0.5 * 1.05 * (v @ gram @ v) + l2)
  grad = jax.grad(loss)

  def step(carry, k):
    params, ahead = carry
    new = jax.tree.map(lambda a, g: a - rate * g, ahead, grad(ahead))
    ahead = jax.tree.map(lambda a, b: a + k / (k + 3.0) * (a - b), new, params)
    return (new, ahead), None

  params = (jnp.zeros((x.shape[1], num_classes), jnp.float32),
            jnp.zeros((num_classes,), jnp.float32))
  (params, _), _ = jax.lax.scan(step, (params, params), jnp.arange(steps, dtype=jnp.float32))
  return params


@functools.partial(jax.jit, static_argnames=('num_classes', 'steps'))
def _fit_grid(x: jax.Array, y: jax.Array, weights: jax.Array, l2_grid: jax.Array, *,
              num_classes: int, steps: int) -> tuple[jax.Array, jax.Array]:
  """`fit_logistic` for every L2 strength of l2_grid: f32[G] -> (f32[G, D, K], f32[G, K])."""
  fit = lambda l2: fit_logistic(x, y, weights, l2, num_classes=num_classes, steps=steps)
  return jax.vmap(fit)(l2_grid)


@jax.jit
def _accuracies(params: tuple[jax.Array, jax.Array], x: jax.Array, y: jax.Array,
                weights: jax.Array) -> jax.Array:
  """Weighted top-1 accuracy f32[G] of each of G fitted probes on x: f32[N, D], y: i32[N]."""
  w, b = params
  hits = jnp.argmax(jnp.einsum('nd,gdk->gnk', x, w) + b[:, None], -1) == y
  return jnp.sum(weights * hits, -1) / weights.sum()


def _padded(x: np.ndarray, y: np.ndarray) -> tuple[jax.Array, jax.Array, np.ndarray]:
  """Zero-pads x: [N, D] to bucketed rows and columns; returns (x, y, row weights)."""
  n, d = x.shape
  rows = -(-n // _ROWS) * _ROWS
  cols = max(_MIN_DIM, 1 << (d - 1).bit_length())
  x = jnp.pad(jnp.asarray(x, jnp.float32), ((0, rows - n), (0, cols - d)))
  y = jnp.pad(jnp.asarray(y, jnp.int32), (0, rows - n))
  return x, y, np.pad(np.ones(n, np.float32), (0, rows - n))


def _check(x: np.ndarray, y: np.ndarray, what: str) -> None:
  if x.ndim != 2 or y.shape != x.shape[:1] or not len(x):
    raise InputError(f'{what} must be features [N, D] and labels [N] with N > 0, got shapes '
                     f'{x.shape} and {y.shape}')


def fit_probe(key: jax.Array, x_train: np.ndarray, y_train: np.ndarray, *, num_classes: int,
              l2_grid: Sequence[float] = L2_GRID, val_fraction: float = 0.2,
              steps: int = 300) -> Probe:
  """Fits a logistic-regression probe, its L2 strength chosen on a validation split.

  Args:
    key: raw PRNG key u32[2] choosing the validation examples.
    x_train: f32[N, D] features; y_train: i32[N] labels in [0, num_classes).
    num_classes: number of classes.
    l2_grid: L2 strengths to choose from.
    val_fraction: share of the train split held out to choose the L2 strength.
    steps: gradient steps per fit.

  Returns:
    The probe refit on the whole train split with the chosen strength.
  """
  _check(x_train, y_train, 'train data')
  n, d = x_train.shape
  n_val = int(round(val_fraction * n))
  if not 0 < n_val < n:
    raise InputError(f'val_fraction {val_fraction} of {n} train examples leaves no '
                     'validation or no fitting examples; use more data or another fraction')
  x_train = jnp.asarray(x_train, jnp.float32)
  mean, std = x_train.mean(0), x_train.std(0) + 1e-6  # Constant features standardise to 0.
  x, y, all_w = _padded((x_train - mean) / std, y_train)
  val_w = np.zeros_like(all_w)
  val_w[np.asarray(jax.random.permutation(key, n))[:n_val]] = 1.0
  grid = jnp.asarray(l2_grid, jnp.float32)
  fit = functools.partial(_fit_grid, num_classes=num_classes, steps=steps)
  val_acc = np.asarray(_accuracies(fit(x, y, all_w - val_w, grid), x, y, val_w))
  best = len(val_acc) - 1 - int(np.argmax(val_acc[::-1]))  # The strongest L2 among ties.
  params = fit(x, y, all_w, grid)
  train_acc = float(_accuracies(params, x, y, all_w)[best])
  w, b = jax.device_get((params[0][best, :d], params[1][best]))
  return Probe(np.asarray(mean), np.asarray(std), w, b, float(l2_grid[best]),
               tuple(float(v) for v in val_acc), train_acc)


def probe_accuracy(probe: Probe, x: np.ndarray, y: np.ndarray) -> float:
  """Top-1 accuracy of `probe` on features x: f32[M, D] with labels y: i32[M]."""
  _check(x, y, 'test data')
  if x.shape[1] != probe.weights.shape[0]:
    raise InputError(f'test features have D={x.shape[1]}, the probe was fit on '
                     f'D={probe.weights.shape[0]}; use features of the same layer')
  x, y, w = _padded((jnp.asarray(x, jnp.float32) - probe.mean) / probe.std, y)
  d = probe.weights.shape[0]
  weights = jnp.pad(jnp.asarray(probe.weights), ((0, x.shape[1] - d), (0, 0)))
  return float(_accuracies((weights[None], jnp.asarray(probe.bias)[None]), x, y, w)[0])


def linear_probe(key: jax.Array, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                 y_test: np.ndarray, *, num_classes: int, l2_grid: Sequence[float] = L2_GRID,
                 val_fraction: float = 0.2, steps: int = 300) -> ProbeResult:
  """`fit_probe` on the train split, then its top-1 accuracy on the test split."""
  _check(x_test, y_test, 'test data')
  if x_train.ndim != 2 or x_train.shape[1] != x_test.shape[1]:
    raise InputError(f'train and test features must be [N, D] with the same D, got '
                     f'{x_train.shape} and {x_test.shape}')
  probe = fit_probe(key, x_train, y_train, num_classes=num_classes, l2_grid=l2_grid,
                    val_fraction=val_fraction, steps=steps)
  return ProbeResult(probe_accuracy(probe, x_test, y_test), probe.train_accuracy,
                     max(probe.val_accuracies), probe.l2, probe.val_accuracies)
