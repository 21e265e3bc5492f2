"""launch/local.py: N cooperating JAX processes on one machine, and the multi-process
training path they exercise (2 processes x 4 CPU devices against 1 x 8).

One test makes one pair of training launches (a run stopped by SIGTERM, then resumed):
each launch costs a full compilation in the second process, which never reads the
compilation cache (jax writes it from process 0 only, under keys naming each process's
devices)."""

import os
import runpy
import signal
import subprocess
import sys
import time

import jax
import numpy as np

from rwjax import checkpoint
from rwjax import metrics as metrics_lib
from rwjax.ssl import trainer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCHER = os.path.join(ROOT, 'launch', 'local.py')
TINY = os.path.join(ROOT, 'tests', 'configs', 'tiny_pretrain.py')


def _launch(*command, processes=2, **popen):
  return subprocess.Popen(
      [sys.executable, LAUNCHER, f'--processes={processes}', '--cpu_devices=4', '--', *command],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def _train_command(workdir, *overrides):
  return (sys.executable, '-m', 'rwjax.train', f'--config={TINY}', f'--workdir={workdir}',
          '--config.multihost=True', *overrides)


def test_process_env_sets_the_cluster_and_the_devices():
  process_env = runpy.run_path(LAUNCHER)['process_env']
  env = process_env({'XLA_FLAGS': '--xla_force_host_platform_device_count=8 --foo'},
                    1, 2, 1234, cpu_devices=4, gpus_per_process=0)
  assert env['JAX_COORDINATOR_ADDRESS'] == 'localhost:1234'
  assert (env['JAX_NUM_PROCESSES'], env['JAX_PROCESS_ID']) == ('2', '1')
  assert env['XLA_FLAGS'] == '--foo --xla_force_host_platform_device_count=4'
  gpu = process_env({}, 1, 2, 1234, cpu_devices=0, gpus_per_process=2)
  assert gpu['JAX_LOCAL_DEVICE_IDS'] == '2,3' and 'XLA_FLAGS' not in gpu


def test_a_failing_process_stops_the_others():
  t0 = time.time()
  p = _launch(sys.executable, '-c', 'import os, sys, time\n'
              'if os.environ["JAX_PROCESS_ID"] == "1": sys.exit(3)\n'
              'time.sleep(120)', processes=3)
  out, _ = p.communicate(timeout=60)
  assert p.returncode == 3, out
  assert time.time() - t0 < 60


def test_ctrl_c_reaches_every_process_once():
  # A terminal's Ctrl-C signals its whole foreground process group; the launcher
  # passes SIGINT on, so a process in the same group would get it twice.
  p = _launch(sys.executable, '-c', 'import signal, time\n'
              'n = []\n'
              'signal.signal(signal.SIGINT, lambda *_: n.append(1))\n'
              'print("ready", flush=True)\n'
              'time.sleep(3)\n'  # resumed after each handler (PEP 475)
              'print("sigints", len(n), flush=True)\n', start_new_session=True)
  lines = [p.stdout.readline(), p.stdout.readline()]
  assert all(line.strip().endswith('ready') for line in lines), lines
  os.killpg(p.pid, signal.SIGINT)
  out, _ = p.communicate(timeout=60)
  assert p.returncode == 0, out
  assert sorted(out.split('\n')[:2]) == ['[1] sigints 1', 'sigints 1'], out


def test_two_processes_save_on_preemption_resume_and_train_like_one(tmp_path):
  """2 processes x 4 devices, stopped by SIGTERM through the launcher and resumed for 2 more
  steps, against one process of 8 devices trained for as many steps without a stop."""
  workdir = tmp_path / 'two'
  p = _launch(*_train_command(workdir, '--config.train.steps=100000',
                              '--config.train.checkpoint_every=100000'))
  deadline = time.time() + 300
  while not metrics_lib.read_metrics(str(workdir)) and time.time() < deadline:
    time.sleep(0.5)
  p.send_signal(signal.SIGTERM)  # the launcher passes it to both processes
  first, _ = p.communicate(timeout=300)
  assert p.returncode == 0, first
  assert 'starting: 8 device(s)' in first and 'preempted: saved step' in first
  step = checkpoint.latest_step(str(workdir))
  assert step is not None and step >= 2, first
  p = _launch(*_train_command(workdir, f'--config.train.steps={step + 2}'))
  second, _ = p.communicate(timeout=300)
  assert p.returncode == 0, second
  assert f'resuming from step {step}' in second
  assert checkpoint.latest_step(str(workdir)) == step + 2

  c = runpy.run_path(TINY)['get_config']()
  c.train.steps = step + 2
  one = trainer.train(c, str(tmp_path / 'one'))
  _, two = checkpoint.load_for_eval(str(workdir))
  # Same global batch and RNG streams; only the all-reduce order differs (gloo).
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
               jax.tree.map(np.asarray, one.params), two['params'])
  # A record's loss is the mean over the steps since the one before (the preemption logs
  # its step, and the resumed run starts a new window): compare records of the same steps.
  def losses(w):
    records = metrics_lib.read_metrics(str(w))
    steps = [r['step'] for r in records]
    return {(a, b): r['loss'] for a, b, r in zip([0] + steps, steps, records)}
  one_l, two_l = losses(tmp_path / 'one'), losses(workdir)
  common = sorted(set(one_l) & set(two_l))
  assert len(common) >= 2 and common[-1][1] == step + 2, (one_l, two_l)
  np.testing.assert_allclose([one_l[k] for k in common], [two_l[k] for k in common],
                             rtol=1e-4)
