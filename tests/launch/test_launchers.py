"""launch/tpu_vm.sh and launch/slurm.sbatch against the binaries (launch/colab.ipynb runs in
tests/launch/test_colab.py)."""

import os
import runpy
import shlex
import stat
import subprocess
import sys

from rwjax import checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCH = os.path.join(ROOT, 'launch')


def test_tpu_vm_commands(tmp_path):
  env = dict(os.environ, DRY_RUN='1', REPO='https://example.com/rwjax.git')
  p = subprocess.run([os.path.join(LAUNCH, 'tpu_vm.sh'), 'tpu1', 'us-central2-b',
                      '/mnt/shared/w 1', '--config.data.shuffle=temporal',
                      '--config.data.movie=/a b/m.npy'],
                     env=env, capture_output=True, text=True, check=True)
  setup, run = [shlex.split(line) for line in p.stdout.splitlines()]
  for argv in (setup, run):
    assert argv[:6] == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'ssh', 'tpu1']
    assert '--worker=all' in argv and '--zone=us-central2-b' in argv
  setup_cmd = setup[-1].removeprefix('--command=')
  assert 'https://example.com/rwjax.git' in setup_cmd and "'jax[tpu]'" in setup_cmd
  assert "-e '.[gcs]'" in setup_cmd  # gs:// workdirs, the documented way on pods
  # The remote shell sees every override as one word, spaces included.
  remote = shlex.split(run[-1].removeprefix('--command='))
  argv = remote[remote.index('.venv/bin/python') + 1:remote.index('>')]
  assert argv[:2] == ['-m', 'rwjax.train'], argv
  flags = dict(a[2:].split('=', 1) for a in argv[2:])
  config = runpy.run_path(os.path.join(ROOT, flags.pop('config')))['get_config']()
  for key in [k for k in flags if k.startswith('config.')]:  # only keys the config has
    node = config
    for part in key.split('.')[1:]:
      assert part in node, f'{key} is not a key of the config'
      node = node[part]
  assert flags == {'workdir': '/mnt/shared/w 1', 'config.multihost': 'True',
                   'config.data.shuffle': 'temporal', 'config.data.movie': '/a b/m.npy'}
  usage = subprocess.run([os.path.join(LAUNCH, 'tpu_vm.sh')], capture_output=True, text=True)
  assert usage.returncode == 2 and 'WORKDIR' in usage.stderr


FAKE_SRUN = '''#!/usr/bin/env python3
"""srun for one machine: the command as SLURM_NTASKS tasks, 4 CPU devices each."""
import os, subprocess, sys
argv = sys.argv[1:]
while argv[0].startswith('--'):
  argv.pop(0)
n = int(os.environ['SLURM_NTASKS'])
procs = [subprocess.Popen(argv, env=dict(
    os.environ, SLURM_PROCID=str(i), SLURM_LOCALID=str(i), SLURM_STEP_NODELIST='localhost',
    SLURM_STEP_NUM_NODES='1', JAX_PLATFORMS='cpu',
    XLA_FLAGS='--xla_force_host_platform_device_count=4')) for i in range(n)]
sys.exit(max(p.wait() for p in procs))
'''


def test_slurm_script_starts_one_run_on_two_tasks(tmp_path):
  """The batch script's command as 2 SLURM tasks (JAX finds the cluster from SLURM's
  variables) starts one run of 8 devices and saves its random-init checkpoint together (no
  training step to compile: processes training together are tests/launch/test_local.py's)."""
  srun = tmp_path / 'bin' / 'srun'
  srun.parent.mkdir()
  srun.write_text(FAKE_SRUN.replace('#!/usr/bin/env python3', '#!' + sys.executable))
  srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
  env = {k: v for k, v in os.environ.items() if not k.startswith('JAX_COORDINATOR')}
  env.update(PATH=f'{srun.parent}:{env["PATH"]}', SLURM_JOB_ID='4242', SLURM_NTASKS='2',
             CONFIG='tests/configs/tiny_pretrain.py')
  p = subprocess.run(['bash', os.path.join(LAUNCH, 'slurm.sbatch'), str(tmp_path / 'w'),
                      '--config.train.steps=0'],
                     cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert p.returncode == 0, p.stdout + p.stderr
  assert 'starting: 8 device(s)' in p.stdout
  assert checkpoint.latest_step(str(tmp_path / 'w')) == 0
