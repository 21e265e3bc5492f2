"""The paper's linear probe: a linear layer trained with Adam, best test accuracy over epochs.

As the paper's src/test.py and src/models.py (commit f39aa6d): a linear layer with bias
(PyTorch nn.Linear initialisation, U(+-1/sqrt(D))) on frozen features, cross-entropy,
torch.optim.Adam(lr, weight_decay) (L2 added to the gradient before the moments; betas
0.9 / 0.999, eps 1e-8), batches of 50 drawn in a fresh random order every epoch (the last
one smaller, as DataLoader keeps it), 4 epochs (its `range(1, TOTAL_EPOCH)` with
TOTAL_EPOCH = 5), and after every epoch top-1 accuracy on the test set; the reported number
is the best of these (`if acc1 >= best_acc1`). That selects on the test set, so reports label
it "paper protocol" and list today's validation-chosen probe (rwjax.eval.probes) beside it.
Features: the encoder output (512-d for the paper's ResNet-18) as is; intermediate ReLU
outputs flattened and L2-normalised (its TestModel.forward); `normalize` does the latter.

The features are fixed arrays here (computed once per image); the paper recomputed them every
batch through the frozen encoder in train mode, which only matters for BatchNorm (the
evaluation's config.batchnorm decides how features are taken).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rwjax.errors import InputError

LR = 1e-4  # The paper's classifier learning rate (CLASSIFIER_OPTIMIZER_BASE_LR).
BATCH = 50  # DATA.BATCH_SIZE.
EPOCHS = 4  # range(1, CLASSIFIER_TOTAL_EPOCH = 5).
WEIGHT_DECAY = 1e-6  # OPTIMIZER.WEIGHT_DECAY, passed to Adam.


class AdamProbeResult(NamedTuple):
  """Plain Python numbers (JSON-ready)."""
  best_test_accuracy: float  # max over epochs: the paper's reported number
  test_accuracies: tuple[float, ...]  # after each epoch
  train_accuracies: tuple[float, ...]  # after each epoch, on the whole train set
  steps: int  # Adam updates in all


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


def _accuracy(params, x, y):
  w, b = params
  return jnp.mean(jnp.argmax(jnp.dot(x, w, precision=jax.lax.Precision.HIGHEST) + b, -1) == y)


@functools.partial(jax.jit, static_argnames=('lr', 'weight_decay'))
def train_linear(params: tuple[jax.Array, jax.Array], x: jax.Array, y: jax.Array,
                 batches: jax.Array, mask: jax.Array, x_test: jax.Array, y_test: jax.Array, *,
                 lr: float, weight_decay: float):
  """Adam on a linear layer over fixed batches, scored after every epoch.

  Args:
    params: (weights f32[D, K], bias f32[K]) to start from.
    x: f32[N, D]; y: i32[N]; x_test: f32[M, D]; y_test: i32[M].
    batches: i32[E, B, batch] row indices of each batch of each epoch (padding rows any);
      mask: f32[E, B, batch], 1 for real rows (every batch holds at least one).
    lr, weight_decay: Adam's (static).

  Returns:
    (final params, train accuracy f32[E], test accuracy f32[E]) after each epoch.
  """
  optimizer = optax.chain(optax.add_decayed_weights(weight_decay),
                          optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8))

  def loss(params, index, weight):
    w, b = params
    logits = jnp.dot(x[index], w, precision=jax.lax.Precision.HIGHEST) + b
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y[index])
    return jnp.sum(weight * ce) / jnp.sum(weight)  # the mean over the batch's real rows

  def step(carry, batch):
    params, state = carry
    index, weight = batch
    grads = jax.grad(loss)(params, index, weight)
    updates, state = optimizer.update(grads, state, params)
    return (optax.apply_updates(params, updates), state), None

  def epoch(carry, batches):
    carry, _ = jax.lax.scan(step, carry, batches)
    return carry, (_accuracy(carry[0], x, y), _accuracy(carry[0], x_test, y_test))

  (params, _), (train_acc, test_acc) = jax.lax.scan(
      epoch, (params, optimizer.init(params)), (batches, mask))
  return params, train_acc, test_acc


def adam_probe(key: jax.Array, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
               y_test: np.ndarray, *, num_classes: int, lr: float = LR,
               batch_size: int = BATCH, epochs: int = EPOCHS,
               weight_decay: float = WEIGHT_DECAY, normalize: bool = False) -> AdamProbeResult:
  """Trains the paper's linear probe and scores it on the test set after every epoch.

  Args:
    key: raw PRNG key u32[2]: fold_in 0 initialises the layer, fold_in e + 1 orders epoch e.
    x_train: f32[N, D] features; y_train: i32[N] labels in [0, num_classes).
    x_test: f32[M, D]; y_test: i32[M].
    num_classes: K.
    lr, batch_size, epochs, weight_decay: the paper's 1e-4, 50, 4, 1e-6 by default.
    normalize: L2-normalise every feature row first (the paper's intermediate layers).

  Returns:
    AdamProbeResult (best_test_accuracy = max of test_accuracies).
  """
  x_train, x_test = np.asarray(x_train, np.float32), np.asarray(x_test, np.float32)
  if (x_train.ndim != 2 or x_test.ndim != 2 or x_train.shape[1] != x_test.shape[1]
      or len(y_train) != len(x_train) or len(y_test) != len(x_test) or not len(x_test)
      or not len(x_train)):
    raise InputError(f'the probe needs features [N, D] / [M, D] with labels [N] / [M], got '
                     f'{x_train.shape}, {np.shape(y_train)}, {x_test.shape}, {np.shape(y_test)}')
  if epochs < 1 or batch_size < 1 or not lr > 0:
    raise InputError(f'paper probe: epochs={epochs}, batch_size={batch_size}, lr={lr} must be '
                     'positive')
  if normalize:
    x_train, x_test = l2_normalize(x_train), l2_normalize(x_test)
  n = len(x_train)
  per_epoch = -(-n // batch_size)
  orders = epoch_orders(key, n, epochs)
  pad = per_epoch * batch_size - n
  batches = np.pad(orders, ((0, 0), (0, pad))).reshape(epochs, per_epoch, batch_size)
  mask = np.pad(np.ones_like(orders, np.float32), ((0, 0), (0, pad))).reshape(batches.shape)
  params = init_linear(jax.random.fold_in(key, 0), x_train.shape[1], num_classes)
  _, train_acc, test_acc = train_linear(
      params, jnp.asarray(x_train), jnp.asarray(y_train, jnp.int32), jnp.asarray(batches),
      jnp.asarray(mask), jnp.asarray(x_test), jnp.asarray(y_test, jnp.int32),
      lr=float(lr), weight_decay=float(weight_decay))
  test_acc = tuple(float(a) for a in np.asarray(test_acc))
  return AdamProbeResult(max(test_acc), test_acc, tuple(float(a) for a in np.asarray(train_acc)),
                         epochs * per_epoch)
