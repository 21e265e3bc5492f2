"""The paper's pre-training on one GPU: SimCLR on simulated stage II waves.

32x32x3 frames from the Lansdell model (64x64 lattice, block mean-pooled), ResNet-18
with the imagenet stem, projector 512-128, temperature 0.5, Adam lr 1e-3 (wd 1e-6),
512 pairs per step. The simulator runs inside the jitted step on every device.

Run:
  python -m rwjax.train --config=configs/pretrain_waves.py --workdir=workdirs/waves

Simulator parameters are config values too, e.g. the published ACh diffusion constant
(faster, larger waves than the default D = 0.005 mm^2/s; see rwjax/waves/lansdell.py):
  ... --config.data.sim_params.lansdell.diff=0.01

Random-init baseline for the evaluation (same architecture, no training):
  python -m rwjax.train --config=configs/pretrain_waves.py --workdir=workdirs/random \
      --config.train.steps=0

Expected: the loss falls from about log(2 * 512) ~ 6.9 over the first few thousand
steps; checkpoints every 1000 steps in DIR/checkpoints, metrics in DIR/metrics.jsonl.
On several GPUs or TPU cores the same command splits the 512 pairs over the
devices (set --config.train.batch_pairs to a multiple of the device count).
"""

from rwjax import defaults


def get_config():
  return defaults.pretrain_config()
