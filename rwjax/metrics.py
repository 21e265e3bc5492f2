"""Run metrics: one JSON record per log interval, TensorBoard scalars, a progress line.

Where the records go (read them back with `read_metrics(workdir)`, whichever it is):
  - a local workdir: appended to DIR/metrics.jsonl, one line per record (as always). A
    run killed while it wrote a record leaves a partial last line: the next run moves it to
    DIR/metrics.jsonl.torn before it appends (rwjax.paths.set_aside_torn_line);
  - a bucket (gs://...): an object cannot be appended to (and gcsfs silently turns 'a'
    into an overwrite, fsspec/gcsfs#533), so each writer (one per run or resumption)
    keeps its records in memory and uploads them whole, at every log step, as one
    immutable-once-full part DIR/metrics/part-NNNNN.jsonl (a new part every
    PART_RECORDS records bounds an upload). A preempted run loses nothing that was logged:
    every part in the bucket is complete at every log step.
TensorBoard events go to DIR/tensorboard; on a bucket tensorboardX writes them to a local
staging directory and each event file is uploaded whole after each log step's flush.
"""

import json
import os
import re
import shutil
import sys
import tempfile
import time

from tensorboardX import SummaryWriter

from rwjax import paths

METRICS_FILE = 'metrics.jsonl'  # local workdirs
PARTS_DIR = 'metrics'  # object-store workdirs: PARTS_DIR/part-NNNNN.jsonl
PART_RECORDS = 1000
TENSORBOARD_DIR = 'tensorboard'
_PART = re.compile(r'part-(\d+)\.jsonl$')


def _parts(workdir: str) -> list[tuple[int, str]]:
  """(number, path) of the metric parts in workdir, in number order."""
  found = [(_PART.search(p), p) for p in paths.glob(paths.join(workdir, PARTS_DIR, 'part-*.jsonl'))]
  return sorted((int(m.group(1)), p) for m, p in found if m)


def _record(text: str) -> dict | None:
  """The record a line holds, or None when it is not one."""
  try:
    record = json.loads(text)
  except json.JSONDecodeError:
    return None
  return record if isinstance(record, dict) and 'step' in record else None


_START = re.compile(r'\{\s*"step"\s*:')


def _records(text: str, path: str) -> list[dict]:
  """The records of one file; a line that is not one is skipped with one warning line on
  stderr (file and line number), and every other line is still read."""
  out = []
  for number, line in enumerate(text.split('\n'), 1):
    if not line.strip():
      continue
    record = _record(line)
    if record is not None:
      out.append(record)
      continue
    # A crash mid-write, then a run that appended to the partial line (before runs set it
    # aside): the record after the partial one is whole.
    after = [(m.start(), _record(line[m.start():])) for m in _START.finditer(line, 1)]
    start, record = next(((i, r) for i, r in after if r is not None), (None, None))
    if record is not None:
      out.append(record)
      print(f'warning: {path}: line {number} begins with a partial record '
            f'({_clip(line[:start])}); skipped it and read the record after it (step '
            f"{record['step']})", file=sys.stderr, flush=True)
    else:
      print(f'warning: {path}: line {number} is not a metrics record ({_clip(line)}); '
            'skipped it', file=sys.stderr, flush=True)
  return out


def _clip(text: str, n: int = 60) -> str:
  return repr(text if len(text) <= n else text[:n] + '...')


def read_metrics(workdir: str) -> list[dict]:
  """Every metric record of a run, in the order written, on any path.

  DIR/metrics.jsonl (local runs) first, then DIR/metrics/part-*.jsonl (runs on object
  stores) in part order. Steps re-run after a crash (not after a preemption, which
  checkpoints the step it stops at) appear once per run that logged them. A line that is
  not a record (a crash mid-write) is skipped with a warning line naming file and line.
  Returns [{'step': int, name: float, ...}, ...].
  """
  records = []
  legacy = paths.join(workdir, METRICS_FILE)
  if paths.exists(legacy):
    records += _records(paths.read_text(legacy), legacy)
  for _, part in _parts(workdir):
    records += _records(paths.read_text(part), part)
  return records


class MetricWriter:
  """Writes scalars to the workdir's metrics and TensorBoard events (only on process 0)."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    if not enabled:
      return
    self._remote = paths.is_remote(workdir)
    if self._remote:
      self._workdir = workdir
      parts = _parts(workdir)
      self._part = parts[-1][0] + 1 if parts else 0
      self._lines = []
      self._stage = tempfile.mkdtemp(prefix='rwjax-tensorboard-')
      self._tb = SummaryWriter(self._stage)
    else:
      path = os.path.join(workdir, METRICS_FILE)
      torn = paths.set_aside_torn_line(path)
      if torn is not None:
        print(f'warning: {path} ended in a partial record ({_clip(torn)}: the last run '
              f'stopped while writing it); moved it to {path}{paths.TORN_SUFFIX}',
              file=sys.stderr, flush=True)
      self._jsonl = open(path, 'a')
      self._tb = SummaryWriter(os.path.join(workdir, TENSORBOARD_DIR))

  def _upload_events(self) -> None:
    for name in sorted(os.listdir(self._stage)):
      paths.upload(os.path.join(self._stage, name),
                   paths.join(self._workdir, TENSORBOARD_DIR, name))

  def write(self, step: int, scalars: dict) -> None:
    if not self.enabled:
      return
    row = {'step': int(step), **{k: float(v) for k, v in scalars.items()}}
    if self._remote:
      self._lines.append(json.dumps(row) + '\n')
      part = paths.join(self._workdir, PARTS_DIR, f'part-{self._part:05d}.jsonl')
      paths.write_atomic(part, ''.join(self._lines))
      if len(self._lines) >= PART_RECORDS:  # this part is final; the next record starts one
        self._part, self._lines = self._part + 1, []
    else:
      self._jsonl.write(json.dumps(row) + '\n')
      self._jsonl.flush()
    for k, v in row.items():
      if k != 'step':
        self._tb.add_scalar(k, v, step)
    self._tb.flush()
    if self._remote:
      self._upload_events()

  def close(self) -> None:
    if not self.enabled:
      return
    self._tb.close()
    if self._remote:
      self._upload_events()
      shutil.rmtree(self._stage, ignore_errors=True)
    else:
      self._jsonl.close()


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
