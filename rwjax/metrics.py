"""Run metrics: one JSON line per log interval, TensorBoard scalars, a progress line."""

import json
import os
import sys
import time

from tensorboardX import SummaryWriter


class MetricWriter:
  """Writes scalars to DIR/metrics.jsonl and DIR/tensorboard (only on process 0)."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    if enabled:
      self._jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a')
      self._tb = SummaryWriter(os.path.join(workdir, 'tensorboard'))

  def write(self, step: int, scalars: dict) -> None:
    if not self.enabled:
      return
    row = {'step': int(step), **{k: float(v) for k, v in scalars.items()}}
    self._jsonl.write(json.dumps(row) + '\n')
    self._jsonl.flush()
    for k, v in row.items():
      if k != 'step':
        self._tb.add_scalar(k, v, step)
    self._tb.flush()

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      self._tb.close()


def _duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f'{h}h{m:02d}m{s:02d}s' if h else f'{m}m{s:02d}s'


class Progress:
  """`step 120/1000 | loss 4.1 | 12.3 steps/s | ETA 1m12s` lines on stderr."""

  def __init__(self, total: int, start: int = 0, enabled: bool = True):
    self.total, self.enabled = total, enabled
    self._t0, self._s0 = time.perf_counter(), start

  def rate(self, step: int) -> float:
    dt = time.perf_counter() - self._t0
    return (step - self._s0) / dt if dt > 0 else 0.0

  def line(self, step: int, fields: dict) -> None:
    if not self.enabled:
      return
    rate = self.rate(step)
    eta = (self.total - step) / rate if rate > 0 else float('nan')
    parts = [f'step {step}/{self.total}'] + [f'{k} {v:.4g}' for k, v in fields.items()]
    parts += [f'{rate:.3g} steps/s', f'ETA {_duration(eta) if eta == eta else "?"}']
    print(' | '.join(parts), file=sys.stderr, flush=True)
