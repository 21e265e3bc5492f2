"""Linear probes on frozen features: the L2-logistic probe and the paper's Adam probe.

'logistic' (`logistic`, `fit_probe`): multinomial logistic regression, full-batch on device,
on features standardised with the train split's statistics. Every L2 strength of a grid is
fit at once (vmapped) on the train split minus a held-out validation part; the strength with
the best validation accuracy, refit on the whole train split, is the probe. Rows are weighted
(weight 0 leaves a row out) and arrays zero-padded to a few bucketed shapes, so one compiled
program serves the sweep, the refit and features of any layer.

'adam' (`adam`): the paper's linear layer with bias trained by Adam in batches of 50 for 4
epochs, scored after every epoch; `ProbeResult` carries the best epoch (the paper's number,
selected on the test set) beside the last. The paper's code in detail: docs/evaluation.md,
'The paper's code and this one'.
"""

import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rwjax.errors import InputError

PROBES = ('logistic', 'adam')
L2_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
# The paper's Adam probe: CLASSIFIER_OPTIMIZER_BASE_LR, DATA.BATCH_SIZE, range(1, 5),
# OPTIMIZER.WEIGHT_DECAY.
LR, BATCH, EPOCHS, WEIGHT_DECAY = 1e-4, 50, 4, 1e-6


class ProbeResult(NamedTuple):
  """One probe on one test set (plain Python numbers, JSON-ready)."""
  accuracy: float  # logistic: test accuracy; adam: the best over epochs (the paper's number)
  last: float  # test accuracy of the final probe (logistic: = accuracy)
  epochs: tuple[float, ...] = ()  # adam: test accuracy after each epoch


class Probe(NamedTuple):
  """A fitted logistic probe (host arrays and Python numbers)."""
  mean: np.ndarray  # f32[D] train mean of the features.
  std: np.ndarray  # f32[D] train std of the features.
  weights: np.ndarray  # f32[D, K] on standardised features.
  bias: np.ndarray  # f32[K]
  l2: float  # The chosen L2 strength.
  val_accuracies: tuple[float, ...]  # One per L2 strength of the grid.
  train_accuracy: float


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
  rows = -(-n // 256) * 256  # a multiple of 256
  cols = max(64, 1 << (d - 1).bit_length())  # a power of two, at least 64
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
  weights = jnp.pad(jnp.asarray(probe.weights), ((0, x.shape[1] - len(probe.weights)), (0, 0)))
  return float(_accuracies((weights[None], jnp.asarray(probe.bias)[None]), x, y, w)[0])


def logistic(key: jax.Array, x_train: np.ndarray, y_train: np.ndarray,
             tests: Sequence[tuple[np.ndarray, np.ndarray]], *, num_classes: int,
             l2_grid: Sequence[float] = L2_GRID, val_fraction: float = 0.2,
             steps: int = 300) -> list[ProbeResult]:
  """`fit_probe` on the train split, then its top-1 accuracy on each test set (x, y)."""
  probe = fit_probe(key, x_train, y_train, num_classes=num_classes, l2_grid=l2_grid,
                    val_fraction=val_fraction, steps=steps)
  return [ProbeResult(a, a) for a in (probe_accuracy(probe, x, y) for x, y in tests)]


def l2_normalize(x: np.ndarray) -> np.ndarray:
  """Rows divided by their L2 norm (F.normalize: norms floored at 1e-12)."""
  x = np.asarray(x, np.float32)
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def epoch_orders(key: jax.Array, n: int, epochs: int) -> np.ndarray:
  """i32[epochs, n]: the example order of every epoch (epoch e from fold_in(key, e + 1))."""
  return np.stack([np.asarray(jax.random.permutation(jax.random.fold_in(key, e + 1), n))
                   for e in range(epochs)]).astype(np.int32)


@functools.partial(jax.jit, static_argnames=('dims', 'num_classes'))  # one program per shape
def init_linear(key: jax.Array, dims: int, num_classes: int) -> tuple[jax.Array, jax.Array]:
  """nn.Linear's initialisation: weights f32[D, K] and bias f32[K] ~ U(+-1/sqrt(D))."""
  k_w, k_b = jax.random.split(key)
  bound = dims ** -0.5
  return (jax.random.uniform(k_w, (dims, num_classes), jnp.float32, -bound, bound),
          jax.random.uniform(k_b, (num_classes,), jnp.float32, -bound, bound))


@functools.partial(jax.jit, static_argnames=('sizes', 'lr', 'weight_decay'))
def train_linear(params: tuple[jax.Array, jax.Array], x: jax.Array, y: jax.Array,
                 batches: jax.Array, mask: jax.Array, x_test: jax.Array, y_test: jax.Array,
                 *, sizes: tuple[int, ...], lr: float, weight_decay: float) -> jax.Array:
  """Adam on a linear layer over fixed batches, scored after every epoch.

  Args:
    params: (weights f32[D, K], bias f32[K]) to start from.
    x: f32[E', N, D] the training features of each epoch (E' = 1: the same every epoch);
      y: i32[N].
    x_test: f32[E', M, D] the test sets stacked, as scored after each epoch; y_test: i32[M].
    batches: i32[E, B, batch] row indices of each batch of each epoch (padding rows any);
      mask: f32[E, B, batch], 1 for real rows (every batch holds at least one).
    sizes: the rows of each test set in x_test (static).
    lr, weight_decay: Adam's (static).

  Returns:
    f32[E, S]: each test set's accuracy after each epoch.
  """
  optimizer = optax.chain(optax.add_decayed_weights(weight_decay),
                          optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8))
  cuts = np.cumsum((0,) + sizes)

  def epoch(carry, inputs):
    batches, mask, e = inputs
    x_e, x_test_e = x[jnp.minimum(e, len(x) - 1)], x_test[jnp.minimum(e, len(x_test) - 1)]

    def loss(params, index, weight):
      w, b = params
      logits = jnp.dot(x_e[index], w, precision=jax.lax.Precision.HIGHEST) + b
      ce = optax.softmax_cross_entropy_with_integer_labels(logits, y[index])
      return jnp.sum(weight * ce) / jnp.sum(weight)  # the mean over the batch's real rows

    def step(carry, batch):
      params, state = carry
      grads = jax.grad(loss)(params, *batch)
      updates, state = optimizer.update(grads, state, params)
      return (optax.apply_updates(params, updates), state), None

    carry, _ = jax.lax.scan(step, carry, (batches, mask))
    w, b = carry[0]
    logits = jnp.dot(x_test_e, w, precision=jax.lax.Precision.HIGHEST) + b
    hits = jnp.argmax(logits, -1) == y_test
    return carry, jnp.stack([jnp.mean(hits[a:b]) for a, b in zip(cuts[:-1], cuts[1:])])

  _, accuracy = jax.lax.scan(epoch, (params, optimizer.init(params)),
                             (batches, mask, jnp.arange(len(batches))))
  return accuracy


def adam(key: jax.Array, x_train: np.ndarray, y_train: np.ndarray,
         tests: Sequence[tuple[np.ndarray, np.ndarray]], *, num_classes: int, lr: float = LR,
         batch_size: int = BATCH, epochs: int = EPOCHS,
         weight_decay: float = WEIGHT_DECAY) -> list[ProbeResult]:
  """Trains the paper's linear probe, scoring it on each test set after every epoch.

  Args:
    key: raw PRNG key u32[2]: fold_in 0 initialises the layer, fold_in e + 1 orders epoch e.
    x_train: f32[N, D] features, or f32[E, N, D] one draw of the images per epoch (the
      paper's datasets transform every image anew each epoch); y_train: i32[N] labels in
      [0, num_classes).
    tests: test sets (f32[M_s, D] or f32[E, M_s, D] features, i32[M_s] labels).
    num_classes: K.
    lr, batch_size, epochs, weight_decay: the paper's 1e-4, 50, 4, 1e-6 by default.

  Returns:
    Per test set: the best accuracy over epochs, the last epoch's, and every epoch's.
  """
  per_epoch = lambda x: np.asarray(x, np.float32).reshape((-1,) + np.shape(x)[-2:])
  x_train = per_epoch(x_train)
  n = x_train.shape[1]
  steps = -(-n // batch_size)
  orders = epoch_orders(key, n, epochs)
  pad = steps * batch_size - n
  batches = np.pad(orders, ((0, 0), (0, pad))).reshape(epochs, steps, batch_size)
  mask = np.pad(np.ones_like(orders, np.float32), ((0, 0), (0, pad))).reshape(batches.shape)
  params = init_linear(jax.random.fold_in(key, 0), x_train.shape[-1], num_classes)
  accuracy = np.asarray(train_linear(
      params, jnp.asarray(x_train), jnp.asarray(y_train, jnp.int32), jnp.asarray(batches),
      jnp.asarray(mask), jnp.asarray(np.concatenate([per_epoch(x) for x, _ in tests], 1)),
      jnp.asarray(np.concatenate([y for _, y in tests]), jnp.int32),
      sizes=tuple(len(y) for _, y in tests), lr=float(lr), weight_decay=float(weight_decay)))
  per_test = [tuple(float(a) for a in column) for column in accuracy.T]
  return [ProbeResult(max(a), a[-1], a) for a in per_test]
