"""Checkpoints of a pre-training run (orbax CheckpointManager) and its config, for the trainer,
the evaluator and the experiment.

Layout of a workdir:
  DIR/config.json        the pre-training config (what the evaluator rebuilds the model from)
  DIR/checkpoints/<step> the training state: step, params, batch_stats, opt_state, rng and
                         the data source's state (simulator fields, frame buffer, ...)
  DIR/checkpoints_damaged/<step>
                         a checkpoint found unreadable on resuming, set aside, never deleted

A run whose workdir holds a checkpoint resumes from the newest one that can be read; a
config that would give a differently shaped state is refused before anything is written.
DIR may be local or a bucket (gs://...): files go through rwjax.paths, checkpoints
through orbax (tensorstore's gcs driver on gs://), from every process.
"""

import json
import logging
import os
import re
import sys

import flax.serialization
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from rwjax import paths
from rwjax import schema as S
from rwjax.errors import InputError

CONFIG_FILE = 'config.json'
CHECKPOINT_DIR = 'checkpoints'
DAMAGED_DIR = 'checkpoints_damaged'
ITEM = 'default'  # the one item of a step's directory (orbax's name for a single item)

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
  saved = S.leaves(d)
  for dotted, value in ADDED_KEYS.items():
    if dotted not in saved:
      S.put(d, dotted, value)
  return d


def check_workdir(workdir: str) -> None:
  """Creates `workdir` if needed; InputError if it cannot be written (rwjax.paths)."""
  paths.check_writable(workdir)


def _record(config: ml_collections.ConfigDict, n_devices: int) -> dict:
  return {**json.loads(config.to_json()), 'n_devices': n_devices}


def check_config(workdir: str, config: ml_collections.ConfigDict, n_devices: int) -> None:
  """InputError if the config is incompatible with the workdir's checkpoint (if any).

  Every process checks: it may open a checkpoint manager, a barrier in multi-process runs.
  """
  path = paths.join(workdir, CONFIG_FILE)
  if paths.exists(path) and latest_step(workdir) is not None:
    old = S.leaves(with_added_keys(paths.read_json(path)))
    now = S.leaves(_record(config, n_devices))
    diff = [k for k in STRUCTURAL_KEYS if old.get(k) != now.get(k)]
    if diff:
      changes = ', '.join(f'{k}: {old.get(k)!r} -> {now.get(k)!r}' for k in diff)
      raise InputError(
          f'workdir {workdir!r} holds a checkpoint from an incompatible config ({changes}); '
          'use a new --workdir, or the config the checkpoint was made with')


def write_config(workdir: str, config: ml_collections.ConfigDict, n_devices: int) -> None:
  """Saves the config (one process of a multi-process run: they share the workdir)."""
  paths.write_json(paths.join(workdir, CONFIG_FILE), _record(config, n_devices),
                   sort_keys=True)


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
  """In a single process, turns off orbax's replica-parallel save of jax.Arrays, which only
  slows the first save there (docs/cloud.md, 'Multi-process runs')."""
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
  with _Quiet():  # a damaged step is restore's to report
    return ocp.CheckpointManager(paths.join(paths.abspath(workdir), CHECKPOINT_DIR),
                                 options=options)


def latest_step(workdir: str) -> int | None:
  path = paths.join(paths.abspath(workdir), CHECKPOINT_DIR)
  if not paths.isdir(path):
    return None
  with _Quiet(), ocp.CheckpointManager(path) as m:
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


_STATUS = re.compile(r'[A-Z][A-Z_]+: ')  # tensorstore's messages begin with a status code


def _reason(e: BaseException) -> str:
  """The first line of an error, without tensorstore's spec (hundreds of characters); the
  first message with a status code ('OUT_OF_RANGE: ...') among the errors it was raised
  from, when orbax wraps one in a generic message."""
  chain, seen = [], e
  while seen is not None and len(chain) < 8:
    chain.append(seen)
    seen = seen.__cause__ or seen.__context__

  def line(x):
    text = str(x).splitlines()[0] if str(x).strip() else ''
    text = text.split(' [tensorstore_spec')[0].strip()
    text = re.sub(r'Error opening "\w+" driver: ', '', text)  # tensorstore's driver stack
    # The checkpoint's own path (named by the caller), local or gs://.
    text = re.sub(r' in OCDBT database at (?:local file "[^"]*"|\S+/(?=:))', '', text)
    return text[:400] or type(x).__name__

  return next((line(x) for x in chain if _STATUS.match(line(x))), line(e))


# tensorstore's status codes (and the Python errors) of a storage that did not answer, as
# opposed to files that are not there or not whole: the checkpoint may be fine.
_STORAGE_CODES = ('PERMISSION_DENIED', 'UNAUTHENTICATED', 'UNAVAILABLE', 'DEADLINE_EXCEEDED',
                  'RESOURCE_EXHAUSTED', 'ABORTED', 'CANCELLED')


def _check_storage(directory: str, step: int, e: BaseException) -> None:
  """InputError when `e`, raised reading checkpoint `step`, says the storage did not answer."""
  if (isinstance(e, (PermissionError, ConnectionError, TimeoutError))
      or _reason(e).startswith(_STORAGE_CODES)):
    raise InputError(f'cannot read checkpoint {step} in {directory} ({_reason(e)}); check '
                     'the storage (permissions, network) and rerun: nothing was changed') from None


def _not_an_abandoned_read(record: logging.LogRecord) -> bool:
  text = record.getMessage()
  return not ('exception was never retrieved' in text
              and ('orbax' in text or 'tensorstore' in text))


def _drop_abandoned_reads() -> None:
  """Hides, process-wide from the first read, the tracebacks of orbax's reads left in flight
  by a failed read (the caller reports the failure in one line): each ends on a closed event
  loop, and asyncio later logs 'Task exception was never retrieved'. Nothing else is hidden.
  """
  asyncio_logger = logging.getLogger('asyncio')
  if _not_an_abandoned_read not in asyncio_logger.filters:
    asyncio_logger.addFilter(_not_an_abandoned_read)
  previous = sys.unraisablehook
  if getattr(previous, 'drops_abandoned_reads', False):
    return

  def hook(unraisable):
    if not (isinstance(unraisable.exc_value, RuntimeError)
            and str(unraisable.exc_value) == 'Event loop is closed'):
      previous(unraisable)

  hook.drops_abandoned_reads = True
  sys.unraisablehook = hook


class _Quiet:
  """Around a read of a checkpoint: orbax's own warnings about what it could not find
  (absl, WARNING and below) are not shown, and neither are its abandoned reads."""

  def __enter__(self):
    _drop_abandoned_reads()
    self._absl = logging.getLogger('absl')
    self._level = self._absl.level
    self._absl.setLevel(logging.ERROR)

  def __exit__(self, *exc):
    self._absl.setLevel(self._level)


def unreadable(directory: str, step: int) -> str | None:
  """Why checkpoint `step` in `directory` (a workdir's checkpoints/) cannot be read whatever
  it is read into (damaged files, an empty step directory), or None when every array it holds
  reads back (as numpy, on the host). InputError when the storage does not answer.
  """
  step_dir = paths.join(directory, str(step))
  if not paths.is_remote(step_dir) and os.path.isdir(step_dir) and not os.listdir(step_dir):
    return 'its directory is empty'
  item = paths.join(step_dir, ITEM)
  if not paths.exists(item):
    return f'it holds no saved state: {ITEM}/ is missing'
  try:
    with _Quiet():
      checkpointer = ocp.PyTreeCheckpointer()
      meta = checkpointer.metadata(item)
      tree = getattr(meta, 'item_metadata', meta)
      tree = getattr(tree, 'tree', tree)
      if not tree:  # orbax logs why and returns nothing
        missing = [f for f in ('_METADATA', 'manifest.ocdbt')
                   if not paths.exists(paths.join(item, f))]
        return (f"the metadata of its arrays cannot be read ({', '.join(missing)} missing)"
                if missing else 'the metadata of its arrays cannot be read')
      numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
      checkpointer.restore(item, args=ocp.args.PyTreeRestore(restore_args=numpy))
  except Exception as e:  # pylint: disable=broad-except  # tensorstore, json, orbax, OSError
    _check_storage(directory, step, e)
    return _reason(e)
  return None


def _damage(directory: str, step: int, e: BaseException) -> str | None:
  """What is wrong with checkpoint `step`, whose read raised `e`: tensorstore's account or
  `unreadable`'s; None when every array it holds reads (`e` is not damage). InputError when
  the storage does not answer."""
  _check_storage(directory, step, e)
  reason, said = unreadable(directory, step), _reason(e)
  return reason and (said if _STATUS.match(said) else reason)


def restore(mngr: ocp.CheckpointManager, target):
  """Restores the newest readable checkpoint into the structure and shardings of `target`.

  Returns the restored pytree, or None when there is no checkpoint. A checkpoint that cannot
  be read (`unreadable`) is moved to DIR/checkpoints_damaged/<step> (by process 0), with one
  line on stderr naming it and what is wrong, and the one before it is restored instead.
  InputError (nothing moved) when none can be read, when the storage does not answer, or
  when a readable checkpoint does not match `target` (another config).
  """
  directory = str(mngr.directory)
  steps = sorted(mngr.all_steps(), reverse=True)
  if not steps:
    return None
  abstract = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding),
      flax.serialization.to_state_dict(target))
  damaged = []
  for step in steps:
    try:
      with _Quiet():  # not mngr.restore: a damaged step would lock mngr into its layout
        saved = ocp.Checkpointer(ocp.StandardCheckpointHandler()).restore(
            paths.join(directory, str(step), ITEM), args=ocp.args.StandardRestore(abstract))
    except Exception as e:  # pylint: disable=broad-except  # classified below
      reason = _damage(directory, step, e)
      if reason is None:  # every array reads: the state does not fit them
        if isinstance(e, (ValueError, KeyError, TypeError)):
          raise InputError(f'checkpoint {step} in {directory} does not match this config '
                           f'({_reason(e)[:200]}); use a new --workdir') from None
        raise
      damaged.append((step, reason))
      continue
    if damaged:
      _set_aside(mngr, damaged, step)
    return flax.serialization.from_state_dict(target, saved)
  listed = '; '.join(f'step {s} ({r})' for s, r in damaged)
  raise InputError(
      f'no checkpoint in {directory} can be read: {listed}. Nothing was changed; to start '
      f'afresh, move {directory} aside (or use a new --workdir)')


def _set_aside(mngr: ocp.CheckpointManager, damaged: list, resumed: int) -> None:
  """Process 0 moves the damaged checkpoints to the workdir's DAMAGED_DIR/<step> (or
  <step>.N when an earlier one of that step is there already) and says so; every process
  then forgets them, so that their steps can be saved again."""
  directory = str(mngr.directory)
  aside = paths.join(os.path.dirname(directory.rstrip('/')), DAMAGED_DIR)
  if jax.process_index() == 0:
    for step, reason in damaged:
      dst, n = paths.join(aside, str(step)), 1
      while paths.exists(dst):
        dst, n = paths.join(aside, f'{step}.{n}'), n + 1
      paths.move(paths.join(directory, str(step)), dst)
      print(f'warning: checkpoint {step} in {directory} cannot be read ({reason}); moved to '
            f'{dst}, resuming from step {resumed}', file=sys.stderr, flush=True)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices('rwjax.checkpoint: damaged checkpoints set aside')
  mngr.reload()


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
  with _Quiet(), ocp.CheckpointManager(path) as m:
    try:
      variables = m.restore(step, args=ocp.args.PyTreeRestore(
          item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
          partial_restore=True))
    except Exception as e:  # pylint: disable=broad-except  # tensorstore, json, orbax, OSError
      _check_storage(path, step, e)
      # tensorstore's own account when it gave one; else every array is read to find out
      said = _reason(e)
      reason = said if _STATUS.match(said) else (unreadable(path, step) or said)
      raise InputError(
          f'checkpoint {step} in {path} cannot be read ({reason}); '
          f'resuming the pre-training (python -m rwjax.train --config=... --workdir={workdir}) '
          'sets it aside and continues from the newest readable checkpoint') from None
  return config, variables
