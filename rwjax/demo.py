"""The README's first command: the whole pipeline on a small embedded default, on CPU.

  python -m rwjax.demo --workdir=out/demo      (what `make demo` runs)

Simulates the Lansdell waves of 4 retinas (64x64 cells, 2 mm; 60 s after a 300 s warm-up) into
DIR/waves (statistics printed, preview.gif), pre-trains configs/pretrain_smoke.py (the simulator
inside the sharded SimCLR step) into DIR/pretrain, and evaluates that network against random
init on scikit-learn's 8x8 digits (configs/evaluate.py:digits) into DIR/pretrain/eval.
"""

import os

from absl import app
from absl import flags

from rwjax import defaults
from rwjax import evaluate
from rwjax.errors import cli_main, parse_flags
from rwjax.eval import monitor
from rwjax.ssl import trainer
from rwjax.waves import simulate
from rwjax.waves import stats as wave_stats

_WORKDIR = flags.DEFINE_string('workdir', 'out/demo', 'Where the demo writes everything.')


def run(workdir: str) -> None:
  print('== 1/3 simulating retinal waves (Lansdell et al. 2014) ==', flush=True)
  out = os.path.join(workdir, 'waves')
  meta = simulate.write_movie(out, model='lansdell', batch=4, seconds=60.0, warmup=300.0,
                              gif_seconds=60.0)
  print(f'wrote {out}/movie.npy {tuple(meta["shape"])}, labels.npy, meta.json, preview.gif')
  print(wave_stats.table(meta['summary']), flush=True)
  print('\n== 2/3 SimCLR pre-training on simulated waves (configs/pretrain_smoke.py) ==',
        flush=True)
  pretrain_dir = os.path.join(workdir, 'pretrain')
  pretrain = defaults.smoke_pretrain_config()
  trainer.train(pretrain, pretrain_dir, hooks=monitor.hooks(pretrain))  # as the binary does
  print('\n== 3/3 evaluation: pre-trained vs random init on digits ==', flush=True)
  config = defaults.config_file('evaluate', 'digits')
  config.workdir = pretrain_dir
  evaluate.run(config)
  print(f'\ndone: everything is in {workdir}/', flush=True)


def main(argv):
  del argv
  cli_main(lambda: run(_WORKDIR.value))


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
