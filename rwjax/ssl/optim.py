"""Optimisers for SimCLR pre-training: the paper's Adam and SimCLR's LARS, through optax.

Adam: `chain(add_decayed_weights(wd), adam(lr))`. PyTorch's `Adam(weight_decay=wd)` adds wd * w to
the gradient before the moment estimates (L2 regularisation, not AdamW's decoupled decay), and this
chain does exactly that. The paper: lr 1e-3, wd 1e-6.

LARS (SimCLR): peak lr = lr x batch_pairs / 256 with lr = 0.3 by default, wd 1e-6, momentum 0.9,
trust coefficient 1e-3; BatchNorm parameters and biases (all 1-D parameters) get neither weight
decay nor the trust ratio.

Schedules: 'constant' or 'cosine' (decay to 0 at total_steps), each after an optional linear
warm-up from 0 over warmup_steps.
"""

from typing import Any, Callable

import jax
import optax

from rwjax.errors import InputError

OPTIMIZERS = ('adam', 'lars')
SCHEDULES = ('constant', 'cosine')
_DEFAULT_LR = {'adam': 1e-3, 'lars': 0.3}


def decay_mask(params: Any) -> Any:
  """True for weight matrices and conv kernels; False for BatchNorm scales/offsets and biases."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def peak_learning_rate(name: str = 'adam', lr: float | None = None,
                       batch_pairs: int | None = None) -> float:
  """Adam: lr (default 1e-3). LARS: lr (default 0.3) x batch_pairs / 256 (SimCLR's scaling)."""
  if name not in OPTIMIZERS:
    raise InputError(f'optimizer {name!r} is unknown; use one of {OPTIMIZERS}')
  lr = _DEFAULT_LR[name] if lr is None else lr
  if not lr > 0:
    raise InputError(f'learning rate {lr!r} must be > 0')
  if name == 'adam':
    return float(lr)
  if batch_pairs is None or isinstance(batch_pairs, bool) or batch_pairs < 1:
    raise InputError(f'LARS needs batch_pairs >= 1 (pairs per global batch), got {batch_pairs!r}')
  return float(lr) * batch_pairs / 256


def make_schedule(name: str = 'adam', lr: float | None = None, batch_pairs: int | None = None,
                  warmup_steps: int = 0, total_steps: int | None = None,
                  schedule: str = 'constant') -> Callable[[Any], Any]:
  """The learning rate as a function of the step (see the module docstring)."""
  peak = peak_learning_rate(name, lr, batch_pairs)
  if schedule not in SCHEDULES:
    raise InputError(f'learning-rate schedule {schedule!r} is unknown; use one of {SCHEDULES}')
  if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
    raise InputError(f'warmup_steps {warmup_steps!r} must be an integer >= 0')
  if schedule == 'cosine':
    if total_steps is None or total_steps <= warmup_steps:
      raise InputError(f'a cosine schedule needs total_steps > warmup_steps ({warmup_steps}), '
                       f'got {total_steps!r}')
    return optax.warmup_cosine_decay_schedule(0.0, peak, warmup_steps, total_steps, 0.0)
  if total_steps is not None and total_steps < 0:
    raise InputError(f'total_steps {total_steps!r} must be >= 0')
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
    InputError: unknown name/schedule or a negative value.
  """
  learning_rate = make_schedule(name, lr, batch_pairs, warmup_steps, total_steps, schedule)
  if not weight_decay >= 0:
    raise InputError(f'weight_decay {weight_decay!r} must be >= 0')
  if name == 'adam':
    # Flattened: one fused update over all parameters instead of a few kernels per
    # tensor (~60 tensors); LARS cannot be, its trust ratio is per tensor.
    return optax.flatten(optax.chain(optax.add_decayed_weights(weight_decay),
                                     optax.adam(learning_rate)))
  return optax.lars(learning_rate, weight_decay=weight_decay, weight_decay_mask=decay_mask,
                    trust_coefficient=1e-3, trust_ratio_mask=decay_mask, momentum=0.9)
