"""python -m rwjax.experiment --config=configs/experiment.py:SCALE --workdir=DIR."""

from absl import app
from absl import flags
from ml_collections import config_flags

from rwjax import experiment
from rwjax.errors import cli_main, parse_flags


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments {argv[1:]}')
  if flags.FLAGS.config is None:
    raise app.UsageError('pass --config=configs/experiment.py:SCALE --workdir=DIR')
  cli_main(lambda: experiment.run(flags.FLAGS.config, flags.FLAGS.workdir))


if __name__ == '__main__':
  config_flags.DEFINE_config_file(
      'config', None, 'Experiment config (configs/experiment.py:SCALE).', lock_config=True)
  flags.DEFINE_string('workdir', None, 'Runs, report.md and report.html go here.')
  app.run(main, flags_parser=parse_flags)
