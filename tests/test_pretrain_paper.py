"""configs/pretrain_paper.py: its movie command agrees with its config values; the paper's
normalisation and projector head through the trainer on a saved movie."""

import os
import re
import runpy

import jax.numpy as jnp
import numpy as np
import pytest

from rwjax.ssl import trainer
from rwjax import waves
from rwjax.errors import InputError
from rwjax.waves import frames as frames_lib
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


def test_paper_normalisation_and_head_through_the_trainer(tmp_path):
  tiny = runpy.run_path(TINY)
  movie = tiny['disk_movie'](noise=0.1)  # 2 retinas x 24 frames, two 8-frame waves each
  np.save(tmp_path / 'movie.npy', movie)
  c = tiny['get_config']()
  c.data.update(source='file', movie=str(tmp_path / 'movie.npy'), batching='waves',
                wave_batch_frames=10, val_fraction=0.0, min_wave_size=50, movie_norm='paper')
  c.model.projector_bias_last = False
  c.train.epochs, c.train.steps = 1, 0
  state = trainer.train(c, str(tmp_path / 'w'))
  assert 'bias' not in state.params['projector']['out']
  want = frames_lib.to_network_input(jnp.asarray(movie), 16, 1, 'paper')[..., 0]
  # The source (with its whole-wave plan) holds the movie's frames, replicated on every device
  # (too few separate waves to shard), in the paper's transform.
  held = np.asarray(state.source[0].movie)[:2]
  np.testing.assert_allclose(held, want, atol=1e-5)
  assert held.min() == 0.0 and held.max() == pytest.approx(1.0)


def test_the_on_device_source_refuses_frames_shorter_than_the_input_window(tmp_path):
  c = runpy.run_path(TINY)['get_config']()
  c.train.steps = 0
  c.data.sim_params.lansdell.update(frame_dt=0.01, spont_frames=10)
  with pytest.raises(InputError, match='sim_params.lansdell.spont_frames=1'):
    trainer.train(c, str(tmp_path / 'w'))
