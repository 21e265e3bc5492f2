"""Binary: the linear-autoencoder critical-point benchmark (Frye et al. 2021).

  python -m rwjax.landscape --config=configs/landscape_linear_ae.py --workdir=out/landscape

Writes <workdir>/results.json and <workdir>/loss_vs_index.png and prints a summary table.
float64 is switched on globally here, in the binary's main only (see docs/landscape.md).
"""

import json

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

from rwjax import paths
from rwjax.errors import InputError, cli_main, parse_flags
from rwjax.landscape import benchmark
from rwjax.landscape import plot

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Path to the benchmark config.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')


def _summary(results: dict) -> str:
  lines = [f'{"method":<15}{"success":>10}{"+-":>7}{"grad-flat":>11}{"starts":>8}{"seconds":>9}']
  for name, m in results['methods'].items():
    lines.append(f'{name:<15}{m["success_fraction"]:>10.2f}{m["success_stderr"]:>7.2f}'
                 f'{m["gradient_flat_fraction"]:>11.2f}{m["num_starts"]:>8d}{m["seconds"]:>9.1f}')
  flat = results['toy']['(1.4142, 0.0)']
  lines.append(f'toy f at (sqrt 2, 0): ||g||^2={flat["grad_norm_sq"]:.3f} r={flat["r"]:.3f} '
               f'r_H={flat["r_h"]:.1e}; analytic classes: {results["analytic"]["num_classes"]}')
  return '\n'.join(lines)


def _main() -> None:
  config = _CONFIG.value
  if config is None:
    raise InputError('no --config given; pass --config=configs/landscape_linear_ae.py')
  if not _WORKDIR.value:
    raise InputError('no --workdir given; pass --workdir=DIR for results.json and the plot')
  if paths.is_remote(_WORKDIR.value):  # a bucket's errors before the benchmark
    paths.check_writable(_WORKDIR.value)
  jax.config.update('jax_enable_x64', True)
  results, plot_data = benchmark.run(config)
  paths.makedirs(_WORKDIR.value)
  paths.write_atomic(paths.join(_WORKDIR.value, 'results.json'), json.dumps(results, indent=1))
  plot.loss_vs_index(paths.join(_WORKDIR.value, 'loss_vs_index.png'), plot_data)
  print(_summary(results))
  print(f'wrote {_WORKDIR.value}/results.json and loss_vs_index.png')


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  cli_main(_main)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
