"""Lansdell, Ford & Kutz (2014) model of stage II cholinergic retinal waves, in JAX.

PLoS Comput Biol 10:e1003953. Per lattice cell: membrane potential V (mV), slow
refractory variables R and S, and extracellular acetylcholine E, which diffuses
(no-flux / Neumann boundaries). Time is in seconds; explicit Euler steps of `dt`.

  G      = 1 / (1 + exp(-kappa (V - V0)))
  gCa    = gCa_bar (1 + tanh((V - V1) / V2)) / 2
  gACh   = gACh_bar delta E^2 / (1 + delta E^2)
  Lambda = cosh((V - V3) / (2 V4)),   Rinf = (1 + tanh((V - V3) / V4)) / 2
  dV/dt  = (1000/Cm) [-gCa (V-VCa) - gK_bar R (V-VK) - gL (V-VL) - gACh (V-Vsyn) - gN (V-VN) + Iapp]
  tauR dR/dt = Lambda (Rinf - R) + alpha S (1 - R)
  dS/dt  = -S / tauS + c G
  dE/dt  = D lap(E) - E / tauACh + b G

Spontaneous initiation: at the start of every window of `spont_frames` movie frames (one
0.1 s frame by default, the published noise step) each cell gets gN = `g_n` for the whole
window with probability `spont_prob`; drawing once per window, not per step, keeps the
random-number cost 1/100 of a step. `advance` takes whole windows (n_frames a multiple of
spont_frames), so frames shorter than the window film the same model more often.

Parameters are the published ones except D = 0.005 mm^2/s, half the published 0.01, which
brings the front speed onto stage II recordings (docs/waves.md, 'Simulators');
`Params(diff=0.01)` is the published model.

A movie frame is V at the end of each frame. The state is a pytree of four f32[B, H, W]
fields plus one raw PRNG key per retina, so training can carry it from call to call, shard
it over the batch and checkpoint it. Typical use (`n_frames`, `seconds`, `params` static):

  state = lansdell.init(jax.random.PRNGKey(0), batch=16)
  state = lansdell.warmup(state, 300.0)
  state, frames = lansdell.advance(state, 100)   # frames: f32[16, 100, 64, 64]
"""

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rwjax.errors import InputError
from rwjax.waves import lattice

# Default activity threshold (mV) for V frames: a pixel is "in a wave" above it.
THRESHOLD = -60.0


class Params(NamedTuple):
  """Model constants (published, except `diff`). Hashable, so it is static under jit."""
  size: int = 64            # lattice is size x size cells
  extent_mm: float = 2.0    # side of the square retina (mm); spacing extent/(size-1)
  dt: float = 0.001         # Euler step (s)
  frame_dt: float = 0.1     # time between movie frames (s)
  spont_frames: int = 1     # frames per spontaneous-input window (window = 0.1 s published)
  cm: float = 160.0
  v_ca: float = 50.0
  v_k: float = -90.0
  v_l: float = -70.0
  v_syn: float = 50.0
  g_ca: float = 10.0
  g_k: float = 30.0
  g_l: float = 3.0
  g_ach: float = 2.0
  v1: float = -20.0
  v2: float = 20.0
  v3: float = -25.0
  v4: float = 40.0
  tau_r: float = 5.0        # s
  tau_ach: float = 0.2      # s
  diff: float = 0.005       # D, mm^2/s (published: 0.01; see the module docstring)
  b: float = 5.0
  delta: float = 800.0
  kappa: float = 0.2
  v0: float = -40.0
  v_n: float = 50.0
  alpha: float = 2.0
  tau_s: float = 60.0       # s
  c: float = 0.3
  i_app: float = 0.0
  g_n: float = 20.0         # spontaneous conductance while a cell is driven
  spont_prob: float = 0.1 / 800  # probability per cell per spontaneous-input window


class State(NamedTuple):
  """Simulator state of B independent retinas."""
  v: jax.Array    # f32[B, H, W] membrane potential (mV)
  r: jax.Array    # f32[B, H, W]
  s: jax.Array    # f32[B, H, W]
  e: jax.Array    # f32[B, H, W] extracellular ACh
  key: jax.Array  # u32[B, 2] one raw PRNG key per retina


def pixel_mm(params: Params = Params()) -> float:
  """Lattice spacing h in mm (2/63 mm at the defaults)."""
  return params.extent_mm / (params.size - 1)


steps_per_frame = lattice.steps_per_frame


def window_frames(params: Params = Params()) -> int:
  """Frames per spontaneous-input window (params.spont_frames); InputError below 1."""
  k = params.spont_frames
  if isinstance(k, bool) or not isinstance(k, int) or k < 1:
    raise InputError(f'spont_frames={k!r} must be a whole number of frames >= 1 (frames per '
                     'spontaneous-input window; 1 = one window per frame)')
  return k


@functools.partial(jax.jit, static_argnames=('batch', 'params'))
def init(key: jax.Array, batch: int, params: Params = Params()) -> State:
  """Resting retinas: V = -70 mV, R = S = E = 0; `key` u32[2] is split per retina."""
  lattice.check_count('batch', batch, 1)
  steps_per_frame(params)
  window_frames(params)
  shape = (batch, params.size, params.size)
  zeros = jnp.zeros(shape, jnp.float32)
  return State(v=jnp.full(shape, -70.0, jnp.float32), r=zeros, s=zeros, e=zeros,
               key=jax.random.split(key, batch))


def spontaneous_input(key: jax.Array, params: Params = Params()):
  """One spontaneous-input window's drive for one retina.

  Args:
    key: u32[2] the retina's PRNG key.
  Returns:
    (next_key u32[2], driven bool[H, W]): a cell has gN = g_n this frame iff driven.
  """
  key, sub = jax.random.split(key)
  driven = jax.random.bernoulli(sub, params.spont_prob, (params.size, params.size))
  return key, driven


def laplacian(x: jax.Array, h: float) -> jax.Array:
  """5-point Laplacian over the last two axes with no-flux (edge-replicated) borders.

  Built from shifted slices (no roll + fix-ups), so on GPU XLA fuses it with the
  pointwise update into one kernel per step.
  """
  up = jnp.concatenate([x[..., :1, :], x[..., :-1, :]], axis=-2)
  down = jnp.concatenate([x[..., 1:, :], x[..., -1:, :]], axis=-2)
  left = jnp.concatenate([x[..., :, :1], x[..., :, :-1]], axis=-1)
  right = jnp.concatenate([x[..., :, 1:], x[..., :, -1:]], axis=-1)
  return (up + down + left + right - 4.0 * x) * (1.0 / (h * h))


def _integer_ratio(a: float, b: float):
  """a / b if it is a whole number in [1, 64], else None (decided at trace time)."""
  n = round(a / b)
  return n if 1 <= n <= 64 and abs(a / b - n) < 1e-9 * n else None


def gates(v: jax.Array, p: Params):
  """G, (1 + tanh((V - V1) / V2)) / 2 and y = exp((V - V3) / (2 V4)) of f32 V.

  The two logistic curves are 1 / (1 + exp(-slope (V - Vhalf))). When their slopes
  (kappa, 2/V2) are whole multiples n of 1/(2 V4) -- 16 and 8 at the defaults -- their
  exponentials are y^-n times a constant, so one exp serves all three (exponentials
  dominate a step on CPU: docs/waves.md, 'How the Lansdell step is written').
  """
  y = jnp.exp((v - p.v3) / (2.0 * p.v4))
  a3 = 1.0 / (2.0 * p.v4)

  def logistic(slope, v_half):
    n = _integer_ratio(slope, a3)
    if n is None:
      return 1.0 / (1.0 + jnp.exp(-slope * (v - v_half)))
    yn = jax.lax.integer_pow(y, n)   # exp(-slope (V - Vhalf)) = const / y^n
    return yn / (yn + math.exp(-slope * (p.v3 - v_half)))

  return logistic(p.kappa, p.v0), logistic(2.0 / p.v2, p.v1), y


def step(v, r, s, e, driven, p: Params):
  """One explicit Euler step of all cells; arrays f32[..., H, W], driven bool[..., H, W]."""
  dt = p.dt
  g, ca_open, ey = gates(v, p)
  if jax.default_backend() == 'cpu':
    # XLA:CPU splits the step into one loop per output and would recompute the
    # exponential in each; materialising the gates once is faster there. On GPU the
    # step is one fused kernel and this would only add memory traffic.
    g, ca_open, ey = jax.lax.optimization_barrier((g, ca_open, ey))
  g_ca = p.g_ca * ca_open
  lam = 0.5 * (ey + 1.0 / ey)                    # cosh((V - V3) / (2 V4))
  ey4 = (ey * ey) * (ey * ey)                    # exp(4y) = exp(2 (V - V3) / V4)
  r_inf = ey4 / (1.0 + ey4)                      # (1 + tanh((V - V3) / V4)) / 2
  de2 = p.delta * e * e
  g_ach = p.g_ach * de2 / (1.0 + de2)
  g_n = jnp.where(driven, p.g_n, 0.0)
  i_ion = (-g_ca * (v - p.v_ca) - p.g_k * r * (v - p.v_k) - p.g_l * (v - p.v_l)
           - g_ach * (v - p.v_syn) - g_n * (v - p.v_n) + p.i_app)
  v_new = v + dt * (1000.0 / p.cm) * i_ion
  r_new = r + (dt / p.tau_r) * (lam * (r_inf - r) + p.alpha * s * (1.0 - r))
  s_new = s + dt * (p.c * g - s / p.tau_s)
  e_new = e + dt * (p.diff * laplacian(e, pixel_mm(p)) - e / p.tau_ach + p.b * g)
  return v_new, r_new, s_new, e_new


# Steps per iteration of the inner (per-frame) loop on accelerators: amortises the
# per-iteration loop overhead there. On CPU, XLA fuses work across unrolled steps and
# recomputes it, which makes a step slower, so no unrolling.
_ACCEL_UNROLL = 10


def _frame(fields, driven, p: Params):
  """Advances (v, r, s, e) through one frame with fixed spontaneous drive."""
  n = steps_per_frame(p)
  unroll = 1 if jax.default_backend() == 'cpu' else min(_ACCEL_UNROLL, n)
  body = lambda f, _: (step(*f, driven, p), None)
  fields, _ = jax.lax.scan(body, fields, None, length=n, unroll=unroll)
  return fields


def _window(fields, key, p: Params):
  """Advances (v, r, s, e) of B retinas (keys u32[B, 2]) through one spontaneous-input
  window; returns (fields, key, V f32[spont_frames, B, H, W] at the end of each frame)."""
  key, driven = jax.vmap(lambda k: spontaneous_input(k, p))(key)
  if p.spont_frames == 1:
    fields = _frame(fields, driven, p)
    return fields, key, fields[0][None]

  def one(f, _):
    f = _frame(f, driven, p)
    return f, f[0]

  fields, v = jax.lax.scan(one, fields, None, length=p.spont_frames)
  return fields, key, v


@functools.partial(jax.jit, static_argnames=('n_frames', 'params'))
def advance(state: State, n_frames: int, params: Params = Params()):
  """Simulates `n_frames` frames.

  Args:
    state: State of B retinas.
    n_frames: number of frames (static), a multiple of params.spont_frames.
  Returns:
    (new State, frames f32[B, n_frames, H, W]): V (mV) at the end of each frame.
  """
  lattice.check_count('n_frames', n_frames)
  k = window_frames(params)
  if n_frames % k:
    raise InputError(
        f'n_frames={n_frames} is not a whole number of spontaneous-input windows of '
        f'spont_frames={k} frames: advance by multiples of {k} (the on-device training source '
        'advances a frame at a time and needs config.data.sim_params.lansdell.spont_frames=1)')

  def one(carry, _):
    fields, key = carry
    fields, key, v = _window(fields, key, params)
    return (fields, key), v

  carry = (tuple(state[:4]), state.key)
  (fields, key), frames = jax.lax.scan(one, carry, None, length=n_frames // k)
  frames = frames.reshape((n_frames,) + frames.shape[2:])
  return State(*fields, key=key), jnp.moveaxis(frames, 0, 1)


@functools.partial(jax.jit, static_argnames=('seconds', 'params'))
def warmup(state: State, seconds: float, params: Params = Params()) -> State:
  """Advances the state by `seconds` (rounded to whole spontaneous-input windows) without
  keeping frames."""
  lattice.check_count('seconds', seconds)
  n = round(seconds / (window_frames(params) * params.frame_dt))

  def one(carry, _):
    fields, key = carry
    fields, key, _ = _window(fields, key, params)
    return (fields, key), None

  (fields, key), _ = jax.lax.scan(one, (tuple(state[:4]), state.key), None, length=n)
  return State(*fields, key=key)
