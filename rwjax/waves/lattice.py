"""Checks shared by the lattice simulators: grid size, the step/frame clock, frame counts."""

from rwjax.errors import InputError


def steps_per_frame(params) -> int:
  """Euler steps per movie frame of a simulator's Params (fields size, dt, frame_dt).

  Raises InputError for a lattice under 2 cells or a frame that is not a whole
  number of steps.
  """
  if params.size < 2:
    raise InputError(f'size={params.size} must be >= 2; use e.g. size=64')
  if params.dt <= 0 or params.frame_dt <= 0:
    raise InputError(f'dt={params.dt} and frame_dt={params.frame_dt} must be > 0')
  n = round(params.frame_dt / params.dt)
  if n < 1 or abs(n * params.dt - params.frame_dt) > 1e-9 * max(1.0, params.frame_dt):
    raise InputError(f'frame_dt={params.frame_dt} must be a whole multiple of '
                     f'dt={params.dt}; e.g. frame_dt=0.1 with dt=0.001')
  return n


def check_count(name: str, value, least: int = 0) -> None:
  """InputError for a count or duration below `least` (a frame count, a batch of retinas)."""
  if value < least:
    raise InputError(f'{name}={value} must be >= {least}')
