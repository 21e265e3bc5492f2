"""The train binary: resumption, the random-init checkpoint, bad input, non-finite loss."""

import json
import os
import runpy
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from rwjax import metrics as metrics_lib
from rwjax import train
from rwjax.errors import InputError
from rwjax.ssl import checkpoint


TINY = os.path.join(os.path.dirname(__file__), 'configs', 'tiny_pretrain.py')


def tiny_config():
  """8 devices x 2 retinas of 32x32 Lansdell cells, 16x16 inputs, a 4-wide ResNet-18."""
  return runpy.run_path(TINY)['get_config']()


def params_of(state):
  return jax.tree.map(np.asarray, state.params)


def test_resume_gives_identical_parameters(tmp_path):
  c = tiny_config()
  straight = train.train(c, str(tmp_path / 'straight'))
  assert int(straight.step) == 6
  c_half = tiny_config()
  c_half.train.steps = 3
  train.train(c_half, str(tmp_path / 'resumed'))
  assert checkpoint.latest_step(str(tmp_path / 'resumed')) == 3
  resumed = train.train(c, str(tmp_path / 'resumed'))
  assert int(resumed.step) == 6
  # The resumed run recompiles its step; on some CPUs two compilations need not give
  # bit-identical floats, so equality is to float32 rounding. Losing the optimizer state,
  # the source state or a step changes them at the order of the learning rate.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               params_of(straight), params_of(resumed))
  rows = metrics_lib.read_metrics(str(tmp_path / 'straight'))
  assert [r['step'] for r in rows] == [2, 4, 6] and 'views_per_s' in rows[0] and 'sim_share' in rows[0]
  # The loss is real: anchors had positives.
  assert all(r['n_anchors'] > 0 for r in rows)
  # TensorBoard's own reader sees the same scalars (as float32) in the event file.
  from tensorboard.backend.event_processing import event_accumulator
  acc = event_accumulator.EventAccumulator(str(tmp_path / 'straight' / 'tensorboard'))
  acc.Reload()
  assert set(acc.Tags()['scalars']) == set(rows[0]) - {'step'}
  for tag in acc.Tags()['scalars']:
    assert [(e.step, e.value) for e in acc.Scalars(tag)] == [
        (r['step'], np.float32(r[tag])) for r in rows]


def test_zero_steps_writes_the_random_init_network(tmp_path):
  c = tiny_config()
  c.train.steps = 0
  state = train.train(c, str(tmp_path))
  config, variables = checkpoint.load_for_eval(str(tmp_path))
  assert config.model.width == 4
  jax.tree.map(np.testing.assert_array_equal, params_of(state), variables['params'])
  assert set(variables) == {'params', 'batch_stats'}


@pytest.mark.parametrize('override, message', [
    (('train', 'batch_pairs', 12), 'not divisible by the 8 devices'),
    (('train', 'batch_pairs', -8), 'must be a positive integer'),
    (('model', 'stem', 'vgg'), 'stem'),
    (('data', 'frame_separation', 4), 'smaller than config.data.buffer_frames'),
    (('data', 'simulator', 'nope'), 'nope'),
    (('data', 'shuffle', 'pixels'), 'shuffle'),
    (('data', 'sim_groups', 3), 'sim_groups=3 must divide'),
])
def test_bad_config_values_are_refused_before_anything_is_written(tmp_path, override, message):
  c = tiny_config()
  group, key, value = override
  c[group][key] = value
  with pytest.raises(InputError, match=message):
    train.train(c, str(tmp_path / 'w'))
  assert not os.path.exists(tmp_path / 'w' / 'checkpoints')


def test_incompatible_checkpoint_is_refused_and_kept(tmp_path):
  c = tiny_config()
  c.train.steps = 0
  train.train(c, str(tmp_path))
  c.model.width = 8
  with pytest.raises(InputError, match='incompatible config.*model.width'):
    train.train(c, str(tmp_path))
  assert checkpoint.latest_step(str(tmp_path)) == 0
  assert checkpoint.read_config(str(tmp_path)).model.width == 4


def test_unwritable_workdir(tmp_path):
  (tmp_path / 'file').write_text('x')
  with pytest.raises(InputError, match='not writable'):
    train.train(tiny_config(), str(tmp_path / 'file' / 'sub'))


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  c = tiny_config()
  c.optim.lr = 1e30
  c.train.steps = 50
  c.train.checkpoint_every = 1
  c.train.log_every = 1
  with pytest.raises(train.NonFiniteLoss, match=r'not finite at step (\d+).*last good checkpoint'):
    train.train(c, str(tmp_path))
  last = checkpoint.latest_step(str(tmp_path))
  assert last is not None and last < 50
  _, variables = checkpoint.load_for_eval(str(tmp_path))
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(variables['params']))


def _cli(args, **kw):
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8',
             JAX_PLATFORMS='cpu')
  return subprocess.Popen([sys.executable, '-m', 'rwjax.train', *args], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_cli_bad_value_is_one_line_exit_2(tmp_path):
  p = _cli(['--config=configs/pretrain_smoke.py', f'--workdir={tmp_path}',
            '--config.train.batch_pairs=12'])
  out, err = p.communicate(timeout=120)
  assert p.returncode == 2, err
  assert err.strip().splitlines()[-1].startswith('error: config.train.batch_pairs=12')
  assert 'Traceback' not in err


def test_sigterm_saves_and_exits_cleanly(tmp_path):
  p = _cli(['--config=configs/pretrain_smoke.py', f'--workdir={tmp_path}',
            '--config.train.steps=100000', '--config.train.checkpoint_every=100000',
            '--config.data.warmup_s=2', '--config.data.calibration_s=2'])
  deadline = time.time() + 240
  while not metrics_lib.read_metrics(str(tmp_path)) and time.time() < deadline:
    time.sleep(0.5)
  p.send_signal(signal.SIGTERM)
  out, err = p.communicate(timeout=120)
  assert p.returncode == 0, err
  assert 'preempted: saved step' in out
  step = checkpoint.latest_step(str(tmp_path))
  assert step is not None and step >= 10


def test_devices_simulate_different_retinas(tmp_path):
  c = tiny_config()
  c.train.steps = 0
  state = train.train(c, str(tmp_path))
  v = np.asarray(state.source.sim.v)  # 8 devices x 2 retinas
  assert v.shape == (16, 32, 32)
  assert len({row.tobytes() for row in v}) == 16


def _disk_movie():
  """Two retinas, each with two expanding disks of V = 0 mV on a -70 mV rest."""
  t, size = 24, 32
  yy, xx = np.mgrid[:size, :size]
  movie = np.full((2, t, size, size), -70.0, np.float32)
  for b, (cy, cx) in enumerate([(10, 12), (20, 18)]):
    for start in (2, 13):
      for k in range(8):
        movie[b, start + k][(yy - cy) ** 2 + (xx - cx) ** 2 <= (2 + k) ** 2] = 0.0
  return movie


def test_file_source_trains_on_a_saved_movie(tmp_path):
  path = tmp_path / 'movie.npy'
  np.save(path, _disk_movie())
  c = tiny_config()
  c.data.source = 'file'
  c.data.movie = str(path)
  c.train.steps = 2
  c.train.log_every = 1
  train.train(c, str(tmp_path / 'w'))
  rows = metrics_lib.read_metrics(str(tmp_path / 'w'))
  assert [r['step'] for r in rows] == [1, 2] and all(r['n_anchors'] > 0 for r in rows)
  # The movie is not checkpointed; resuming rebuilds it from the file.
  c.train.steps = 3
  assert int(train.train(c, str(tmp_path / 'w')).step) == 3
  c.data.frame_separation = 24
  with pytest.raises(InputError, match='larger than the movie'):
    train.train(c, str(tmp_path / 'other'))


def test_godfrey_simulator_feeds_training(tmp_path):
  c = tiny_config()
  c.data.simulator = 'godfrey'
  # From rest the first Godfrey waves sweep the lattice at 2-6 s: calibrate over them and
  # fill the buffer inside them.
  c.data.warmup_s = 0.0
  c.data.calibration_s = 4.0
  c.data.buffer_frames = 8
  c.train.steps = 2
  c.train.log_every = 1
  c.train.checkpoint_every = 2
  state = train.train(c, str(tmp_path))
  assert int(state.step) == 2
  rows = metrics_lib.read_metrics(str(tmp_path))
  assert all(np.isfinite(r['loss']) and r['n_anchors'] > 0 for r in rows)
  # Calcium frames: the buffer holds network input in [0, 1] with some activity.
  buffer = np.asarray(state.source.buffer)
  assert buffer.min() >= 0.0 and buffer.max() <= 1.0 and buffer.max() > 0.0


def test_controls_augmentations_and_sim_groups_run_in_the_step(tmp_path):
  c = tiny_config()
  c.data.sim_groups = 2  # the two retinas of a device advance in turn
  c.data.shuffle = 'spatiotemporal'
  c.data.augment.translate = 2
  c.data.augment.flip = True
  c.data.augment.noise_std = 0.05
  c.train.steps = 2
  c.train.log_every = 1
  c.train.checkpoint_every = 2
  train.train(c, str(tmp_path))
  rows = metrics_lib.read_metrics(str(tmp_path))
  assert len(rows) == 2 and all(np.isfinite(r['loss']) and r['n_anchors'] > 0 for r in rows)


@pytest.mark.parametrize('override, message', [
    ('--config.train.foo=1', 'error: --config.train.foo is not a key of the config'),
    ('--config.train.steps=abc', 'error: flag --config.train.steps=abc'),
])
def test_cli_unknown_key_or_bad_type_is_one_line_exit_2(tmp_path, override, message):
  p = _cli(['--config=configs/pretrain_smoke.py', f'--workdir={tmp_path}', override])
  _, err = p.communicate(timeout=120)
  assert p.returncode == 2 and len(err.strip().splitlines()) == 1
  assert err.startswith(message)


def test_simulator_parameters_come_from_the_config(tmp_path):
  c = tiny_config()
  c.data.sim_params.lansdell.nope = 1.0
  with pytest.raises(InputError, match=r"sim_params.lansdell has unknown keys \['nope'\]"):
    train.train(c, str(tmp_path / 'bad'))
  c = tiny_config()
  c.train.steps = 0
  c.data.sim_params.lansdell.spont_prob = 0.0  # no cell is ever driven: no waves
  quiet = train.train(c, str(tmp_path / 'quiet'))
  assert (np.asarray(quiet.source.labels) == -1).all()
  assert np.asarray(quiet.source.sim.v).max() < -60.0
