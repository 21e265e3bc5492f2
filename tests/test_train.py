"""The train binary: resumption, the random-init checkpoint, bad input, non-finite loss."""

import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from rwjax import checkpoint
from rwjax import metrics as metrics_lib
from rwjax.errors import InputError
from rwjax.ssl import trainer


TINY = os.path.join(os.path.dirname(__file__), 'configs', 'tiny_pretrain.py')


def tiny_config():
  """8 devices x 2 retinas of 32x32 Lansdell cells, 16x16 inputs, a 4-wide ResNet-18."""
  return runpy.run_path(TINY)['get_config']()


def params_of(state):
  return jax.tree.map(np.asarray, state.params)


def test_resume_gives_identical_parameters(tmp_path):
  c = tiny_config()
  straight = trainer.train(c, str(tmp_path / 'straight'))
  assert int(straight.step) == 6
  c_half = tiny_config()
  c_half.train.steps = 3
  trainer.train(c_half, str(tmp_path / 'resumed'))
  assert checkpoint.latest_step(str(tmp_path / 'resumed')) == 3
  resumed = trainer.train(c, str(tmp_path / 'resumed'))
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
  state = trainer.train(c, str(tmp_path))
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
    (('loss', 'denominator', 'nt_xent'), "denominator='nt_xent' is unknown"),
    (('data', 'batching', 'frames'), "batching='frames' is unknown"),
    (('data', 'shuffle', 'temporal_local'), "shuffle='temporal_local' is unknown"),
    (('data', 'batching', 'waves'), "batching='waves' needs config.data.source='file'"),
    (('train', 'epochs', 3), "epochs counts passes over a movie's waves"),
])
def test_bad_config_values_are_refused_before_anything_is_written(tmp_path, override, message):
  c = tiny_config()
  group, key, value = override
  c[group][key] = value
  with pytest.raises(InputError, match=message):
    trainer.train(c, str(tmp_path / 'w'))
  assert not os.path.exists(tmp_path / 'w' / 'checkpoints')


def test_incompatible_checkpoint_is_refused_and_kept(tmp_path):
  c = tiny_config()
  c.train.steps = 0
  trainer.train(c, str(tmp_path))
  c.model.width = 8
  with pytest.raises(InputError, match='incompatible config.*model.width'):
    trainer.train(c, str(tmp_path))
  assert checkpoint.latest_step(str(tmp_path)) == 0
  assert checkpoint.read_config(str(tmp_path)).model.width == 4


def test_unwritable_workdir(tmp_path):
  (tmp_path / 'file').write_text('x')
  with pytest.raises(InputError, match='not writable'):
    trainer.train(tiny_config(), str(tmp_path / 'file' / 'sub'))


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  c = tiny_config()
  c.optim.lr = 1e30
  c.train.steps = 50
  c.train.checkpoint_every = 1
  c.train.log_every = 1
  with pytest.raises(trainer.NonFiniteLoss, match=r'not finite at step (\d+).*last good checkpoint'):
    trainer.train(c, str(tmp_path))
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
  state = trainer.train(c, str(tmp_path))
  v = np.asarray(state.source.sim.v)  # 8 devices x 2 retinas
  assert v.shape == (16, 32, 32)
  assert len({row.tobytes() for row in v}) == 16


def _disk_movie(t=24, starts=(2, 13)):
  """Two retinas, each with expanding disks (8 frames from each start) of V = 0 mV on a -70 mV
  rest."""
  size = 32
  yy, xx = np.mgrid[:size, :size]
  movie = np.full((2, t, size, size), -70.0, np.float32)
  for b, (cy, cx) in enumerate([(10, 12), (20, 18)]):
    for start in starts:
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
  trainer.train(c, str(tmp_path / 'w'))
  rows = metrics_lib.read_metrics(str(tmp_path / 'w'))
  assert [r['step'] for r in rows] == [1, 2] and all(r['n_anchors'] > 0 for r in rows)
  # The movie is not checkpointed; resuming rebuilds it from the file.
  c.train.steps = 3
  assert int(trainer.train(c, str(tmp_path / 'w')).step) == 3
  c.data.frame_separation = 24
  with pytest.raises(InputError, match='larger than the movie'):
    trainer.train(c, str(tmp_path / 'other'))


def _wave_config(tmp_path, movie):
  """The paper's protocol on a movie: whole-wave batches, its loss, epochs, validation."""
  np.save(tmp_path / 'movie.npy', movie)
  c = tiny_config()
  c.data.source = 'file'
  c.data.movie = str(tmp_path / 'movie.npy')
  c.data.batching = 'waves'
  c.data.wave_batch_frames = 10
  c.data.val_fraction = 0.34
  c.loss.denominator = 'negatives'
  c.train.epochs = 2
  c.train.log_every = 1
  return c


def test_whole_wave_batches_run_epochs_and_log_the_validation_loss(tmp_path):
  # 6 disks of 8 frames: int(6 * 0.34) = 2 held out; 4 training waves, 2 per batch (16 > 10).
  c = _wave_config(tmp_path, _disk_movie(36, (2, 13, 24)))
  c.data.shuffle = 'spatiotemporal_global'  # the paper's control: labels kept, frames not
  state = trainer.train(c, str(tmp_path / 'w'))
  assert int(state.step) == 4  # 2 epochs x 2 batches
  rows = [json.loads(l) for l in open(tmp_path / 'w' / 'metrics.jsonl')]
  steps = [r for r in rows if 'loss' in r]
  val = [r for r in rows if 'val_loss' in r]
  assert [r['step'] for r in steps] == [1, 2, 3, 4]
  # Every frame of a batch is an anchor: 2 waves x 8 frames, each with 1-2 positives.
  assert all(r['n_anchors'] == 16 and np.isfinite(r['loss']) for r in steps)
  assert [(r['step'], r['epoch']) for r in val] == [(2, 1), (4, 2)]
  assert all(r['val_anchors'] == 16 and np.isfinite(r['val_loss'])
             and np.isfinite(r['val_loss_batch']) for r in val)
  assert checkpoint.latest_step(str(tmp_path / 'w')) == 4


@pytest.mark.parametrize('movie, override, message', [
    ('flat', {}, 'has no wave'),
    ('disks', {'wave_batch_frames': 7}, 'wave of 8 frames is longer than the batch budget'),
    ('disks', {'val_fraction': 0.9}, 'the validation split leaves 1 training wave'),
])
def test_bad_wave_movies_are_refused_before_anything_is_written(tmp_path, movie, override,
                                                                 message):
  frames = (np.full((2, 36, 32, 32), -70.0, np.float32) if movie == 'flat'
            else _disk_movie(36, (2, 13, 24)))
  c = _wave_config(tmp_path, frames)
  for k, v in override.items():
    c.data[k] = v
  w = tmp_path / 'w'
  w.mkdir()
  (w / 'config.json').write_text('{"kept": true}')
  with pytest.raises(InputError, match=message):
    trainer.train(c, str(w))
  assert (w / 'config.json').read_text() == '{"kept": true}'
  assert sorted(os.listdir(w)) == ['config.json']


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
  state = trainer.train(c, str(tmp_path))
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
  trainer.train(c, str(tmp_path))
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


def test_cli_builds_the_monitor_hook_from_the_config(tmp_path):
  # The binary hands the trainer rwjax.eval.monitor's hook when monitor_every > 0: its
  # settings are checked before anything is written.
  p = _cli([f'--config={TINY}', f'--workdir={tmp_path / "w"}',
            '--config.train.monitor_every=2', '--config.monitor.source=imagenet'])
  _, err = p.communicate(timeout=120)
  assert p.returncode == 2 and len(err.strip().splitlines()) == 1, err
  assert err.startswith("error: config.monitor.source='imagenet' is unknown")
  assert not os.path.exists(tmp_path / 'w')


def test_simulator_parameters_come_from_the_config(tmp_path):
  c = tiny_config()
  c.data.sim_params.lansdell.nope = 1.0
  with pytest.raises(InputError, match=r"sim_params.lansdell has unknown keys \['nope'\]"):
    trainer.train(c, str(tmp_path / 'bad'))
  c = tiny_config()
  c.train.steps = 0
  c.data.sim_params.lansdell.spont_prob = 0.0  # no cell is ever driven: no waves
  quiet = trainer.train(c, str(tmp_path / 'quiet'))
  assert (np.asarray(quiet.source.labels) == -1).all()
  assert np.asarray(quiet.source.sim.v).max() < -60.0


def test_a_run_that_fails_on_bad_input_leaves_the_workdirs_config_untouched(tmp_path):
  # A compatible workdir (a checkpoint and its config.json); then runs on it whose input is
  # bad in ways only building the optimizer or the source finds out.
  c = tiny_config()
  c.train.steps = 0
  trainer.train(c, str(tmp_path / 'sim'))
  np.save(tmp_path / 'movie.npy', _disk_movie())
  f = tiny_config()
  f.train.steps = 0
  f.data.source = 'file'
  f.data.movie = str(tmp_path / 'movie.npy')
  trainer.train(f, str(tmp_path / 'file'))
  before = {w: (tmp_path / w / 'config.json').read_bytes() for w in ('sim', 'file')}
  np.save(tmp_path / 'labels.npy', np.zeros((2, 23), np.int32))

  def bad(base, group, key, value):
    cfg = tiny_config() if base == 'sim' else f.copy_and_resolve_references()
    cfg.train.steps = 2
    cfg[group][key] = value
    return cfg

  cases = [
      ('sim', bad('sim', 'optim', 'weight_decay', -1.0), 'weight_decay'),
      ('file', bad('file', 'data', 'frame_separation', 24), 'larger than the movie'),
      ('file', bad('file', 'data', 'labels', str(tmp_path / 'labels.npy')), 'one label per frame'),
  ]
  unknown = tiny_config()
  unknown.data.sim_params.lansdell.nope = 1.0
  cases.append(('sim', unknown, 'unknown keys'))
  for workdir, cfg, message in cases:
    with pytest.raises(InputError, match=message):
      trainer.train(cfg, str(tmp_path / workdir))
  for w in ('sim', 'file'):
    assert (tmp_path / w / 'config.json').read_bytes() == before[w], w


def test_cli_resumes_a_workdir_damaged_by_a_crash(tmp_path):
  """A workdir as a full disk or a killed copy leaves it: the latest checkpoint's data files
  truncated, and metrics.jsonl ending inside a record. The binary says so in one line each,
  resumes from the intact checkpoint before, and every whole record stays readable; with no
  readable checkpoint it stops with one error line, exit code 2, and changes nothing."""
  c = tiny_config()
  c.train.steps, c.train.checkpoint_every, c.train.log_every = 2, 1, 1
  w = tmp_path / 'w'
  trainer.train(c, str(w))
  for d, _, files in os.walk(w / 'checkpoints' / '2'):
    for f in files if os.path.basename(d) == 'd' else ():
      os.truncate(os.path.join(d, f), os.path.getsize(os.path.join(d, f)) // 2)
  with open(w / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 3, "lo')
  args = [f'--config={TINY}', f'--workdir={w}', '--config.train.checkpoint_every=1',
          '--config.train.log_every=1']

  p = _cli(args + ['--config.train.steps=3'])
  out, err = p.communicate(timeout=300)
  assert p.returncode == 0, err
  assert 'Traceback' not in err and 'resuming from step 1' in out, err
  warnings = [l for l in err.splitlines() if l.startswith('warning: ')]
  assert len(warnings) == 2, warnings
  assert warnings[0].startswith(f'warning: checkpoint 2 in {w}/checkpoints cannot be read '
                                '(OUT_OF_RANGE')
  assert warnings[0].endswith(f'moved to {w}/checkpoints_damaged/2, resuming from step 1')
  assert warnings[1].startswith(f'warning: {w}/metrics.jsonl ended in a partial record')
  assert checkpoint.latest_step(str(w)) == 3 and os.listdir(w / 'checkpoints_damaged') == ['2']
  # Step 2 logged by both runs (the second re-ran it from step 1), the partial one kept aside.
  assert [r['step'] for r in metrics_lib.read_metrics(str(w))] == [1, 2, 2, 3]
  assert (w / 'metrics.jsonl.torn').read_text() == '{"step": 3, "lo\n'

  for step in os.listdir(w / 'checkpoints'):
    shutil.rmtree(w / 'checkpoints' / step)
    (w / 'checkpoints' / step).mkdir()
  before = sorted(os.walk(w))
  p = _cli(args + ['--config.train.steps=4'])
  _, err = p.communicate(timeout=300)
  assert p.returncode == 2 and 'Traceback' not in err, err
  assert err.strip().splitlines()[-1].startswith(
      f'error: no checkpoint in {w}/checkpoints can be read: step 3 (its directory is empty)')
  assert sorted(os.walk(w)) == before


def test_hooks_start_from_the_initial_network_and_measure_every_monitor_every_steps(tmp_path):
  """The trainer's hook interface (rwjax.ssl.trainer.Hook) with a hook that records what it
  is given: started once per run, resumed runs included, with the run's initial network (the
  random-init network that steps=0 saves); measured at steps 2 and 4 (monitor_every=2) with
  the network of that step; its values in that step's metrics record."""
  calls = []
  params = lambda v: jax.tree.map(np.asarray, v['params'])

  def hook(model, init_variables):
    assert model.width == 4  # the SimCLRModel of the config
    calls.append(('start', params(init_variables)))

    def measure(step, variables):
      calls.append((step, params(variables)))
      return {'hook/step': step}

    return measure

  c = tiny_config()
  c.train.steps = 0
  init = params_of(trainer.train(c, str(tmp_path / 'init'), hooks=(hook,)))
  assert calls == []  # nothing to measure: the hooks are not started
  c.train.steps, c.train.log_every, c.train.monitor_every, c.train.checkpoint_every = 2, 1, 2, 2
  at_2 = params_of(trainer.train(c, str(tmp_path / 'w'), hooks=(hook,)))
  c.train.steps = 4
  at_4 = params_of(trainer.train(c, str(tmp_path / 'w'), hooks=(hook,)))

  assert [k for k, _ in calls] == ['start', 2, 'start', 4]
  for (_, got), want in zip(calls, (init, at_2, init, at_4)):
    jax.tree.map(np.testing.assert_array_equal, got, want)
  rows = metrics_lib.read_metrics(str(tmp_path / 'w'))
  measured = [r for r in rows if 'hook/step' in r]
  assert [(r['step'], r['hook/step']) for r in measured] == [(2, 2.0), (4, 4.0)]
  assert all(r['monitor/seconds'] >= 0 for r in measured)
  assert not any('hook/step' in r for r in rows if r['step'] in (1, 3))
