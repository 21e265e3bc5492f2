"""Joining a multi-process JAX run: TPU VM pods, multi-node GPU, a local test cluster.

Binaries call `initialize()` when `config.multihost` is set. The cluster's shape
comes from the environment, so every process runs the same command line:

- TPU VMs, SLURM, Open MPI and Kubernetes are detected by JAX itself;
- anywhere else (and `launch/local.py`): JAX_COORDINATOR_ADDRESS=host:port,
  JAX_NUM_PROCESSES=N and JAX_PROCESS_ID=i (0 <= i < N) in every process.

After it, `jax.devices()` lists the devices of all processes and one `('data',)`
mesh over them spans the whole job.
"""

import os
from typing import Mapping

import jax

from rwjax.errors import InputError

ENV = ('JAX_COORDINATOR_ADDRESS', 'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID')


def cluster_from_env(environ: Mapping[str, str]) -> dict:
  """Keyword arguments of jax.distributed.initialize from the ENV variables.

  {} when none is set (JAX then detects the cluster); InputError when only some
  are set or a value is malformed.
  """
  given = {k: environ[k] for k in ENV if environ.get(k)}
  if not given:
    return {}
  missing = [k for k in ENV if k not in given]
  if missing:
    raise InputError(f'multi-process run: {", ".join(given)} set but {", ".join(missing)} '
                     'not; set all of ' + ', '.join(ENV) + ' (or none, on a cluster JAX '
                     'detects: TPU VM, SLURM, Open MPI)')
  address = given['JAX_COORDINATOR_ADDRESS']
  host, _, port = address.rpartition(':')
  try:
    n, i = int(given['JAX_NUM_PROCESSES']), int(given['JAX_PROCESS_ID'])
    ok = bool(host) and 0 < int(port) < 65536 and n > 0 and 0 <= i < n
  except ValueError:
    ok = False
  if not ok:
    raise InputError(
        'multi-process run: bad cluster variables ' +
        ', '.join(f'{k}={given[k]!r}' for k in ENV) +
        '; need JAX_COORDINATOR_ADDRESS=host:port, JAX_NUM_PROCESSES=N > 0 and '
        'JAX_PROCESS_ID in 0..N-1')
  return dict(coordinator_address=address, num_processes=n, process_id=i)


def initialize() -> None:
  """jax.distributed.initialize() with the cluster from the environment (see above).

  Idempotent: a second call (the trainer then the evaluator in one program) is a no-op.
  """
  if jax.distributed.is_initialized():
    return
  kwargs = cluster_from_env(os.environ)
  try:
    jax.distributed.initialize(**kwargs)
  except (ValueError, RuntimeError) as e:
    if kwargs:
      raise
    raise InputError(f'config.multihost=True but no cluster was found ({e}); on a machine '
                     'JAX does not detect, set ' + ', '.join(ENV) + ' in every process '
                     '(launch/local.py does this)') from None
