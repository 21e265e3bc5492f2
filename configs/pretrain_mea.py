"""Pre-training on recorded waves: SimCLR on converted MEA recordings (the recorded arm).

The paper's network, loss and optimiser (configs/pretrain_waves.py), with frames from
several multi-electrode-array recordings instead of the simulator, through the trainer's
file source as it is: one movie.npy f32[B, T, 64, 64] whose rows are segments of the
recordings (each row z-scored and min-maxed on its own, as a simulated retina is) and
labels.npy i32[B, T] with wave ids unique across rows. Build it once (stage II
recordings of Maccione et al. 2014, P2-P9, cut into 600 s segments):

  python -m rwjax.waves mea-dataset --folder=PATH/mea-maccione2014 --ages=2:9 \
      --segment-s=600 --out=data/mea_stage2

Run:
  python -m rwjax.train --config=configs/pretrain_mea.py --workdir=workdirs/mea
  python -m rwjax.train --config=configs/pretrain_mea.py:DIR --workdir=W   # another dataset

The 64x64 recorded frames are block mean-pooled to 32x32 like the simulator's. Positive
pairs are frames of the same detected wave (density > 0.15 spikes per electrode-frame,
waves of >= 50 pixel-frames, rwjax.waves.recorded), data.frame_separation frames apart.
"""

import os

from rwjax import defaults

DEFAULT_DIR = 'data/mea_stage2'


def get_config(arg: str | None = None):
  c = defaults.pretrain_config()
  folder = arg or DEFAULT_DIR
  c.data.source = 'file'
  c.data.movie = os.path.join(folder, 'movie.npy')
  c.data.labels = os.path.join(folder, 'labels.npy')
  return c
