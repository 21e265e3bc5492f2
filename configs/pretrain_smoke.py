"""Smoke pre-training on CPU in a minute or two: the full pipeline, tiny sizes.

The same code path as configs/pretrain_waves.py (on-device Lansdell simulator inside
the sharded step, SimCLR loss, checkpoints), with a narrow ResNet-18 (width 8), 8
retinas per device and 60 steps.

Run:
  python -m rwjax.train --config=configs/pretrain_smoke.py --workdir=workdirs/smoke

Expected: about a minute and a half on a 2-core CPU, most of it simulating the 330 s
of warm-up and calibration; the progress lines show loss, views/s and the simulator's
share of the step. Few of the 8 retinas' buffered frames belong to a wave, so only a
handful of the 32 pairs are valid per step and the loss is small and noisy (the
paper's config has every pair valid). DIR/checkpoints holds steps 30 and 60,
DIR/metrics.jsonl one line per log interval. Running the command again resumes (and
stops at once: it is done).
"""

from rwjax import defaults


def get_config():
  return defaults.smoke_pretrain_config()
