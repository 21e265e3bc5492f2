"""Online monitor: natural-image accuracies of the encoder while it pre-trains.

A hook for the trainer (rwjax.ssl.trainer.Hook; the training library imports no evaluation
code): `hooks(config)` is what the binaries pass to rwjax.ssl.trainer.train. Every
config.train.monitor_every steps it measures, on a small labelled image set held in device
memory (config.monitor.source, any source rwjax.data.sources reads), the encoder's pooled
output of the current network and of the run's initial one (measured once):
  knn_acc: solo-learn's weighted k-nearest-neighbour classifier (cosine similarity, k = 20,
    temperature T = 0.07, each neighbour votes exp(similarity / T); Wu et al. 2018);
  probe_acc: the evaluator's logistic probe (rwjax.eval.probes), accuracy on the test split.
Logged as monitor/{knn_acc,probe_acc}[_init] (docs/training.md). A progress signal, not the
paper's evaluation (rwjax.evaluate).
"""

import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections

from rwjax.data import sources
from rwjax.data.preprocess import to_network_input
from rwjax.errors import InputError
from rwjax.eval import activations
from rwjax.eval import probes


@functools.partial(jax.jit, static_argnames=('num_classes', 'k'))
def knn_accuracy(train: jax.Array, train_labels: jax.Array, test: jax.Array,
                 test_labels: jax.Array, *, num_classes: int, k: int = 20,
                 temperature: float = 0.07) -> jax.Array:
  """Top-1 accuracy f32[] of the weighted cosine k-NN classifier.

  train: f32[N, D], train_labels: i32[N], test: f32[M, D], test_labels: i32[M].
  """
  unit = lambda f: f / jnp.maximum(jnp.linalg.norm(f, axis=1, keepdims=True), 1e-12)
  similarity = unit(test) @ unit(train).T  # [M, N]
  top, index = jax.lax.top_k(similarity, min(k, train.shape[0]))
  votes = jax.nn.one_hot(train_labels[index], num_classes) * jnp.exp(top / temperature)[..., None]
  return jnp.mean(jnp.argmax(votes.sum(1), axis=1) == test_labels)


def make_monitor(config: ml_collections.ConfigDict, model,
                 init_variables: dict) -> Callable[[dict], dict]:
  """f(variables) -> {'monitor/knn_acc', 'monitor/probe_acc', ..._init}: floats.

  config: the pre-training config (config.monitor, data.input_size, model.channels).
  init_variables: {'params', 'batch_stats'} of the network at initialisation.
  """
  m = config.monitor
  size, channels = config.data.input_size, config.model.channels

  def load(split, n):
    images, labels, names = sources.load_images(m.source, split, max_examples=n or None)
    return to_network_input(jnp.asarray(images), size, channels), labels, len(names)

  x_train, y_train, num_classes = load(m.train_split, m.max_train)
  x_test, y_test, _ = load(m.test_split, m.max_test)
  key = jax.random.PRNGKey(config.seed)

  def measure(variables):
    f = lambda x: activations.extract(model, variables, x, [activations.View('pooled')],
                                      batch_size=m.batch_size)[0]
    f_train, f_test = f(x_train), f(x_test)
    knn = knn_accuracy(f_train, y_train, f_test, y_test, num_classes=num_classes, k=m.knn_k,
                       temperature=m.knn_temperature)
    probe = probes.logistic(key, f_train, y_train, [(f_test, y_test)],
                            num_classes=num_classes, l2_grid=tuple(m.probe_l2_grid),
                            steps=m.probe_steps)[0]
    return {'knn_acc': float(knn), 'probe_acc': float(probe.accuracy)}

  init = {f'monitor/{k}_init': v for k, v in measure(init_variables).items()}
  return lambda variables: {**{f'monitor/{k}': v for k, v in measure(variables).items()}, **init}


def validate(config: ml_collections.ConfigDict) -> None:
  """config.monitor.source, when the monitor is on; InputError if it is unknown."""
  source = config.monitor.source
  known = isinstance(source, str) and (source == 'digits' or any(
      source.startswith(p) and len(source) > len(p) for p in ('tfds:', 'folder:')))
  if not known:
    raise InputError(f'config.monitor.source={source!r} is unknown; use digits, '
                     'tfds:<name> or folder:<path> (or config.train.monitor_every=0)')


def hooks(config: ml_collections.ConfigDict) -> Sequence[Callable]:
  """The trainer's hooks for a pre-training config: the monitor when
  config.train.monitor_every > 0, else none (an invalid interval is the trainer's to refuse).

  The monitor's images are loaded when the trainer starts the hook, not here; its settings
  are checked here, before the trainer touches the workdir.
  """
  every = config.train.monitor_every
  if isinstance(every, bool) or not isinstance(every, int) or every <= 0:
    return ()
  validate(config)

  def hook(model, init_variables):  # rwjax.ssl.trainer.Hook
    monitor = make_monitor(config, model, init_variables)
    return lambda step, variables: monitor(variables)

  return (hook,)
