"""Reading and preparing a paper-sized recorded dataset; prints one JSON object.

  python bench/recorded_dataset.py [--dir=DIR] [--recordings=5] [--frames=3600] [--size=128]
                                   [--labels=intervals|threshold] [--dff_window_s=0]

Writes (once, into --dir) synthetic uint16 TIFF stacks the size of the paper's
(5 x 3,600 frames of 128x128, a growing disk every 12 s on camera-like noise) with one
interval file each, then times rwjax.waves.dataset.load_dataset with the paper's
preprocessing (per-pixel z-score, one min-max, 4x4 pooling to 32x32, 3 rotated copies)
and reports wall and CPU seconds (user + system; the wall time depends on what else runs)
and the peak resident memory beside the size of the files, which are read in
chunks of 256 frames.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def _write(d, n, frames, size):
  import tifffile  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[:size, :size]
  for i in range(n):
    path = os.path.join(d, f'rec{i}.tif')
    if os.path.exists(path):
      continue
    starts = range(50, frames - 20, 120)  # a wave every 12 s at 10 Hz, 2 s long
    x = rng.normal(1000, 20, (frames, size, size)).astype(np.float32)
    for s in starts:
      for k in range(20):
        x[s + k][(yy - size // 3 - i) ** 2 + (xx - size // 2) ** 2 <= (3 * k + 2) ** 2] += 300
    np.save(os.path.join(d, f'rec{i}_waves.npy'), np.array([[s, s + 20] for s in starts]))
    tifffile.imwrite(path, x.astype(np.uint16))


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--dir', default=os.path.join(tempfile.gettempdir(), 'rwjax_recorded_bench'))
  p.add_argument('--recordings', type=int, default=5)
  p.add_argument('--frames', type=int, default=3600)
  p.add_argument('--size', type=int, default=128)
  p.add_argument('--labels', default='intervals', help='intervals | threshold')
  p.add_argument('--dff_window_s', type=float, default=0.0)
  args = p.parse_args()
  os.makedirs(args.dir, exist_ok=True)
  if not all(os.path.exists(os.path.join(args.dir, f'rec{i}.tif'))
             for i in range(args.recordings)):
    _write(args.dir, args.recordings, args.frames, args.size)
    sys.exit(subprocess.run([sys.executable] + sys.argv).returncode)  # measure afresh
  from rwjax.waves import dataset  # pylint: disable=g-import-not-at-top
  rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  files = [os.path.join(args.dir, f'rec{i}.tif') for i in range(args.recordings)]
  kw = (dict(intervals=','.join(f[:-4] + '_waves.npy' for f in files))
        if args.labels == 'intervals' else dict(threshold=1100.0))
  cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])  # user + system
  t0, c0 = time.perf_counter(), cpu()
  ds = dataset.load_dataset(','.join(files), out_size=32, dff_window_s=args.dff_window_s,
                            frame_dt=0.1, **kw)
  seconds, cpu_seconds = time.perf_counter() - t0, cpu() - c0
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print(json.dumps(dict(
      bench='recorded_dataset', recordings=args.recordings, frames=args.frames,
      size=args.size, labels=args.labels, dff_window_s=args.dff_window_s,
      seconds=round(seconds, 1), cpu_seconds=round(cpu_seconds, 1),
      load_average=round(os.getloadavg()[0], 1), dataset_shape=list(ds.movie.shape),
      dataset_mb=round(ds.movie.nbytes / 2**20), frames_in_waves=float((ds.labels >= 0).mean()),
      files_mb=round(sum(os.path.getsize(f) for f in files) / 2**20),
      frames_as_float32_mb=round(args.recordings * args.frames * args.size**2 * 4 / 2**20),
      peak_rss_mb=round(peak), rss_before_mb=round(rss_before))))


if __name__ == '__main__':
  main()
