"""Plain NumPy reference of the Godfrey & Swindale (2007) wave model.

Written from the equations in the docstring of `rwjax.waves.godfrey` (it reads only its
`Params`), the straightforward way: the coupling is a dense cell-by-cell matrix of
dendritic-disk overlaps built from pairwise distances (no convolution), the border
factor N_i / N_max counts lattice cells within 2R of each cell, the calcium neighbours
are counted from distances too. tests/waves/test_godfrey.py feeds it and the JAX model
the same Normal(0, 1) draws and compares the frames. Per dt step, for every cell at once,
from the state at the start of the step:

  A      = sum_{j != i} w(d_ij) [j active]
  quiet:   e <- max(0, e + (A - e) dt / T_K); it fires (active for P_D s) if e >= theta
  active:  its remaining time falls by dt; when it reaches 0 the cell is quiet, e <- 0
           and rho <- (H1 / P) (N_i / N_max) max(0, 1 + sd z)  (z ~ Normal(0, 1); a rate
           is not negative)
  theta <- max(0, theta + dt (-rho + [active] (H1 + A H2) / P_D))

and after the frame's steps c <- clip(0.85 c + 0.01 [active] + 0.005 #(active cells j != i
with d_ij <= 3 spacings), 0, 1).
"""

import math

import numpy as np

from rwjax.waves.godfrey import Params


def _distances(params: Params) -> np.ndarray:
  """f64[N, N] distances (um) between the N = size^2 lattice cells (raster order)."""
  n = params.size
  yy, xx = np.mgrid[:n, :n]
  pos = np.stack([yy.ravel(), xx.ravel()], 1) * params.spacing_um
  return np.hypot(pos[:, None, 0] - pos[None, :, 0], pos[:, None, 1] - pos[None, :, 1])


def coupling(params: Params) -> np.ndarray:
  """f64[N, N] w_ij: overlap of two disks of radius R at distance d, over pi R^2."""
  d = _distances(params)
  r = params.radius_um
  w = np.zeros_like(d)
  m = (d > 0) & (d < 2 * r)
  dm = d[m]
  overlap = 2 * (r**2 * np.arccos(dm / (2 * r)) - dm / 2 * np.sqrt(r**2 - dm**2 / 4))
  w[m] = overlap / (math.pi * r**2)
  return w


def border_factor(params: Params) -> np.ndarray:
  """f64[N]: N_i / N_max, lattice cells within 2R of cell i over the most any cell has."""
  d = _distances(params)
  count = ((d > 0) & (d < 2 * params.radius_um)).sum(1)
  # An interior cell's count: all lattice offsets with 0 < |offset| < 2R.
  k = int(math.ceil(2 * params.radius_um / params.spacing_um))
  off = np.arange(-k, k + 1) * params.spacing_um
  dd = np.hypot(off[:, None], off[None, :])
  n_max = ((dd > 0) & (dd < 2 * params.radius_um)).sum()
  return count / n_max


def calcium_neighbours(params: Params) -> np.ndarray:
  """f64[N, N]: 1 where 0 < d_ij <= ca_radius lattice spacings."""
  d = _distances(params) / params.spacing_um
  return ((d > 0) & (d <= params.ca_radius + 1e-9)).astype(np.float64)


def step(f: dict, z: np.ndarray, p: Params, w: np.ndarray, border: np.ndarray) -> dict:
  """One dt update of fields f (dict of f64[B, N]); z f64[B, N] the Normal(0, 1) draws."""
  active = f['active_time'] > 0
  a = active.astype(np.float64) @ w.T
  e_quiet = np.maximum(0.0, f['e'] + (a - f['e']) * p.dt / p.t_k)
  fire = ~active & (e_quiet >= f['theta'])
  left = f['active_time'] - p.dt
  ends = active & (left <= 0)
  active_time = np.where(fire, p.p_d, np.where(active, np.maximum(left, 0.0), 0.0))
  e = np.where(active, np.where(ends, 0.0, f['e']), e_quiet)
  drive = np.where(active, (p.h1 + a * p.h2) / p.p_d, 0.0)
  theta = np.maximum(0.0, f['theta'] + p.dt * (drive - f['rho']))
  new_rho = (p.h1 / p.p) * border * np.maximum(0.0, 1.0 + p.rho_sd * z)
  rho = np.where(ends, new_rho, f['rho'])
  return dict(f, active_time=active_time, e=e, theta=theta, rho=rho)


def frame(f: dict, z: np.ndarray, p: Params, w: np.ndarray, border: np.ndarray,
          near: np.ndarray) -> dict:
  """Advances one frame (frame_dt / dt steps with the frame's draws z), then the calcium."""
  for _ in range(round(p.frame_dt / p.dt)):
    f = step(f, z, p, w, border)
  active = (f['active_time'] > 0).astype(np.float64)
  ca = p.ca_decay * f['calcium'] + p.ca_self * active + p.ca_neighbour * (active @ near.T)
  return dict(f, calcium=np.clip(ca, 0.0, 1.0))


def advance(f: dict, draws: np.ndarray, p: Params = Params()):
  """Simulates one frame per draws[:, t] (f64[B, T, N]); -> (fields, frames f64[B, T, H, W])."""
  w, border, near = coupling(p), border_factor(p), calcium_neighbours(p)
  frames = []
  for t in range(draws.shape[1]):
    f = frame(f, draws[:, t], p, w, border, near)
    frames.append(f['calcium'].reshape(-1, p.size, p.size))
  return f, np.stack(frames, axis=1)
