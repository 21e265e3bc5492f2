"""Pre-trains a ResNet-18 with SimCLR on retinal waves.

  python -m rwjax.train --config=configs/pretrain_waves.py --workdir=DIR [--config.x.y=v ...]

The wave simulator runs inside the jitted, sharded training step on every device. A workdir
that holds a checkpoint is resumed; `--config.train.steps=0` writes the freshly initialised
network (the random-init baseline of the evaluation). The trainer is rwjax.ssl.trainer; the
online monitor (rwjax.eval.monitor, config.train.monitor_every > 0) is its hook.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from rwjax import checkpoint
from rwjax.errors import InputError, cli_main, parse_flags
from rwjax.eval import monitor
from rwjax.ssl import trainer


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments {argv[1:]}')

  def run():
    config = flags.FLAGS.config
    try:
      trainer.train(config, flags.FLAGS.workdir, hooks=monitor.hooks(config))
    except (trainer.NonFiniteLoss, checkpoint.SaveError) as e:
      raise InputError(str(e)) from None

  cli_main(run)


if __name__ == '__main__':  # flags defined here: importing the module claims no --config
  config_flags.DEFINE_config_file(
      'config', None, 'Pre-training config file (configs/pretrain_*.py).', lock_config=True)
  flags.DEFINE_string('workdir', None, 'Checkpoints, config.json and metrics go here.')
  app.run(main, flags_parser=parse_flags)
