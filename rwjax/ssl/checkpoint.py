"""Checkpoints of a pre-training run (orbax CheckpointManager) and its config.

Layout of a workdir:
  DIR/config.json        the pre-training config (what the evaluator rebuilds the model from)
  DIR/checkpoints/<step> the training state: step, params, batch_stats, opt_state, rng and
                         the data source's state (simulator fields, frame buffer, ...)

A run whose workdir holds a checkpoint resumes from the latest one; a config that
would give a differently shaped state is refused before anything is written.
DIR may be local or a bucket (gs://...): files go through rwjax.paths, checkpoints
through orbax (tensorstore's gcs driver on gs://), from every process.
"""

import json
import os
import tempfile

import flax.serialization
import jax
import ml_collections
import orbax.checkpoint as ocp

from rwjax import paths
from rwjax.errors import InputError

CONFIG_FILE = 'config.json'
CHECKPOINT_DIR = 'checkpoints'

# Config values that fix the shapes of the saved state: changing any of them
# makes an existing checkpoint unusable.
STRUCTURAL_KEYS = (
    'model.stem', 'model.width', 'model.channels', 'model.projector',
    'model.projector_bias_last', 'data.source', 'data.simulator', 'data.sim_size',
    'data.input_size', 'data.retinas_per_device', 'data.buffer_frames', 'data.movie_norm',
    'optim.name', 'n_devices',
)


# Keys added to the config after runs were saved, with the value that reproduces those runs:
# a saved config.json without one of them is read as if it held this value.
ADDED_KEYS = {'model.projector_bias_last': True, 'data.movie_norm': 'per_retina'}


def with_added_keys(d: dict) -> dict:
  """A saved config dict with every ADDED_KEYS key it lacks set to that key's old value."""
  for dotted, value in ADDED_KEYS.items():
    *parents, last = dotted.split('.')
    node = d
    for part in parents:
      node = node.setdefault(part, {})
    node.setdefault(last, value)
  return d


def _get(d: dict, dotted: str):
  for part in dotted.split('.'):
    if not isinstance(d, dict) or part not in d:
      return None
    d = d[part]
  return list(d) if isinstance(d, (list, tuple)) else d


def check_workdir(workdir: str) -> None:
  """Creates `workdir` if needed; InputError if it cannot be written."""
  if paths.is_remote(workdir):  # a missing bucket, no permission: one message each
    paths.check_writable(workdir)
    return
  try:
    os.makedirs(workdir, exist_ok=True)
    # A private probe file: the processes of a multi-host run check at once.
    with tempfile.NamedTemporaryFile(dir=workdir, prefix='.write_test'):
      pass
  except OSError as e:
    raise InputError(f'workdir {workdir!r} is not writable ({e.strerror}); '
                     'pass a --workdir you can write to') from None


def write_config(workdir: str, config: ml_collections.ConfigDict, n_devices: int,
                 write: bool = True) -> None:
  """Saves the config; refuses one that is incompatible with the workdir's checkpoint.

  Every process checks; only one (write=True) writes, as they share the workdir.
  """
  new = json.loads(config.to_json())
  new['n_devices'] = n_devices
  path = paths.join(workdir, CONFIG_FILE)
  if paths.exists(path) and latest_step(workdir) is not None:
    old = with_added_keys(paths.read_json(path))
    diff = [k for k in STRUCTURAL_KEYS if _get(old, k) != _get(new, k)]
    if diff:
      changes = ', '.join(f'{k}: {_get(old, k)!r} -> {_get(new, k)!r}' for k in diff)
      raise InputError(
          f'workdir {workdir!r} holds a checkpoint from an incompatible config ({changes}); '
          'use a new --workdir, or the config the checkpoint was made with')
  if not write:
    return
  paths.write_json(path, new, sort_keys=True)


def read_config(workdir: str) -> ml_collections.ConfigDict:
  path = paths.join(workdir, CONFIG_FILE)
  try:
    found = paths.exists(path)
    d = paths.read_json(path) if found else None
  except OSError as e:  # e.g. no permission to read the bucket
    raise paths.storage_error(path, e, what='read') from None
  if not found:
    raise InputError(f'{path} does not exist: {workdir!r} is not a pre-training workdir; '
                     'run `python -m rwjax.train --config=... --workdir=DIR` first')
  d.pop('n_devices', None)
  return ml_collections.ConfigDict(with_added_keys(d))


def _one_writer_saves() -> None:
  """In a single process, orbax's replica-parallel save of jax.Arrays is turned off.

  Replica-parallel (orbax's default off GPUs) splits each replicated array into one slice
  per replica so that the hosts share the writing; in one process the same process writes
  every slice, and each slice is an eager jax op compiled per shape and offset (on 8 CPU
  devices the first save of the tiny model took 6.7 s, 0.5 s without). Multi-process runs
  keep orbax's default. The handler's other settings (its array metadata store) are kept.
  """
  if jax.process_count() > 1:
    return
  default = ocp.type_handlers.get_type_handler(jax.Array)
  if getattr(default, '_use_replica_parallel', True) is False:
    return  # already done (or orbax's own default here)
  ocp.type_handlers.register_type_handler(jax.Array, ocp.type_handlers.ArrayHandler(
      use_replica_parallel=False,
      array_metadata_store=getattr(default, '_array_metadata_store', None)), override=True)


def manager(workdir: str, keep: int = 3) -> ocp.CheckpointManager:
  """Asynchronous CheckpointManager keeping the last `keep` checkpoints."""
  _one_writer_saves()
  options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, create=True, enable_async_checkpointing=True)
  return ocp.CheckpointManager(paths.join(paths.abspath(workdir), CHECKPOINT_DIR),
                               options=options)


def latest_step(workdir: str) -> int | None:
  path = paths.join(paths.abspath(workdir), CHECKPOINT_DIR)
  if not paths.isdir(path):
    return None
  with ocp.CheckpointManager(path) as m:
    return m.latest_step()


class SaveError(Exception):
  """A checkpoint could not be written, after the storage client's own retries."""


def _save_error(mngr: ocp.CheckpointManager, e: Exception) -> SaveError:
  directory = str(mngr.directory)
  try:  # a fresh look: only finalized (committed) checkpoints count
    with ocp.CheckpointManager(directory) as m:
      last = m.latest_step()
  except Exception:  # pylint: disable=broad-except
    last = None
  kept = (f'the last good checkpoint (step {last}) is kept' if last is not None
          else 'no checkpoint was written')
  reason = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
  return SaveError(f'saving a checkpoint to {directory} failed ({reason}); {kept}. Check the '
                   'storage (permissions, quota, network) and rerun the same command to '
                   'resume from it')


def save(mngr: ocp.CheckpointManager, step: int, state) -> None:
  """Starts an asynchronous save of a pytree (dataclasses/NamedTuples become dicts).

  SaveError if it, or the previous asynchronous save, failed (transient storage errors
  are retried by tensorstore and gcsfs before that).
  """
  try:
    mngr.save(step, args=ocp.args.StandardSave(flax.serialization.to_state_dict(state)))
  except Exception as e:  # pylint: disable=broad-except
    raise _save_error(mngr, e) from e


def wait(mngr: ocp.CheckpointManager) -> None:
  """Waits for the asynchronous saves; SaveError if one failed."""
  try:
    mngr.wait_until_finished()
  except Exception as e:  # pylint: disable=broad-except
    raise _save_error(mngr, e) from e


def restore(mngr: ocp.CheckpointManager, target):
  """Restores the latest checkpoint into the structure and shardings of `target`.

  Returns the restored pytree, or None when there is no checkpoint.
  """
  step = mngr.latest_step()
  if step is None:
    return None
  abstract = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding),
      flax.serialization.to_state_dict(target))
  try:
    saved = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
  except (ValueError, KeyError, TypeError) as e:
    raise InputError(f'checkpoint {step} in {mngr.directory} does not match this config '
                     f'({str(e).splitlines()[0][:200]}); use a new --workdir') from None
  return flax.serialization.from_state_dict(target, saved)


def load_for_eval(workdir: str):
  """(config, variables) of the latest checkpoint in a pre-training workdir.

  variables = {'params', 'batch_stats'} of the SimCLRModel, on the default device.
  """
  from rwjax import models  # local: keeps this module light for the evaluator's imports

  config = read_config(workdir)
  step = latest_step(workdir)
  if step is None:
    raise InputError(f'{workdir!r} has no checkpoint; run the trainer (with '
                     '--config.train.steps=0 for the random-init baseline)')
  model = models.create_model(**config.model)
  shapes = jax.eval_shape(
      lambda: models.init_variables(model, jax.random.PRNGKey(0), config.data.input_size))
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
                        dict(shapes))
  path = paths.join(paths.abspath(workdir), CHECKPOINT_DIR)
  with ocp.CheckpointManager(path) as m:
    variables = m.restore(step, args=ocp.args.PyTreeRestore(
        item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
        partial_restore=True))
  return config, variables
