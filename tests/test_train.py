"""The train binary: resumption, the random-init checkpoint, bad input, non-finite loss."""

import json
import os
import re
import runpy
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rwjax import checkpoint
from rwjax import defaults
from rwjax import distributed
from rwjax import metrics as metrics_lib
from rwjax import schema as S
from rwjax.errors import InputError
from rwjax.models import resnet
from rwjax.ssl import loss
from rwjax.ssl import optim
from rwjax.ssl import pairs
from rwjax.ssl import placement
from rwjax.ssl import sources
from rwjax.ssl import trainer
from rwjax.ssl import wave_batches
from rwjax.waves import dataset
from rwjax.waves import frames as frames_lib
from rwjax.waves import readers


TINY = os.path.join(os.path.dirname(__file__), 'configs', 'tiny_pretrain.py')
tiny_config, _disk_movie = map(runpy.run_path(TINY).get, ('get_config', 'disk_movie'))


def params_of(state):
  return jax.tree.map(np.asarray, state.params)


def _set(config, dotted: str, value) -> None:
  *parents, last = dotted.split('.')
  node = S.get(config, '.'.join(parents)) if parents else config
  with node.ignore_type():
    node[last] = value


def _tiny(changes=(), base=None, **train):
  """A copy of `base` (default: the tiny config) with dotted-key `changes` and train.<key>s."""
  c = base.copy_and_resolve_references() if base is not None else tiny_config()
  for key, value in [*dict(changes).items(), *(('train.' + k, v) for k, v in train.items())]:
    _set(c, key, value)
  return c


def _refused_keeping_workdir(workdir, cases):
  """(config, message) runs on a trained workdir, bad in ways only building the model, the
  optimizer or the source, or starting the simulator, finds out: each refused, its
  config.json and checkpoints kept."""
  before = (workdir / 'config.json').read_bytes(), checkpoint.latest_step(str(workdir))
  for config, message in cases:
    with pytest.raises(InputError, match=message):
      trainer.train(config, str(workdir))
  assert ((workdir / 'config.json').read_bytes(), checkpoint.latest_step(str(workdir))) == before


def test_a_run_logs_the_same_scalars_to_metrics_jsonl_and_tensorboard(tmp_path):
  # Resuming to the uninterrupted run's parameters: test_gcs.py (this config, preempted) and
  # launch/test_local.py (a local workdir); to the bit: ssl/test_placement.py.
  assert int(trainer.train(tiny_config(), str(tmp_path)).step) == 6
  rows = metrics_lib.read_metrics(str(tmp_path))
  assert [r['step'] for r in rows] == [2, 4, 6] and {'views_per_s', 'sim_share'} <= set(rows[0])
  assert all(r['n_anchors'] > 0 for r in rows)  # the loss is real: anchors had positives
  # TensorBoard's own reader sees the same scalars (as float32) in the event file.
  from tensorboard.backend.event_processing import event_accumulator
  acc = event_accumulator.EventAccumulator(str(tmp_path / 'tensorboard'))
  acc.Reload()
  assert set(acc.Tags()['scalars']) == set(rows[0]) - {'step'}
  for tag in acc.Tags()['scalars']:
    assert [(e.step, e.value) for e in acc.Scalars(tag)] == [
        (r['step'], np.float32(r[tag])) for r in rows]


def test_zero_steps_writes_the_random_init_network_and_refused_runs_keep_it(tmp_path):
  state = trainer.train(_tiny(steps=0), str(tmp_path))
  config, variables = checkpoint.load_for_eval(str(tmp_path))
  assert config.model.width == 4
  jax.tree.map(np.testing.assert_array_equal, params_of(state), variables['params'])
  assert set(variables) == {'params', 'batch_stats'}
  v = np.asarray(state.source.sim.v)  # 8 devices x 2 retinas, each its own
  assert v.shape == (16, 32, 32) and len({row.tobytes() for row in v}) == 16
  # The workdir is this network's now: another architecture is refused, and it is kept.
  _refused_keeping_workdir(tmp_path, [
      (_tiny({'model.width': 8}, steps=2), 'incompatible config.*model.width'),
      (_tiny({'optim.schedule': 'cosine', 'optim.warmup_steps': 2}, steps=2),
       'cosine schedule needs total_steps'),
      (_tiny({'data.sim_params.lansdell.nope': 1.0}, steps=2),
       r"sim_params.lansdell has unknown keys \['nope'\]"),
      (_tiny({'data.sim_params.lansdell.spont_frames': 10}, steps=2),
       'needs config.data.sim_params.lansdell.spont_frames=1')])
  assert checkpoint.latest_step(str(tmp_path)) == 0


def _names_real_keys(config, message: str) -> None:
  """Every config.<dotted key> the message names is a key of the config (S.get raises)."""
  named = re.findall(r'\bconfig\.([A-Za-z_][\w.]*)', message)
  assert named, message
  for dotted in named:
    S.get(config, dotted.rstrip('.'))


_KEYS = S.bad_values(defaults.pretrain_rules())


@pytest.mark.parametrize('key, bad', _KEYS, ids=[k for k, _ in _KEYS])
def test_every_key_refuses_a_bad_value_in_one_line_naming_it(key, bad):
  c = tiny_config()
  trainer.validate(c, 8)  # the tiny config is valid
  _set(c, key, bad)
  with pytest.raises(InputError) as e:
    trainer.validate(c, 8)
  assert f'config.{key}=' in str(e.value) and '\n' not in str(e.value)
  _names_real_keys(c, str(e.value))


def test_the_config_accepts_exactly_the_choices_the_library_implements():
  # The rules are data (rwjax.defaults imports no training or model module: evaluation, which
  # reads configs, loads no training, and the model checks its keys by these rules without an
  # import circle); the choices they accept must be those the library dispatches on.
  implemented = {'model.stem': resnet.STEMS, 'model.conv': resnet.CONVS,
                 'loss.denominator': loss.DENOMINATORS, 'optim.name': optim.OPTIMIZERS,
                 'optim.schedule': optim.SCHEDULES, 'data.shuffle': pairs.SHUFFLES,
                 'data.placement': placement.PLACEMENTS, 'data.wave_labels': sources.WAVE_LABELS,
                 'data.batching': wave_batches.BATCHINGS, 'data.wave_order': wave_batches.ORDERS,
                 'data.movie_format': ('saved', 'auto') + readers.FORMATS,
                 'data.recorded.minmax': dataset.MINMAX}
  rules = defaults.pretrain_rules()
  for key, values in implemented.items():
    assert set(rules[key].values) == set(values), key


@pytest.mark.parametrize('name, given', [
    ('pretrain_smoke', {}), ('pretrain_waves', {}), ('pretrain_mea', {}),
    ('pretrain_paper', {'data.movie': 'movie.npy'}),
])  # pretrain_recorded, which reads its files when validated: tests/test_train_recorded.py
def test_every_pretraining_preset_passes_the_trainers_validation(name, given):
  c = defaults.config_file(name)
  for key, value in given.items():  # what its docstring's command line gives
    S.put(c, key, value)
  trainer.validate(c, 8)


@pytest.mark.parametrize('override, message', [
    ({'model.stem': 'vgg'}, "config.model.stem='vgg' must be one of"),  # a key's own rule
    ({'train.batch_pairs': 12}, 'not divisible by the 8 devices'),
    ({'data.frame_separation': 4}, 'smaller than config.data.buffer_frames'),
    ({'data.sim_groups': 3}, 'sim_groups=3 must divide'),
    ({'data.input_size': 12}, 'sim_size=32 must be a multiple of config.data.input_size=12'),
    ({'data.batching': 'waves'}, "batching='waves' needs config.data.source='file'"),
    ({'train.epochs': 3}, "epochs counts passes over a movie's waves"),
    ({'data.source': 'file'}, "source='file' needs --config.data.movie"),
])
def test_bad_config_values_are_refused_before_anything_is_written(tmp_path, override, message):
  c = _tiny(override)
  with pytest.raises(InputError, match=message) as e:
    trainer.train(c, str(tmp_path / 'w'))
  _names_real_keys(c, str(e.value))
  assert not os.path.exists(tmp_path / 'w')


def test_unwritable_workdir(tmp_path):
  (tmp_path / 'file').write_text('x')
  with pytest.raises(InputError, match='cannot write to .*file.*; pass a path you can write'):
    trainer.train(tiny_config(), str(tmp_path / 'file' / 'sub'))


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  c = _tiny({'optim.lr': 1e30}, steps=50, checkpoint_every=1, log_every=1)
  with pytest.raises(trainer.NonFiniteLoss, match=r'not finite at step \d+.*last good checkpoint'):
    trainer.train(c, str(tmp_path))
  last = checkpoint.latest_step(str(tmp_path))
  assert last is not None and last < 50
  _, variables = checkpoint.load_for_eval(str(tmp_path))
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(variables['params']))


def _cli(*args):
  env = {k: v for k, v in os.environ.items() if k not in distributed.ENV}
  env.update(XLA_FLAGS='--xla_force_host_platform_device_count=8', JAX_PLATFORMS='cpu')
  return subprocess.run([sys.executable, '-m', 'rwjax.train', *args], env=env,
                        capture_output=True, text=True, timeout=300)


def test_file_source_trains_on_a_saved_movie_and_refused_runs_keep_the_workdir(tmp_path):
  np.save(tmp_path / 'movie.npy', _disk_movie())
  np.save(tmp_path / 'labels.npy', np.zeros((2, 23), np.int32))
  c = _tiny({'data.source': 'file', 'data.movie': str(tmp_path / 'movie.npy')}, steps=2,
            log_every=1)
  trainer.train(c, str(tmp_path / 'w'))
  rows = metrics_lib.read_metrics(str(tmp_path / 'w'))
  assert [r['step'] for r in rows] == [1, 2] and all(r['n_anchors'] > 0 for r in rows)
  # The movie is not checkpointed; resuming rebuilds it from the file.
  assert int(trainer.train(_tiny(base=c, steps=3), str(tmp_path / 'w')).step) == 3
  _refused_keeping_workdir(tmp_path / 'w', [
      (_tiny({'data.frame_separation': 24}, c), 'larger than the movie'),
      (_tiny({'data.labels': str(tmp_path / 'labels.npy')}, c), 'one label per frame')])


def _wave_config(tmp_path, movie):
  """The paper's protocol on a movie: whole-wave batches, its loss, epochs, validation."""
  np.save(tmp_path / 'movie.npy', movie)
  return _tiny({'data.source': 'file', 'data.movie': str(tmp_path / 'movie.npy'),
                'data.batching': 'waves', 'data.wave_batch_frames': 10,
                'data.val_fraction': 0.34, 'loss.denominator': 'negatives'},
               epochs=2, log_every=1)


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


def test_paper_normalisation_and_head_through_the_trainer(tmp_path):
  movie = _disk_movie(noise=0.1)  # 2 retinas x 24 frames, two 8-frame waves each
  c = _wave_config(tmp_path, movie)
  c.data.update(val_fraction=0.0, min_wave_size=50, movie_norm='paper')
  c.model.projector_bias_last = False
  c.train.epochs = 1
  state = trainer.train(c, str(tmp_path / 'w'))
  assert 'bias' not in state.params['projector']['out']
  want = frames_lib.to_network_input(jnp.asarray(movie), 16, 1, 'paper')[..., 0]
  # The source (with its whole-wave plan) holds the movie's frames, replicated on every device
  # (too few separate waves to shard), in the paper's transform.
  held = np.asarray(state.source[0].movie)[:2]
  np.testing.assert_allclose(held, want, atol=1e-5)
  assert held.min() == 0.0 and held.max() == pytest.approx(1.0)


@pytest.mark.parametrize('starts, override, message', [
    ((), {}, 'has no wave'),  # a flat movie
    ((2, 13, 24), {'wave_batch_frames': 7}, 'wave of 8 frames is longer than the batch budget'),
    ((2, 13, 24), {'val_fraction': 0.9}, 'the validation split leaves 1 training wave'),
])
def test_bad_wave_movies_are_refused_before_anything_is_written(tmp_path, starts, override,
                                                                 message):
  c = _wave_config(tmp_path, _disk_movie(36, starts))
  c.data.update(override)
  w = tmp_path / 'w'
  w.mkdir()
  (w / 'config.json').write_text('{"kept": true}')
  with pytest.raises(InputError, match=message):
    trainer.train(c, str(w))
  assert (w / 'config.json').read_text() == '{"kept": true}'
  assert sorted(os.listdir(w)) == ['config.json']


def _trains_on_network_input(state, rows):
  assert all(np.isfinite(r['loss']) and r['n_anchors'] > 0 for r in rows)
  # The buffer holds network input in [0, 1] with some activity (Godfrey: calcium frames).
  buffer = np.asarray(state.source.buffer)
  assert buffer.min() >= 0.0 and buffer.max() <= 1.0 and buffer.max() > 0.0


def test_the_simulator_and_its_parameters_come_from_the_config(tmp_path):
  # From rest the first Godfrey waves sweep the lattice at 2-6 s: calibrate over them and
  # fill the buffer inside them.
  c = _tiny({'data.simulator': 'godfrey', 'data.warmup_s': 0.0, 'data.calibration_s': 4.0,
             'data.buffer_frames': 8}, steps=2, log_every=1, checkpoint_every=2)
  state = trainer.train(c, str(tmp_path / 'godfrey'))
  assert int(state.step) == 2
  rows = metrics_lib.read_metrics(str(tmp_path / 'godfrey'))
  assert len(rows) == 2
  _trains_on_network_input(state, rows)
  # No Lansdell cell is ever driven: no waves.
  quiet = trainer.train(_tiny({'data.sim_params.lansdell.spont_prob': 0.0}, steps=0),
                        str(tmp_path / 'quiet'))
  assert (np.asarray(quiet.source.labels) == -1).all()
  assert np.asarray(quiet.source.sim.v).max() < -60.0


@pytest.mark.parametrize('overrides, message', [
    (['--config.train.foo=1'], 'error: --config.train.foo is not a key of the config'),
    (['--config.train.steps=abc'], 'error: flag --config.train.steps=abc'),
    # The binary hands the trainer rwjax.eval.monitor's hook when monitor_every > 0: its
    # settings are checked before anything is written.
    (['--config.train.monitor_every=2', '--config.monitor.source=imagenet'],
     "error: config.monitor.source='imagenet' is unknown"),
    (['--config.multihost=True'], 'error: config.multihost=True but no cluster was found'),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, overrides, message):
  p = _cli(f'--config={TINY}', f'--workdir={tmp_path / "w"}', *overrides)
  assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
  assert p.stderr.startswith(message)
  assert not os.path.exists(tmp_path / 'w')


def test_cli_resumes_a_workdir_damaged_by_a_crash(tmp_path):
  # A workdir as a full disk or a killed copy leaves it: the latest checkpoint's data files
  # truncated, and metrics.jsonl ending inside a record.
  w = tmp_path / 'w'
  trainer.train(_tiny(steps=2, checkpoint_every=1, log_every=1), str(w))
  for d, _, files in os.walk(w / 'checkpoints' / '2'):
    for f in files if os.path.basename(d) == 'd' else ():
      os.truncate(os.path.join(d, f), os.path.getsize(os.path.join(d, f)) // 2)
  with open(w / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 3, "lo')
  p = _cli(f'--config={TINY}', f'--workdir={w}', '--config.train.checkpoint_every=1',
           '--config.train.log_every=1', '--config.train.steps=3')
  assert p.returncode == 0, p.stderr
  assert 'Traceback' not in p.stderr and 'resuming from step 1' in p.stdout, p.stderr
  warnings = [l for l in p.stderr.splitlines() if l.startswith('warning: ')]
  assert len(warnings) == 2, warnings
  assert warnings[0].startswith(f'warning: checkpoint 2 in {w}/checkpoints cannot be read '
                                '(OUT_OF_RANGE')
  assert warnings[0].endswith(f'moved to {w}/checkpoints_damaged/2, resuming from step 1')
  assert warnings[1].startswith(f'warning: {w}/metrics.jsonl ended in a partial record')
  assert checkpoint.latest_step(str(w)) == 3 and os.listdir(w / 'checkpoints_damaged') == ['2']
  # Step 2 logged by both runs (the second re-ran it from step 1), the partial one kept aside.
  assert [r['step'] for r in metrics_lib.read_metrics(str(w))] == [1, 2, 2, 3]
  assert (w / 'metrics.jsonl.torn').read_text() == '{"step": 3, "lo\n'


def test_hooks_measure_every_monitor_every_steps_of_a_run_with_controls_and_sim_groups(tmp_path):
  calls = []
  params = lambda v: jax.tree.map(np.asarray, v['params'])

  def hook(model, init_variables):
    assert model.width == 4  # the SimCLRModel of the config
    calls.append(('start', params(init_variables)))

    def measure(step, variables):
      calls.append((step, params(variables)))
      return {'hook/step': step}

    return measure

  controls = {'data.sim_groups': 2, 'data.shuffle': 'spatiotemporal',
              'data.augment.translate': 2, 'data.augment.flip': True,
              'data.augment.noise_std': 0.05}
  c = _tiny(controls, steps=0)
  init = params_of(trainer.train(c, str(tmp_path / 'init'), hooks=(hook,)))
  assert calls == []  # nothing to measure: the hooks are not started
  c = _tiny(base=c, steps=2, log_every=1, monitor_every=2, checkpoint_every=2)
  state = trainer.train(c, str(tmp_path / 'w'), hooks=(hook,))
  at_2 = params_of(state)
  rows = metrics_lib.read_metrics(str(tmp_path / 'w'))
  assert [r['step'] for r in rows] == [1, 2]
  _trains_on_network_input(state, rows)
  at_4 = params_of(trainer.train(_tiny(base=c, steps=4), str(tmp_path / 'w'), hooks=(hook,)))

  assert [k for k, _ in calls] == ['start', 2, 'start', 4]
  for (_, got), want in zip(calls, (init, at_2, init, at_4)):
    jax.tree.map(np.testing.assert_array_equal, got, want)
  rows = metrics_lib.read_metrics(str(tmp_path / 'w'))
  measured = [r for r in rows if 'hook/step' in r]
  assert [(r['step'], r['hook/step']) for r in measured] == [(2, 2.0), (4, 4.0)]
  assert all(r['monitor/seconds'] >= 0 for r in measured)
  assert not any('hook/step' in r for r in rows if r['step'] in (1, 3))
