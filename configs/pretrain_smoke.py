"""Smoke pre-training on CPU in a minute or two: the full pipeline, tiny sizes.

The same code path as configs/pretrain_waves.py (on-device Lansdell simulator inside
the sharded step, SimCLR loss, checkpoints), with a narrow ResNet-18 (width 8), few
retinas, a short warm-up and 60 steps.

Run:
  python -m rwjax.train --config=configs/pretrain_smoke.py --workdir=workdirs/smoke

Expected: about a minute on a 2-core CPU; the loss (starting near log(2 * 32) ~ 4.2)
goes down; DIR/checkpoints holds steps 30 and 60, DIR/metrics.jsonl one line per
log interval. Running the command again resumes (and stops at once: it is done).
"""

from rwjax import defaults


def get_config():
  return defaults.smoke_pretrain_config()
