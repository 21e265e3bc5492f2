"""python -m rwjax.experiment --config=configs/experiment.py:SCALE --workdir=DIR."""

import os
import runpy
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from rwjax import experiment
from rwjax.errors import InputError, cli_main, parse_flags


def _parse_flags(argv: list[str]) -> list[str]:
  """parse_flags, with a bad scale as one error line (ml_collections would wrap the config
  file's InputError in a traceback)."""
  for a in argv[1:]:
    if a.startswith('--config='):
      path, _, scale = a[len('--config='):].partition(':')
      if os.path.isfile(path):
        try:
          runpy.run_path(path)['get_config'](*([scale] if scale else []))
        except InputError as e:
          print(f'error: {e}', file=sys.stderr)
          sys.exit(2)
  return parse_flags(argv)


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
  app.run(main, flags_parser=_parse_flags)
