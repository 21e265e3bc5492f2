"""Checkpoints (rwjax.checkpoint): a sharded state saved and restored in one process; damaged
checkpoints set aside when a run resumes, and one line for the evaluator."""

import json
import os
import runpy
import shutil

import jax
import numpy as np
import pytest

from rwjax import checkpoint
from rwjax import defaults
from rwjax.errors import InputError
from rwjax.ssl import trainer


def test_one_process_saves_without_compiling_and_restores_exactly(tmp_path):
  """A replicated and a sharded array over the 8 devices: saving them runs no jax program
  (orbax's replica-parallel save compiles an eager slice per array and replica, which only
  helps when several hosts share the writing), and the restore gives them back bit-exact
  with their shardings."""
  assert jax.device_count() == 8
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ('data',))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
  rng = np.random.default_rng(0)
  # Shapes no other test saves: a program traced for them here is this save's.
  values = {'w': rng.normal(size=(24, 40)).astype(np.float32),
            'b': rng.normal(size=(56,)).astype(np.float32),
            'buffer': rng.normal(size=(8, 7)).astype(np.float32)}
  tree = {k: jax.device_put(v, sharded if k == 'buffer' else replicated)
          for k, v in values.items()}
  compiled = []
  # Tracing is recorded even when the compiled program comes from a persistent cache.
  listener = lambda name, *_, **__: compiled.append(name) if '/compile/' in name else None
  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    mngr = checkpoint.manager(str(tmp_path))
    checkpoint.save(mngr, 0, tree)
    checkpoint.wait(mngr)
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
  assert compiled == []
  restored = checkpoint.restore(
      mngr, {k: jax.device_put(np.zeros_like(v), tree[k].sharding) for k, v in values.items()})
  for k, v in values.items():
    np.testing.assert_array_equal(np.asarray(restored[k]), v)
    assert restored[k].sharding == tree[k].sharding


# ---------------------------------------------------------------------------------------
# Damaged checkpoints (a full disk, a killed copy): resuming sets them aside.

TINY = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs', 'tiny_pretrain.py')


def _truncate_data(step_dir):
  """Every data file of the checkpoint cut to half its size, as a full disk leaves them."""
  for d, _, files in os.walk(step_dir):
    if os.path.basename(d) == 'd':
      for f in files:
        os.truncate(os.path.join(d, f), os.path.getsize(os.path.join(d, f)) // 2)


def _remove_manifests(step_dir):
  for d, _, files in os.walk(step_dir):
    if 'manifest.ocdbt' in files:
      os.remove(os.path.join(d, 'manifest.ocdbt'))


def _empty(step_dir):
  shutil.rmtree(step_dir)
  os.mkdir(step_dir)


DAMAGE = {'truncated data files': (_truncate_data, 'OUT_OF_RANGE'),
          'no manifest': (_remove_manifests, 'NOT_FOUND'),
          # Only orbax's step metadata left: the saved state's directory is gone.
          'no saved state': (lambda d: shutil.rmtree(os.path.join(d, checkpoint.ITEM)),
                             f'no saved state: {checkpoint.ITEM}/ is missing'),
          'empty directory': (_empty, 'its directory is empty')}


def _files(root):
  """{relative path: size} of every file under root."""
  return {os.path.relpath(os.path.join(d, f), root): os.path.getsize(os.path.join(d, f))
          for d, _, fs in os.walk(root) for f in fs}


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """(workdir with checkpoints 1 and 2 of the tiny pre-training, its final state: the target
  the trainer restores into, the parameters of checkpoint 1 restored intact)."""
  c = runpy.run_path(TINY)['get_config']()
  c.train.steps, c.train.checkpoint_every, c.train.log_every = 2, 1, 1
  workdir = str(tmp_path_factory.mktemp('trained') / 'w')
  state = trainer.train(c, workdir)
  assert checkpoint.latest_step(workdir) == 2
  # Checkpoint 1 as a run finds it without checkpoint 2.
  before = shutil.copytree(workdir, str(tmp_path_factory.mktemp('before') / 'w'))
  shutil.rmtree(os.path.join(before, 'checkpoints', '2'))
  return workdir, state, _params(_restore(before, state)[1])


def _restore(workdir, target):
  mngr = checkpoint.manager(workdir)
  return mngr, checkpoint.restore(mngr, target)


def _params(state):
  return jax.tree.map(np.asarray, state.params)


@pytest.mark.parametrize('damage', list(DAMAGE))
def test_a_damaged_latest_checkpoint_is_set_aside_and_the_one_before_restored(
    trained, tmp_path, capfd, damage):
  workdir, target, want = trained
  w = shutil.copytree(workdir, str(tmp_path / 'w'))
  damage_fn, reason = DAMAGE[damage]
  damage_fn(os.path.join(w, 'checkpoints', '2'))
  damaged_files, files = _files(os.path.join(w, 'checkpoints', '2')), _files(w)
  capfd.readouterr()
  with pytest.raises(InputError) as e:
    checkpoint.load_for_eval(w)
  message = str(e.value)
  assert '\n' not in message and capfd.readouterr().err == '' and _files(w) == files
  assert message.startswith(f'checkpoint 2 in {w}/checkpoints cannot be read (')
  assert reason in message and f'--workdir={w})' in message

  mngr, restored = _restore(w, target)
  err = capfd.readouterr().err.strip().splitlines()
  assert int(restored.step) == 1
  jax.tree.map(np.testing.assert_array_equal, _params(restored), want)
  assert len(err) == 1, err
  assert err[0].startswith(f'warning: checkpoint 2 in {w}/checkpoints cannot be read (')
  assert reason in err[0]
  assert err[0].endswith(f'moved to {w}/checkpoints_damaged/2, resuming from step 1')
  assert sorted(os.listdir(os.path.join(w, 'checkpoints'))) == ['1']
  assert _files(os.path.join(w, 'checkpoints_damaged', '2')) == damaged_files
  checkpoint.save(mngr, 2, target)
  checkpoint.wait(mngr)
  mngr.close()
  assert checkpoint.latest_step(w) == 2
  assert checkpoint.unreadable(os.path.join(w, 'checkpoints'), 2) is None
  # The same step damaged again: kept beside the first, as 2.1.
  _empty(os.path.join(w, 'checkpoints', '2'))
  mngr, restored = _restore(w, target)
  mngr.close()
  assert int(restored.step) == 1
  assert sorted(os.listdir(os.path.join(w, 'checkpoints_damaged'))) == ['2', '2.1']
  assert 'checkpoints_damaged/2.1, resuming from step 1' in capfd.readouterr().err


def test_no_readable_checkpoint_is_one_error_and_one_without_orbaxs_metadata_is_read(
    trained, tmp_path, capfd):
  workdir, target, _ = trained
  w = shutil.copytree(workdir, str(tmp_path / 'w'))
  _truncate_data(os.path.join(w, 'checkpoints', '2'))
  _empty(os.path.join(w, 'checkpoints', '1'))
  files = _files(w)
  capfd.readouterr()
  with pytest.raises(InputError) as e:
    _restore(w, target)
  message = str(e.value)
  assert '\n' not in message
  assert message.startswith(f'no checkpoint in {w}/checkpoints can be read: step 2 (OUT_OF_RANGE')
  assert 'step 1 (its directory is empty). Nothing was changed' in message
  assert _files(w) == files
  assert capfd.readouterr().err == ''  # none of orbax's tracebacks
  # Without orbax's own metadata files its arrays are whole: the trainer reads them into the
  # config's state, which needs neither orbax's step metadata nor its tree metadata.
  w = shutil.copytree(workdir, str(tmp_path / 'no_metadata'))
  os.remove(os.path.join(w, 'checkpoints', '2', '_CHECKPOINT_METADATA'))
  os.remove(os.path.join(w, 'checkpoints', '2', checkpoint.ITEM, '_METADATA'))
  restored = _restore(w, target)[1]
  assert int(restored.step) == 2
  jax.tree.map(np.testing.assert_array_equal, _params(restored), _params(target))
  assert not os.path.exists(os.path.join(w, 'checkpoints_damaged'))


def test_config_saved_before_the_new_keys_reads_as_the_old_behaviour(tmp_path):
  # A workdir saved before model.projector_bias_last and data.movie_norm existed: its
  # config.json lacks both keys, and it holds a checkpoint.
  d = json.loads(defaults.pretrain_config().to_json())
  del d['model']['projector_bias_last'], d['data']['movie_norm']
  (tmp_path / checkpoint.CONFIG_FILE).write_text(json.dumps({**d, 'n_devices': 1}))
  workdir = str(tmp_path)
  mngr = checkpoint.manager(workdir)
  checkpoint.save(mngr, 0, {'w': np.zeros(3, np.float32)})
  checkpoint.wait(mngr)
  config = checkpoint.read_config(workdir)
  assert config.model.projector_bias_last is True  # the head those runs were trained with
  assert config.data.movie_norm == 'per_retina'
  # Resuming it with today's defaults is the same structure; the paper's head is not.
  checkpoint.check_config(workdir, defaults.pretrain_config(), 1)
  paper_head = defaults.pretrain_config()
  paper_head.model.projector_bias_last = False
  with pytest.raises(InputError, match='projector_bias_last'):
    checkpoint.check_config(workdir, paper_head, 1)
