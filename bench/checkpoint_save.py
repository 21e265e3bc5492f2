"""The first checkpoint save in one process, orbax's replica-parallel save on and off.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python bench/checkpoint_save.py

Saves configs/pretrain_smoke.py's replicated parameters and Adam state (checkpoint.save +
wait) once per mode, each in a fresh interpreter so that neither reuses the other's compiled
programs. 'one_writer' is what rwjax.checkpoint does in a single process. Prints one JSON object.
"""

import json
import subprocess
import sys

_RUN = '''
import sys, tempfile, time
import jax, numpy as np, optax
from rwjax import checkpoint, defaults, models
if sys.argv[1] == 'replica_parallel':
  checkpoint._one_writer_saves = lambda: None  # leave orbax's default in place
c = defaults.config_file('pretrain_smoke')
v = models.init_variables(models.create_model(**c.model), jax.random.PRNGKey(0), c.data.input_size)
state = {'params': v['params'], 'batch_stats': v['batch_stats'],
         'opt': optax.adam(1e-3).init(v['params']), 'step': np.int32(0)}
mesh = jax.sharding.Mesh(np.array(jax.devices()), ('data',))
state = jax.device_put(state, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
mngr = checkpoint.manager(tempfile.mkdtemp())
t = time.perf_counter()
checkpoint.save(mngr, 1, state)
checkpoint.wait(mngr)
print(round(time.perf_counter() - t, 2), jax.device_count())
'''


def main():
  out = {}
  for mode in ('replica_parallel', 'one_writer'):
    seconds, devices = subprocess.run([sys.executable, '-c', _RUN, mode], check=True,
                                      capture_output=True, text=True).stdout.split()[-2:]
    out[f'{mode}_s'], out['devices'] = float(seconds), int(devices)
  print(json.dumps(out))


if __name__ == '__main__':
  main()
