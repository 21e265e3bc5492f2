"""The README's first command: the whole pipeline on a small embedded default, on CPU.

  python -m rwjax.demo --workdir=out/demo      (what `make demo` runs)

1. simulates the Lansdell waves of 4 retinas (64x64 cells, 2 mm; 60 s after a 60 s
   warm-up), prints their statistics and writes DIR/waves/preview.gif;
2. pre-trains configs/pretrain_smoke.py (the on-device simulator inside the sharded
   SimCLR step) into DIR/pretrain, and writes its random-init twin into DIR/random;
3. evaluates both on scikit-learn's 8x8 digits (linear probes per layer) into DIR/eval.
"""

import os

from absl import app
from absl import flags

from rwjax import defaults
from rwjax import train
from rwjax.errors import cli_main
from rwjax.waves import __main__ as waves_cli

_WORKDIR = flags.DEFINE_string('workdir', 'out/demo', 'Where the demo writes everything.')


def run(workdir: str) -> None:
  print('== 1/3 simulating retinal waves (Lansdell et al. 2014) ==', flush=True)
  waves_cli.main(['simulate', '--model=lansdell', '--batch=4', '--seconds=60', '--warmup=60',
                  f'--out={os.path.join(workdir, "waves")}'])
  print('\n== 2/3 SimCLR pre-training on simulated waves (smoke config) ==', flush=True)
  config = defaults.smoke_pretrain_config()
  train.train(config, os.path.join(workdir, 'pretrain'))
  config.train.steps = 0
  train.train(config, os.path.join(workdir, 'random'))
  print(f'\ndone: everything is in {workdir}/', flush=True)


def main(argv):
  del argv
  cli_main(lambda: run(_WORKDIR.value))


if __name__ == '__main__':
  app.run(main)
