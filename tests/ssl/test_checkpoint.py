"""Checkpoints of a sharded state in one process (rwjax.ssl.checkpoint)."""

import json

import jax
import numpy as np
import pytest

from rwjax import defaults
from rwjax.errors import InputError
from rwjax.ssl import checkpoint


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


def _old_workdir(tmp_path):
  """A workdir saved before model.projector_bias_last and data.movie_norm existed: its
  config.json lacks both keys, and it holds a checkpoint."""
  d = json.loads(defaults.pretrain_config().to_json())
  del d['model']['projector_bias_last'], d['data']['movie_norm']
  d['n_devices'] = 1
  (tmp_path / checkpoint.CONFIG_FILE).write_text(json.dumps(d))
  mngr = checkpoint.manager(str(tmp_path))
  checkpoint.save(mngr, 0, {'w': np.zeros(3, np.float32)})
  checkpoint.wait(mngr)
  return str(tmp_path)


def test_config_saved_before_the_new_keys_reads_as_the_old_behaviour(tmp_path):
  workdir = _old_workdir(tmp_path)
  config = checkpoint.read_config(workdir)
  assert config.model.projector_bias_last is True  # the head those runs were trained with
  assert config.data.movie_norm == 'per_retina'
  # Resuming it with today's defaults is the same structure; the paper's head is not.
  checkpoint.write_config(workdir, defaults.pretrain_config(), 1, write=False)
  paper_head = defaults.pretrain_config()
  paper_head.model.projector_bias_last = False
  with pytest.raises(InputError, match='projector_bias_last'):
    checkpoint.write_config(workdir, paper_head, 1, write=False)
