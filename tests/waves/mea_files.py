"""Synthetic MEA spike files in the waverepo layout (Eglen et al. 2014), for the tests.

Files are written as R writes them (epos transposed to [2, N], scalars as 1-element
arrays) unless told otherwise.
"""

import h5py
import numpy as np

from rwjax.waves import recorded

PITCH_UM = 42.0


def site_recording(rows, cols, **kwargs):
  """A Recording without spikes, one train at each raster site (rows[i], cols[i])."""
  return recorded.Recording(
      times=np.zeros(0), channel=np.zeros(0, np.int32), row=np.ravel(rows).astype(np.int32),
      col=np.ravel(cols).astype(np.int32), duration_s=1.0, age_days=None, source='grid',
      **kwargs)


def grid_recording(size, pitch_mm=PITCH_UM / 1000):
  """One train per site of a size x size raster."""
  rr, cc = np.mgrid[:size, :size]
  return site_recording(rr, cc, pitch_mm=pitch_mm, shape=(size, size))


def write_mea(path, pos_um, trains, *, duration=None, age=None, array=None,
              transposed=True, scalars_as_arrays=True):
  """A waverepo-layout file: pos_um f64[N, 2] (x, y) and one spike-time array per train."""
  box = (lambda v: np.array([v])) if scalars_as_arrays else (lambda v: v)
  with h5py.File(path, 'w') as f:
    f['epos'] = np.asarray(pos_um, np.float64).T if transposed else np.asarray(pos_um)
    f['sCount'] = np.array([len(t) for t in trains], np.int32)
    f['spikes'] = np.concatenate([np.asarray(t, np.float64) for t in trains])
    if duration is not None:
      f['summary/duration'] = box(float(duration))
    if age is not None:
      f['meta/age'] = box(age)
    if array is not None:
      f['array'] = np.array([array.encode()]) if scalars_as_arrays else array
  return path


def front_trains(pos_um, speed_mm_s, t0=1.0, burst=np.linspace(0, 0.6, 6)):
  """Each electrode bursts when a planar front moving along +x passes it."""
  onset = t0 + (pos_um[:, 0] - pos_um[:, 0].min()) / 1000 / speed_mm_s
  return [o + burst for o in onset], float(onset.max() + 3)


def mcs_8x8(pitch_um=200.0):
  """The 60 electrodes of an MCS 8x8 grid (corners missing), 1-based positions."""
  return np.array([(i * pitch_um, j * pitch_um) for j in range(1, 9) for i in range(1, 9)
                   if (i, j) not in ((1, 1), (1, 8), (8, 1), (8, 8))])


def hexagonal(rows, cols, spacing_um=60.0):
  """A hexagonal lattice: rows spacing*sqrt(3)/2 apart, odd rows shifted by spacing/2."""
  return np.array([((i + 0.5 * (j % 2)) * spacing_um, j * spacing_um * np.sqrt(3) / 2)
                   for j in range(rows) for i in range(cols)])


def fronts_file(path, size=16, speed_mm_s=0.1, starts=(5.0, 45.0, 85.0, 125.0),
                duration=160.0, age=6, shift_um=0.0):
  """A size x size grid (42 um) crossed by planar fronts along x at `speed_mm_s`, one
  starting at each time of `starts`; each electrode bursts 6 spikes over 0.6 s."""
  rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing='ij')
  pos = np.stack([cols.ravel(), rows.ravel()], 1) * PITCH_UM + shift_um
  fronts = [front_trains(pos, speed_mm_s, t0=s)[0] for s in starts]
  trains = [np.concatenate(t) for t in zip(*fronts)]
  return write_mea(path, pos, trains, duration=duration, age=age)
