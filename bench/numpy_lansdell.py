"""Plain NumPy reference of the Lansdell, Ford & Kutz (2014) wave model.

The same equations and constants as `rwjax.waves.lansdell` (it reads its `Params`),
written the straightforward way -- literal tanh/cosh, edge padding with np.pad, one
array operation at a time -- as the speed baseline of bench/simulator.py and as an
independent check of the JAX version (tests/waves/test_lansdell.py feeds both the
same spontaneous-input draws).
"""

import numpy as np

from rwjax.waves.lansdell import Params, pixel_mm, steps_per_frame


def init(batch: int, params: Params = Params(), dtype=np.float32):
  """Resting retinas: dict of f32[B, H, W] fields v=-70, r=s=e=0."""
  shape = (batch, params.size, params.size)
  return {'v': np.full(shape, -70.0, dtype), 'r': np.zeros(shape, dtype),
          's': np.zeros(shape, dtype), 'e': np.zeros(shape, dtype)}


def laplacian(x: np.ndarray, h: float) -> np.ndarray:
  """5-point Laplacian over the last two axes, no-flux borders via edge padding."""
  pad = [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)]
  xp = np.pad(x, pad, mode='edge')
  return (xp[..., :-2, 1:-1] + xp[..., 2:, 1:-1] + xp[..., 1:-1, :-2]
          + xp[..., 1:-1, 2:] - 4.0 * x) / (h * h)


def step(f: dict, g_n: np.ndarray, p: Params) -> dict:
  """One explicit Euler step; `g_n` is the spontaneous conductance, same shape as v."""
  v, r, s, e = f['v'], f['r'], f['s'], f['e']
  g = 1.0 / (1.0 + np.exp(-p.kappa * (v - p.v0)))
  g_ca = p.g_ca * (1.0 + np.tanh((v - p.v1) / p.v2)) / 2.0
  g_ach = p.g_ach * p.delta * e**2 / (1.0 + p.delta * e**2)
  lam = np.cosh((v - p.v3) / (2.0 * p.v4))
  r_inf = (1.0 + np.tanh((v - p.v3) / p.v4)) / 2.0
  dv = (1000.0 / p.cm) * (-g_ca * (v - p.v_ca) - p.g_k * r * (v - p.v_k)
                          - p.g_l * (v - p.v_l) - g_ach * (v - p.v_syn)
                          - g_n * (v - p.v_n) + p.i_app)
  dr = (lam * (r_inf - r) + p.alpha * s * (1.0 - r)) / p.tau_r
  ds = -s / p.tau_s + p.c * g
  de = p.diff * laplacian(e, pixel_mm(p)) - e / p.tau_ach + p.b * g
  dt = p.dt
  return {'v': v + dt * dv, 'r': r + dt * dr, 's': s + dt * ds, 'e': e + dt * de}


def frame(f: dict, driven: np.ndarray, p: Params) -> dict:
  """Advances through one frame window; `driven` bool[B, H, W] gets gN = g_n."""
  g_n = np.where(driven, p.g_n, 0.0).astype(f['v'].dtype)
  for _ in range(steps_per_frame(p)):
    f = step(f, g_n, p)
  return f


def advance(f: dict, n_frames: int, rng: np.random.Generator, p: Params = Params()):
  """Simulates n_frames windows with NumPy's RNG; returns (fields, frames f32[B, T, H, W])."""
  frames = []
  for _ in range(n_frames):
    driven = rng.random(f['v'].shape) < p.spont_prob
    f = frame(f, driven, p)
    frames.append(f['v'])
  return f, np.stack(frames, axis=1)
