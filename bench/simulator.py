"""Speed of the Lansdell wave simulator (model 1), JAX vs the plain NumPy reference.

  python bench/simulator.py --platform=cpu --batch=16          # CPU, with NumPy baseline
  python bench/simulator.py --platform=gpu --batch=1024        # one GPU

Prints one JSON object: frames/s (64x64 frames, dt = 1 ms, 100 steps per frame),
ms per frame-batch, and the estimated bytes moved per Euler step against the
device's memory bandwidth (a step-per-kernel loop is bandwidth bound on GPUs).
Timings are taken after compilation, with block_until_ready.
"""

import argparse
import json
import os
import pathlib
import sys
import time

# Peak HBM bandwidth (bytes/s) by device kind, for the roofline estimate.
_PEAK_BANDWIDTH = {'H100 PCIe': 2.0e12, 'H100': 3.35e12, 'H200': 4.8e12,
                   'A100-SXM4-80GB': 2.04e12, 'A100': 1.56e12}


def _flags():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--platform', default='cpu', choices=['cpu', 'gpu', 'tpu'])
  ap.add_argument('--batch', type=int, default=16, help='retinas simulated together')
  ap.add_argument('--size', type=int, default=64)
  ap.add_argument('--frames', type=int, default=10, help='frames per timed jitted call')
  ap.add_argument('--repeats', type=int, default=3, help='timed calls (best is reported)')
  ap.add_argument('--numpy_frames', type=int, default=1,
                  help='frames per timed NumPy reference call (0: skip it)')
  ap.add_argument('--numpy_dtype', default='float32', choices=['float32', 'float64'])
  ap.add_argument('--host_devices', type=int, default=0,
                  help='CPU: split the batch over this many host devices, one thread each '
                       '(0: one per core; XLA:CPU runs a fused loop on one thread)')
  ap.add_argument('--unroll', type=int, default=0,
                  help='override the accelerator scan unroll of the inner loop (0: default)')
  return ap.parse_args()


def _timed(fn):
  """(wall, CPU) seconds of one call; CPU time is robust to a loaded host."""
  t, c = time.perf_counter(), time.process_time()
  fn()
  return time.perf_counter() - t, time.process_time() - c


def main():
  args = _flags()
  os.environ['JAX_PLATFORMS'] = args.platform if args.platform != 'gpu' else 'cuda'
  if args.platform == 'cpu':
    n_host = args.host_devices or os.cpu_count() or 1
    os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '')
                               + f' --xla_force_host_platform_device_count={n_host}')
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
  import jax
  import numpy as np
  import numpy_lansdell
  from rwjax.waves import lansdell

  if args.unroll:
    lansdell._ACCEL_UNROLL = args.unroll
  p = lansdell.Params(size=args.size)
  steps = lansdell.steps_per_frame(p)
  state = lansdell.init(jax.random.PRNGKey(0), args.batch, p)
  # Retinas are independent: shard the batch over the devices (on CPU, one per core).
  n_dev = max(n for n in range(1, jax.device_count() + 1) if args.batch % n == 0)
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:n_dev]), ('batch',))
  spec = jax.sharding.PartitionSpec('batch')
  state = jax.device_put(state, jax.sharding.NamedSharding(mesh, spec))
  advance = jax.jit(jax.shard_map(lambda s: lansdell.advance(s, args.frames, p), mesh=mesh,
                                  in_specs=spec, out_specs=spec))
  t0 = time.perf_counter()
  state, frames = advance(state)
  jax.block_until_ready(frames)
  compile_s = time.perf_counter() - t0
  holder = [state]

  def run():
    holder[0], f = advance(holder[0])
    jax.block_until_ready(f)

  np_fields = numpy_lansdell.init(args.batch, p, np.dtype(args.numpy_dtype))
  rng = np.random.default_rng(0)
  run_numpy = lambda: numpy_lansdell.advance(np_fields, args.numpy_frames, rng, p)
  # JAX and NumPy calls alternate, so both see the same load on a shared machine.
  t = tc = tn = tnc = float('inf')
  for _ in range(args.repeats):
    wall, cpu = _timed(run)
    t, tc = min(t, wall), min(tc, cpu)
    if args.numpy_frames:
      wall, cpu = _timed(run_numpy)
      tn, tnc = min(tn, wall), min(tnc, cpu)
  jax_fps = args.batch * args.frames / t
  cells = args.batch * args.size * args.size
  # Per cell and step: read v, r, s, e (f32) and the driven mask (1 byte), write v, r, s, e.
  step_bytes = cells * (4 * 4 + 1 + 4 * 4)
  step_s = t / (args.frames * steps)
  device = jax.devices()[0]
  kind = device.device_kind
  peak = next((bw for name, bw in _PEAK_BANDWIDTH.items() if name in kind), None)
  out = {
      'bench': 'simulator', 'model': 'lansdell', 'jax_version': jax.__version__,
      'platform': args.platform, 'device_kind': kind, 'devices': n_dev, 'batch': args.batch,
      'size': args.size, 'dt_s': p.dt, 'steps_per_frame': steps,
      'frames_per_call': args.frames, 'repeats': args.repeats,
      'scan_unroll': 1 if jax.default_backend() == 'cpu' else lansdell._ACCEL_UNROLL,
      'compile_s': round(compile_s, 2),
      'jax_frames_per_s': round(jax_fps, 1),
      'jax_ms_per_frame_batch': round(1e3 * t / args.frames, 3),
      'jax_us_per_step': round(1e6 * step_s, 2),
      'bytes_per_step_est': step_bytes,
      'achieved_GB_per_s_est': round(step_bytes / step_s / 1e9, 1),
      'peak_GB_per_s': peak and peak / 1e9,
      'bandwidth_bound_frames_per_s': peak and round(peak / step_bytes / steps * args.batch),
  }
  if args.numpy_frames:
    np_fps = args.batch * args.numpy_frames / tn
    # Per CPU-second: work done per core-second used (JAX may use several threads).
    cpu_fps = lambda seconds, n: round(args.batch * n / seconds, 1)
    out.update(numpy_dtype=args.numpy_dtype, numpy_frames_per_call=args.numpy_frames,
               numpy_frames_per_s=round(np_fps, 2), speedup_vs_numpy=round(jax_fps / np_fps, 1),
               jax_frames_per_cpu_s=cpu_fps(tc, args.frames),
               numpy_frames_per_cpu_s=cpu_fps(tnc, args.numpy_frames),
               speedup_vs_numpy_per_cpu_s=round(tnc / args.numpy_frames * args.frames / tc, 1))
  print(json.dumps(out))


if __name__ == '__main__':
  main()
