"""Runs one command as N cooperating JAX processes on this machine.

  python launch/local.py --processes=2 --cpu_devices=4 -- \\
      python -m rwjax.train --config=configs/pretrain_smoke.py --workdir=DIR \\
      --config.multihost=True

Every process gets JAX_COORDINATOR_ADDRESS (a free local port), JAX_NUM_PROCESSES and
JAX_PROCESS_ID (what rwjax.distributed.initialize reads), so the multi-host code path
of a TPU pod or a GPU cluster runs here, e.g. 2 processes x 4 virtual CPU devices
instead of one process with 8. `--cpu_devices=K` gives each process K virtual CPU
devices; `--gpus_per_process=K` gives process i the GPUs i*K .. i*K+K-1 (one machine
with several GPUs normally needs no launcher: one process drives them all).

Output lines of process i > 0 are prefixed with `[i]`. If one process fails the others
are stopped (they would wait forever at the next collective) and its exit code is
returned. SIGTERM, SIGINT and SIGHUP are passed on to every process, once: the processes
run in their own session, so a terminal's Ctrl-C reaches them only through the launcher.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def process_env(base: dict, i: int, n: int, port: int, cpu_devices: int,
                gpus_per_process: int) -> dict:
  """The environment of process i of n."""
  env = dict(base, JAX_COORDINATOR_ADDRESS=f'localhost:{port}', JAX_NUM_PROCESSES=str(n),
             JAX_PROCESS_ID=str(i))
  if cpu_devices:
    flags = [f for f in env.get('XLA_FLAGS', '').split()
             if not f.startswith('--xla_force_host_platform_device_count')]
    env['XLA_FLAGS'] = ' '.join(flags + [f'--xla_force_host_platform_device_count={cpu_devices}'])
    env['JAX_PLATFORMS'] = 'cpu'
  if gpus_per_process:
    env['JAX_LOCAL_DEVICE_IDS'] = ','.join(
        str(d) for d in range(i * gpus_per_process, (i + 1) * gpus_per_process))
  return env


def _relay(stream, prefix: str) -> None:
  for line in iter(stream.readline, b''):
    sys.stdout.buffer.write(prefix.encode() + line)
    sys.stdout.buffer.flush()


def run(command: list[str], processes: int, cpu_devices: int = 0,
        gpus_per_process: int = 0) -> int:
  """Starts the processes, waits for all; the first non-zero exit code, else 0."""
  port = free_port()
  procs, relays = [], []
  for i in range(processes):
    env = process_env(os.environ, i, processes, port, cpu_devices, gpus_per_process)
    # Own session: signals for the launcher's process group (Ctrl-C) stay with it.
    p = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    t = threading.Thread(target=_relay, args=(p.stdout, f'[{i}] ' if i else ''), daemon=True)
    t.start()
    procs.append(p)
    relays.append(t)

  def forward(signum, _):
    for p in procs:
      if p.poll() is None:
        p.send_signal(signum)

  previous = {s: signal.signal(s, forward)
              for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
  code = 0
  try:
    pending = list(procs)
    while pending:
      for p in list(pending):
        try:
          rc = p.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
          continue
        pending.remove(p)
        if rc and not code:
          code = rc
          for other in pending:  # they would block at the next collective
            other.kill()
  finally:
    for s, h in previous.items():
      signal.signal(s, h)
    for t in relays:
      t.join(timeout=5)
  return code


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      description='Run a command as N cooperating JAX processes on this machine.',
      usage='%(prog)s --processes=N [--cpu_devices=K | --gpus_per_process=K] -- COMMAND ...')
  parser.add_argument('--processes', type=int, required=True)
  parser.add_argument('--cpu_devices', type=int, default=0,
                      help='virtual CPU devices per process (0 = leave the platform alone)')
  parser.add_argument('--gpus_per_process', type=int, default=0)
  parser.add_argument('command', nargs=argparse.REMAINDER)
  args = parser.parse_args(argv)
  command = args.command[1:] if args.command[:1] == ['--'] else args.command
  if args.processes < 1 or args.cpu_devices < 0 or args.gpus_per_process < 0:
    parser.error('--processes must be >= 1, --cpu_devices and --gpus_per_process >= 0')
  if args.cpu_devices and args.gpus_per_process:
    parser.error('give --cpu_devices or --gpus_per_process, not both')
  if not command:
    parser.error('no command given after --')
  return run(command, args.processes, args.cpu_devices, args.gpus_per_process)


if __name__ == '__main__':
  sys.exit(main())
