"""Tiny pre-training for binary-level tests (CPU, seconds per step).

  python -m rwjax.train --config=tests/configs/tiny_pretrain.py --workdir=DIR

8 devices x 2 retinas of 32x32 Lansdell cells, 16x16 inputs, a 4-wide ResNet-18.
"""

from rwjax import defaults


def get_config():
  c = defaults.pretrain_config()
  c.model.width = 4
  c.model.projector = (16, 8)
  c.model.dtype = 'float32'
  c.data.sim_size = 32
  c.data.input_size = 16
  c.data.retinas_per_device = 2
  c.data.buffer_frames = 4
  # From rest, the first wave covers these small retinas at 0-2.5 s and leaves them
  # refractory for minutes (only single driven cells, which are no wave): calibrate on
  # its first second and train inside it.
  c.data.warmup_s = 0.0
  c.data.calibration_s = 0.1
  c.data.sim_params.lansdell.spont_prob = 0.01  # the first wave begins at once
  c.train.batch_pairs = 16
  c.train.steps = 6
  c.train.log_every = 2
  c.train.checkpoint_every = 3
  c.train.monitor_every = 0  # tests that want the online monitor turn it on
  return c
