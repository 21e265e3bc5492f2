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


def _movie():
  """2 retinas x 24 frames of 32x32 with two expanding disks each (waves of 8 frames)."""
  movie = np.full((2, 24, 32, 32), -70.0, np.float32)
  yy, xx = np.mgrid[:32, :32]
  for b in range(2):
    for start, (cy, cx) in ((2, (8, 8)), (13, (20, 22))):
      for k in range(8):
        movie[b, start + k][(yy - cy) ** 2 + (xx - cx) ** 2 <= (2 + k) ** 2] = 0.0
  return movie + np.random.default_rng(0).normal(0, 0.1, movie.shape).astype(np.float32)


def test_paper_normalisation_and_head_through_the_trainer(tmp_path):
  np.save(tmp_path / 'movie.npy', _movie())
  c = runpy.run_path(TINY)['get_config']()
  c.data.source, c.data.movie = 'file', str(tmp_path / 'movie.npy')
  c.data.batching, c.data.wave_batch_frames, c.data.val_fraction = 'waves', 10, 0.0
  c.data.min_wave_size = 50
  c.data.movie_norm = 'paper'
  c.model.projector_bias_last = False
  c.train.epochs, c.train.steps = 1, 0
  state = trainer.train(c, str(tmp_path / 'w'))
  assert 'bias' not in state.params['projector']['out']
  want = frames_lib.to_network_input(jnp.asarray(_movie()), 16, 1, 'paper')[..., 0]
  # The source (with its whole-wave plan) holds the movie's frames, replicated on every device
  # (too few separate waves to shard), in the paper's transform.
  held = np.asarray(state.source[0].movie)[:2]
  np.testing.assert_allclose(held, want, atol=1e-5)
  assert held.min() == 0.0 and held.max() == pytest.approx(1.0)
  c.data.movie_norm = 'whole'
  with pytest.raises(InputError, match="movie_norm='whole' is unknown"):
    trainer.train(c, str(tmp_path / 'bad'))


def test_the_on_device_source_refuses_frames_shorter_than_the_input_window(tmp_path):
  c = runpy.run_path(TINY)['get_config']()
  c.train.steps = 0
  c.data.sim_params.lansdell.frame_dt = 0.01
  c.data.sim_params.lansdell.spont_frames = 10
  with pytest.raises(InputError, match='sim_params.lansdell.spont_frames=1'):
    trainer.train(c, str(tmp_path / 'w'))
