"""Optimisers for SimCLR pre-training: the paper's Adam and SimCLR's LARS, through optax.

Adam: `chain(add_decayed_weights(wd), adam(lr))`, PyTorch's `Adam(weight_decay=wd)` (L2 added
to the gradient before the moments, not AdamW's decoupled decay). The paper: lr 1e-3, wd 1e-6.
LARS (SimCLR): peak lr = lr (0.3) x batch_pairs / 256, wd 1e-6, momentum 0.9, trust coefficient
1e-3; 1-D parameters (BatchNorm, biases) get neither weight decay nor the trust ratio.
Schedules: 'constant' or 'cosine' (to 0 at total_steps), after an optional linear warm-up.
"""

from typing import Any, Callable

import jax
import optax

from rwjax.errors import InputError

OPTIMIZERS = ('adam', 'lars')
SCHEDULES = ('constant', 'cosine')


def decay_mask(params: Any) -> Any:
  """True for weight matrices and conv kernels; False for BatchNorm scales/offsets and biases."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def peak_learning_rate(name: str = 'adam', lr: float | None = None,
                       batch_pairs: int | None = None) -> float:
  """Adam: lr (default 1e-3). LARS: lr (default 0.3) x batch_pairs / 256 (SimCLR's scaling)."""
  lr = float({'adam': 1e-3, 'lars': 0.3}[name] if lr is None else lr)
  return lr if name == 'adam' else lr * batch_pairs / 256


def make_schedule(name: str = 'adam', lr: float | None = None, batch_pairs: int | None = None,
                  warmup_steps: int = 0, total_steps: int | None = None,
                  schedule: str = 'constant') -> Callable[[Any], Any]:
  """The learning rate as a function of the step; config.optim's values, already checked."""
  peak = peak_learning_rate(name, lr, batch_pairs)
  if schedule == 'cosine':
    if total_steps is None or total_steps <= warmup_steps:
      raise InputError(f'a cosine schedule needs total_steps > warmup_steps ({warmup_steps}), '
                       f'got {total_steps!r}: raise config.train.steps (config.train.epochs '
                       "with data.batching='waves') or lower config.optim.warmup_steps")
    return optax.warmup_cosine_decay_schedule(0.0, peak, warmup_steps, total_steps, 0.0)
  if warmup_steps == 0:
    return optax.constant_schedule(peak)
  return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup_steps),
                               optax.constant_schedule(peak)], [warmup_steps])


def make_optimizer(name: str = 'adam', lr: float | None = None, weight_decay: float = 1e-6,
                   batch_pairs: int | None = None, warmup_steps: int = 0,
                   total_steps: int | None = None,
                   schedule: str = 'constant') -> optax.GradientTransformation:
  """Adam (PyTorch weight-decay semantics) or LARS, with the schedule of `make_schedule`.

  Args:
    name: 'adam' | 'lars'.
    lr: Adam's learning rate (default 1e-3), or LARS's rate per 256 pairs (default 0.3).
    weight_decay: L2 coefficient (>= 0; both default to the papers' 1e-6).
    batch_pairs: positive pairs per global batch (needed by LARS).
    warmup_steps, total_steps, schedule: see `make_schedule`.

  Raises:
    InputError: a cosine schedule no longer than its warm-up.
  """
  learning_rate = make_schedule(name, lr, batch_pairs, warmup_steps, total_steps, schedule)
  if name == 'adam':
    # Flattened: one fused update over all parameters instead of a few kernels per
    # tensor (~60 tensors); LARS cannot be, its trust ratio is per tensor.
    return optax.flatten(optax.chain(optax.add_decayed_weights(weight_decay),
                                     optax.adam(learning_rate)))
  return optax.lars(learning_rate, weight_decay=weight_decay, weight_decay_mask=decay_mask,
                    trust_coefficient=1e-3, trust_ratio_mask=decay_mask, momentum=0.9)
