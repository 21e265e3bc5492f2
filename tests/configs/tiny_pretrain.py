"""Tiny pre-training for binary-level tests (CPU, seconds per step).

  python -m rwjax.train --config=tests/configs/tiny_pretrain.py --workdir=DIR

8 devices x 2 retinas of 32x32 Lansdell cells, 16x16 inputs, a 4-wide ResNet-18; and
`disk_movie`, a saved movie at these sizes (data.source='file').
"""

import numpy as np

from rwjax import defaults


def get_config():
  c = defaults.pretrain_config()
  c.model.update(width=4, projector=(16, 8), dtype='float32')
  c.data.update(sim_size=32, input_size=16, retinas_per_device=2, buffer_frames=4)
  # From rest, the first wave covers these small retinas at 0-2.5 s and leaves them
  # refractory for minutes (only single driven cells, which are no wave): calibrate on
  # its first second and train inside it.
  c.data.update(warmup_s=0.0, calibration_s=0.1)
  c.data.sim_params.lansdell.spont_prob = 0.01  # the first wave begins at once
  c.train.update(batch_pairs=16, steps=6, log_every=2, checkpoint_every=3)
  c.train.monitor_every = 0  # tests that want the online monitor turn it on
  return c


def disk_movie(t=24, starts=(2, 13), noise=0.0):
  """f32[2, t, 32, 32]: two retinas, each with expanding disks (8 frames from each start) of
  V = 0 mV on a -70 mV rest, plus Gaussian noise of std `noise` mV."""
  yy, xx = np.mgrid[:32, :32]
  movie = np.full((2, t, 32, 32), -70.0, np.float32)
  for b, (cy, cx) in enumerate([(10, 12), (20, 18)]):
    for start in starts:
      for k in range(8):
        movie[b, start + k][(yy - cy) ** 2 + (xx - cx) ** 2 <= (2 + k) ** 2] = 0.0
  return movie + np.random.default_rng(0).normal(0, noise, movie.shape).astype(np.float32)
