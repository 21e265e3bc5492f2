"""Godfrey & Swindale (2007) retinal-wave model with activity-dependent refractoriness, in JAX.

PLoS Comput Biol 3:e245. Cells on a square lattice (34 um spacing) excite each
other through dendritic-disk overlap: w(d) = 2 [R^2 acos(d/2R) - (d/2) sqrt(R^2 - d^2/4)]
/ (pi R^2) for 0 < d < 2R (R = 170 um), applied as a zero-padded convolution, so
A_i = sum_{j != i} w_ij active_j. Per cell: remaining active time, excitation e,
threshold theta and threshold decay rate rho. Every dt (25 ms):

  quiet cell:  e <- max(0, e + (A - e) dt / T_K); it becomes active for P_D seconds
               as soon as e >= theta (theta decays to 0, so cells also fire alone).
  activity ends: the cell is quiet again, e <- 0, rho <- (H1/P)(N_i/N_max) Normal(1, 0.2)
               (N_i: lattice cells within 2R of cell i, so border cells recover slower).
  threshold:   dtheta/dt = -rho + 1[active] (H1 + A H2) / P_D, theta >= 0;
               theta starts Uniform(0.5, 5), rho starts at its post-activity draw.

Frames (every `frame_dt` = 100 ms) are a calcium-like trace in [0, 1]:
c <- clip(0.85 c + 0.01 [active] + 0.005 #(active cells within 3 lattice spacings)),
which saturates at 1 inside a wave (0.01 + 0.005 * 28 = 0.15 = 1 - 0.85).

The API matches rwjax.waves.lansdell: Params (static), State (pytree), init,
advance, warmup, THRESHOLD, pixel_mm. Parameter sets of the paper: PRESETS / preset().
"""

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rwjax.errors import InputError
from rwjax.waves import lattice

# Calcium level taken as "in a wave": one frame inside a wave front already gives
# ~0.05-0.15 and the trace saturates near 1 in the wave's interior, while isolated
# firing cells stay below ~0.1 (0.01 per frame decaying by 0.85).
THRESHOLD = 0.1


class Params(NamedTuple):
  """Model constants; the paper's parameter sets are in PRESETS. Hashable (static)."""
  size: int = 64             # lattice is size x size cells
  spacing_um: float = 34.0   # lattice spacing (um)
  radius_um: float = 170.0   # dendritic-disk radius R (um)
  dt: float = 0.025          # update step (s)
  frame_dt: float = 0.1      # time between frames (s)
  h1: float = 5.0
  h2: float = 0.4
  p_d: float = 1.25          # active period P_D (s)
  p: float = 30.0            # P (s)
  t_k: float = 0.2           # excitation time constant T_K (s)
  rho_sd: float = 0.2        # sd of the Normal(1, sd) factor of rho
  theta0_lo: float = 0.5     # initial theta ~ Uniform(lo, hi)
  theta0_hi: float = 5.0
  ca_decay: float = 0.85     # calcium trace, per frame
  ca_self: float = 0.01
  ca_neighbour: float = 0.005
  ca_radius: float = 3.0     # lattice spacings


# The paper's parameter sets: (H1, H2, P_D, P, T_K).
_SETS = {
    'default': (5.0, 0.4, 1.25, 30.0, 0.2),
    'mouse': (4.0, 0.75, 2.30, 32.0, 0.35),
    'ferret': (4.0, 0.75, 1.30, 43.0, 0.25),
    'rabbit': (4.0, 0.6, 1.05, 44.0, 0.25),
    'turtle': (4.0, 0.7, 1.0, 23.0, 0.2),
    'chick': (4.0, 0.4, 1.05, 38.0, 0.025),
}
PRESETS = {name: Params(h1=a, h2=b, p_d=c, p=d, t_k=e)
           for name, (a, b, c, d, e) in _SETS.items()}


def preset(name: str, **overrides) -> Params:
  """The named parameter set (see PRESETS) with optional field overrides, e.g. size=32."""
  if name not in PRESETS:
    raise InputError(f'unknown Godfrey preset {name!r}; choose one of {sorted(PRESETS)}')
  return PRESETS[name]._replace(**overrides)


class State(NamedTuple):
  """Simulator state of B independent retinas."""
  active_time: jax.Array  # f32[B, H, W] remaining active time (s); > 0 means active
  e: jax.Array            # f32[B, H, W] excitation
  theta: jax.Array        # f32[B, H, W] threshold
  rho: jax.Array          # f32[B, H, W] threshold decay rate (1/s)
  calcium: jax.Array      # f32[B, H, W] calcium-like trace in [0, 1] (the frames)
  key: jax.Array          # u32[B, 2] one raw PRNG key per retina


def pixel_mm(params: Params = Params()) -> float:
  """Lattice spacing in mm (0.034 at the defaults)."""
  return params.spacing_um / 1000.0


def coupling_kernel(params: Params = Params()) -> np.ndarray:
  """w(d) on lattice offsets: f32[k, k], k odd, zero at the centre (no self-coupling)."""
  r = params.radius_um
  n = int(math.ceil(2 * r / params.spacing_um)) - 1   # offsets with d < 2R on the axes
  off = np.arange(-n, n + 1) * params.spacing_um
  d = np.hypot(off[:, None], off[None, :])
  inside = d < 2 * r
  dc = np.where(inside, d, 0.0)
  w = 2 * (r**2 * np.arccos(dc / (2 * r)) - dc / 2 * np.sqrt(r**2 - dc**2 / 4)) / (np.pi * r**2)
  w = np.where(inside, w, 0.0)
  w[n, n] = 0.0
  return w.astype(np.float32)


def _disk(radius: float) -> np.ndarray:
  """Indicator f32[k, k] of lattice offsets with 0 < |offset| <= radius (spacings)."""
  n = int(math.floor(radius))
  off = np.arange(-n, n + 1)
  m = (off[:, None]**2 + off[None, :]**2 <= radius**2).astype(np.float32)
  m[n, n] = 0.0
  return m


def _conv(x: jax.Array, kernel: np.ndarray) -> jax.Array:
  """Zero-padded 'same' 2-D convolution of f32[B, H, W] with a symmetric kernel."""
  out = jax.lax.conv_general_dilated(
      x[:, None], jnp.asarray(kernel)[None, None], window_strides=(1, 1),
      padding='SAME', precision=jax.lax.Precision.HIGHEST)
  return out[:, 0]


@functools.lru_cache(maxsize=16)
def neighbour_fraction(params: Params = Params()) -> np.ndarray:
  """N_i / N_max: f32[H, W] fraction of the full 2R neighbourhood inside the lattice."""
  k = coupling_kernel(params) > 0
  n = params.size
  pad = k.shape[0] // 2
  inside = np.pad(np.ones((n, n), np.float32), pad)
  count = sum(inside[i:i + n, j:j + n] for i, j in zip(*np.nonzero(k)))
  return (count / k.sum()).astype(np.float32)


def _rho(normal: jax.Array, params: Params) -> jax.Array:
  """Post-activity decay rate for Normal(0, 1) draws f32[B, H, W]."""
  scale = params.h1 / params.p * jnp.asarray(neighbour_fraction(params))
  return scale * jnp.maximum(0.0, 1.0 + params.rho_sd * normal)


@functools.partial(jax.jit, static_argnames=('batch', 'params'))
def init(key: jax.Array, batch: int, params: Params = Params()) -> State:
  """Quiet retinas with random thresholds; `key` u32[2] is split per retina."""
  lattice.check_count('batch', batch, 1)
  lattice.steps_per_frame(params)
  shape = (batch, params.size, params.size)
  k_theta, k_rho, k_ret = jax.random.split(key, 3)
  theta = jax.random.uniform(k_theta, shape, jnp.float32, params.theta0_lo, params.theta0_hi)
  zeros = jnp.zeros(shape, jnp.float32)
  return State(active_time=zeros, e=zeros, theta=theta,
               rho=_rho(jax.random.normal(k_rho, shape), params), calcium=zeros,
               key=jax.random.split(k_ret, batch))


def step(state: State, normal: jax.Array, params: Params) -> State:
  """One dt update; `normal` f32[B, H, W] are the Normal(0, 1) draws for new rho."""
  p = params
  active = state.active_time > 0
  a = _conv(active.astype(jnp.float32), coupling_kernel(p))
  e_quiet = jnp.maximum(0.0, state.e + (a - state.e) * (p.dt / p.t_k))
  fire = ~active & (e_quiet >= state.theta)
  left = state.active_time - p.dt
  ends = active & (left <= 0)
  active_time = jnp.where(fire, p.p_d, jnp.where(active, jnp.maximum(left, 0.0), 0.0))
  e = jnp.where(active, jnp.where(ends, 0.0, state.e), e_quiet)
  drive = jnp.where(active, (p.h1 + a * p.h2) / p.p_d, 0.0)
  theta = jnp.maximum(0.0, state.theta + p.dt * (drive - state.rho))
  rho = jnp.where(ends, _rho(normal, p), state.rho)
  return state._replace(active_time=active_time, e=e, theta=theta, rho=rho)


def frame_draws(key: jax.Array, params: Params = Params()):
  """One frame's Normal(0, 1) draws (for new rho) of one retina.

  One draw per cell and frame suffices: a cell ends activity at most once per frame
  (P_D >= frame_dt for every preset). key u32[2] -> (next_key u32[2], f32[H, W]).
  """
  key, sub = jax.random.split(key)
  return key, jax.random.normal(sub, (params.size, params.size))


def _frame(state: State, params: Params) -> State:
  """Advances one frame: the dt steps, then the calcium trace."""
  n = lattice.steps_per_frame(params)
  key, normal = jax.vmap(lambda k: frame_draws(k, params))(state.key)
  state = jax.lax.fori_loop(0, n, lambda _, s: step(s, normal, params),
                            state._replace(key=key))
  active = (state.active_time > 0).astype(jnp.float32)
  near = _conv(active, _disk(params.ca_radius))
  ca = params.ca_decay * state.calcium + params.ca_self * active + params.ca_neighbour * near
  return state._replace(calcium=jnp.clip(ca, 0.0, 1.0))


@functools.partial(jax.jit, static_argnames=('n_frames', 'params'))
def advance(state: State, n_frames: int, params: Params = Params()):
  """Simulates `n_frames` frames -> (new State, calcium frames f32[B, n_frames, H, W] in [0, 1])."""
  lattice.check_count('n_frames', n_frames)

  def one(s, _):
    s = _frame(s, params)
    return s, s.calcium

  state, frames = jax.lax.scan(one, state, None, length=n_frames)
  return state, jnp.moveaxis(frames, 0, 1)


@functools.partial(jax.jit, static_argnames=('seconds', 'params'))
def warmup(state: State, seconds: float, params: Params = Params()) -> State:
  """Advances the state by `seconds` (rounded to whole frames) without keeping frames."""
  lattice.check_count('seconds', seconds)
  n = round(seconds / params.frame_dt)
  return jax.lax.fori_loop(0, n, lambda _, s: _frame(s, params), state)
