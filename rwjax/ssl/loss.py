"""The paper's multi-positive SimCLR loss, with positives and negatives decided by wave identity.

Every view carries `wave_id` (which wave, unique across the global batch), `frame_idx` (its frame
position in that wave's movie) and `valid` (False for padding and views without wave activity).
For anchor i, with s the cosine similarity (z is L2-normalised) and only valid views counted:

  pos(i) = {j != i : wave_id[j] == wave_id[i] and |frame_idx[j] - frame_idx[i]| == separation}
  neg(i) = {k : wave_id[k] != wave_id[i]}
  L_i = -log( sum_{j in pos(i)} exp(s_ij / tau) / sum_{k in D(i)} exp(s_ik / tau) )

Other frames of the anchor's own wave (and the anchor itself) are neither. The denominator D(i)
is neg(i) for `denominator='negatives'` (the paper's; the loss can be negative, which is not an
error) and pos(i) U neg(i) for 'all' (NT-Xent; with two views per wave, the usual two-view form).
The loss is the mean of L_i over anchors: valid views with at least one positive and, for
'negatives', at least one negative (L_i is -inf without one). `simclr_loss` scores one batch;
`sharded_simclr_loss`, inside `jax.shard_map`, each device's anchors against the all-gathered
global batch (the global mean, the same on every device). Bad settings raise InputError.
"""

import jax
import jax.numpy as jnp

from rwjax.errors import InputError

_MASKED = -1e9  # finite stand-in for -inf: keeps masked rows free of NaN in values and gradients
DENOMINATORS = ('negatives', 'all')


def _check(temperature: float, separation: int, denominator: str = 'all') -> None:
  if denominator not in DENOMINATORS:
    raise InputError(f'loss denominator {denominator!r} is unknown; use one of {DENOMINATORS} '
                     "('negatives' is the paper's)")
  if not temperature > 0:
    raise InputError(f'loss temperature {temperature!r} must be > 0 (the paper uses 0.5)')
  if isinstance(separation, bool) or not isinstance(separation, int) or separation < 1:
    raise InputError(f'frame separation {separation!r} must be an integer >= 1')


def _anchor_losses(anchors: tuple, candidates: tuple, temperature: float, separation: int,
                   denominator: str) -> tuple[jax.Array, jax.Array]:
  """Sum of L_i over anchors (z f32[A, d], wave_id, frame_idx, valid [A]) scored against
  candidates (the same, [N]), and #anchors.

  Self-pairs need no explicit mask: a view has its own wave_id and frame offset 0 != separation.
  """
  (z, wave_id, frame_idx, valid), (cz, cwave_id, cframe_idx, cvalid) = anchors, candidates
  logits = jnp.dot(z.astype(jnp.float32), cz.astype(jnp.float32).T,
                   precision=jax.lax.Precision.HIGHEST) / temperature
  both = valid[:, None] & cvalid[None, :]
  same = wave_id[:, None] == cwave_id[None, :]
  pos = both & same & (jnp.abs(frame_idx[:, None] - cframe_idx[None, :]) == separation)
  neg = both & ~same
  log_num = jax.nn.logsumexp(jnp.where(pos, logits, _MASKED), axis=1)
  in_den = neg if denominator == 'negatives' else pos | neg
  log_den = jax.nn.logsumexp(jnp.where(in_den, logits, _MASKED), axis=1)
  is_anchor = valid & jnp.any(pos, axis=1) & jnp.any(in_den, axis=1)
  return jnp.sum(jnp.where(is_anchor, log_den - log_num, 0.0)), jnp.sum(is_anchor)


def simclr_loss(z: jax.Array, wave_id: jax.Array, frame_idx: jax.Array, valid: jax.Array, *,
                temperature: float = 0.5, separation: int = 1,
                denominator: str = 'all') -> tuple[jax.Array, jax.Array]:
  """Multi-positive SimCLR loss over one batch (see the module docstring).

  Args:
    z: f32[N, d] L2-normalised projections.
    wave_id: i32[N]; frame_idx: i32[N]; valid: bool[N].
    temperature: tau (the paper's 0.5).
    separation: frame offset that makes two views of one wave positives (>= 1).
    denominator: 'negatives' (the paper's) or 'all' (NT-Xent), see the module docstring.

  Returns:
    (loss f32[], n_anchors i32[]); loss is 0 when there is no anchor.
  """
  _check(temperature, separation, denominator)
  views = (z, wave_id, frame_idx, valid)
  total, count = _anchor_losses(views, views, temperature, separation, denominator)
  return total / jnp.maximum(count, 1), count


def sharded_simclr_loss(z: jax.Array, wave_id: jax.Array, frame_idx: jax.Array,
                        valid: jax.Array, *, axis_name: str = 'data', temperature: float = 0.5,
                        separation: int = 1,
                        denominator: str = 'all') -> tuple[jax.Array, jax.Array]:
  """`simclr_loss` of the global batch, called per device inside `jax.shard_map`.

  Args: as `simclr_loss`, with the device's local views (wave ids unique across devices).

  Returns:
    (loss f32[], n_anchors i32[]) of the global batch, the same on every device. Its gradient
    w.r.t. the local z is that of the global loss (all_gather's transpose sums the candidates'
    cotangents over devices).
  """
  _check(temperature, separation, denominator)
  views = (z, wave_id, frame_idx, valid)
  everyone = tuple(jax.lax.all_gather(x, axis_name, tiled=True) for x in views)
  total, count = _anchor_losses(views, everyone, temperature, separation, denominator)
  count = jax.lax.psum(count, axis_name)
  return jax.lax.psum(total, axis_name) / jnp.maximum(count, 1), count
