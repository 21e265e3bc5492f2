"""configs/pretrain_paper.py: its movie command agrees with its config values (the paper's
normalisation and projector head through the trainer: tests/test_train.py)."""

import os
import re
import runpy

import pytest

from rwjax.ssl import trainer
from rwjax import waves
from rwjax.errors import InputError
from rwjax.waves.cli import parse_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER = os.path.join(ROOT, 'configs', 'pretrain_paper.py')
TINY = os.path.join(ROOT, 'tests', 'configs', 'tiny_pretrain.py')


def test_the_movie_command_is_the_configs_simulator():
  module = runpy.run_path(PAPER)
  c = module['get_config']()
  doc = module['__doc__']
  command = doc[doc.index('python -m rwjax.waves simulate'):doc.index('--out=workdirs/paper_movie')]
  given = parse_params(waves.lansdell, re.findall(r'--param (\S+)', command))
  defaults = waves.lansdell.Params()._asdict()
  configured = {k: v for k, v in c.data.sim_params.lansdell.items() if v != defaults[k]}
  assert given == configured
  assert f'--min-size={c.data.min_wave_size}' in command
  # 20,000 frames (the paper's training movie) of whole spontaneous-input windows.
  seconds = float(re.search(r'--seconds=(\S+)', command).group(1))
  params = waves.lansdell.Params(**given)
  assert round(seconds / params.frame_dt) == 20_000
  assert params.spont_frames * params.frame_dt == pytest.approx(0.1)
  assert c.data.movie_norm == 'paper' and c.model.projector_bias_last is False


def test_the_on_device_source_refuses_frames_shorter_than_the_input_window(tmp_path):
  c = runpy.run_path(TINY)['get_config']()
  c.train.steps = 0
  c.data.sim_params.lansdell.update(frame_dt=0.01, spont_frames=10)
  with pytest.raises(InputError, match='sim_params.lansdell.spont_frames=1'):
    trainer.train(c, str(tmp_path / 'w'))
