"""Run metrics: one JSON record per log interval, TensorBoard scalars, a progress line.

Where the records go (read them back with `read_metrics(workdir)`, whichever it is):
  - a local workdir: appended to DIR/metrics.jsonl, one line per record. A partial last line
    (a run killed mid-write) is moved to DIR/metrics.jsonl.torn before the next run appends;
  - a bucket (gs://...): no appends, so each writer (one per run or resumption) uploads its
    records whole at every log step as DIR/metrics/part-NNNNN.jsonl, a new part every
    PART_RECORDS records; every part is complete at every log step (docs/cloud.md).
TensorBoard events go to DIR/tensorboard; on a bucket they are staged locally and each event
file is uploaded whole after each log step.
"""

import json
import os
import re
import shutil
import sys
import tempfile
import time

from rwjax import paths

METRICS_FILE = 'metrics.jsonl'  # local workdirs
PARTS_DIR = 'metrics'  # object-store workdirs: PARTS_DIR/part-NNNNN.jsonl
PART_RECORDS = 1000
TENSORBOARD_DIR = 'tensorboard'
_PART = re.compile(r'part-(\d+)\.jsonl$')
_START = re.compile(r'\{\s*"step"\s*:')  # where a record begins


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
    # Past a partial record (a crash mid-write, then a run that appended to the partial line
    # without setting it aside), the record after it is whole.
    after = [(m.start(), _record(line[m.start():])) for m in _START.finditer(line, 1)]
    start, record = next(((i, r) for i, r in after if r is not None), (None, None))
    if record is None:
      print(f'warning: {path}: line {number} is not a metrics record ({_clip(line)}); '
            'skipped it', file=sys.stderr, flush=True)
      continue
    print(f'warning: {path}: line {number} begins with a partial record '
          f'({_clip(line[:start])}); skipped it and read the record after it (step '
          f"{record['step']})", file=sys.stderr, flush=True)
    out.append(record)
  return out


def _clip(text: str, n: int = 60) -> str:
  return repr(text if len(text) <= n else text[:n] + '...')


def read_metrics(workdir: str) -> list[dict]:
  """Every metric record of a run, in the order written, on any path: metrics.jsonl, then the
  parts in order. Steps re-run after a crash (not after a preemption, which checkpoints the
  step it stops at) appear once per run that logged them.

  Returns [{'step': int, name: float, ...}, ...].
  """
  local = paths.join(workdir, METRICS_FILE)
  files = ([local] if paths.exists(local) else []) + [p for _, p in _parts(workdir)]
  return [record for f in files for record in _records(paths.read_text(f), f)]


class MetricWriter:
  """Writes scalars to the workdir's metrics and TensorBoard events (only on process 0)."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    if not enabled:
      return
    self._workdir, self._remote = workdir, paths.is_remote(workdir)
    if self._remote:
      parts = _parts(workdir)
      self._part = parts[-1][0] + 1 if parts else 0
      self._lines = []
      self._stage = tempfile.mkdtemp(prefix='rwjax-tensorboard-')
    else:
      path = os.path.join(workdir, METRICS_FILE)
      torn = paths.set_aside_torn_line(path)
      if torn is not None:
        print(f'warning: {path} ended in a partial record ({_clip(torn)}: the last run '
              f'stopped while writing it); moved it to {path}{paths.TORN_SUFFIX}',
              file=sys.stderr, flush=True)
      self._jsonl = open(path, 'a')
    # Imported here: readers of metrics (the evaluator, the experiment) need no TensorBoard.
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    self._tb = SummaryWriter(
        self._stage if self._remote else os.path.join(workdir, TENSORBOARD_DIR))

  def _upload_events(self) -> None:
    if self._remote:  # a local workdir's events are written in place
      for name in sorted(os.listdir(self._stage)):
        paths.upload(os.path.join(self._stage, name),
                     paths.join(self._workdir, TENSORBOARD_DIR, name))

  def write(self, step: int, scalars: dict) -> None:
    if not self.enabled:
      return
    row = {'step': int(step), **{k: float(v) for k, v in scalars.items()}}
    line = json.dumps(row) + '\n'
    if self._remote:
      self._lines.append(line)
      part = paths.join(self._workdir, PARTS_DIR, f'part-{self._part:05d}.jsonl')
      paths.write_atomic(part, ''.join(self._lines))
      if len(self._lines) >= PART_RECORDS:  # this part is final; the next record starts one
        self._part, self._lines = self._part + 1, []
    else:
      self._jsonl.write(line)
      self._jsonl.flush()
    for k in scalars:
      self._tb.add_scalar(k, row[k], step)
    self._tb.flush()
    self._upload_events()

  def close(self) -> None:
    if not self.enabled:
      return
    self._tb.close()
    self._upload_events()
    if self._remote:
      shutil.rmtree(self._stage, ignore_errors=True)
    else:
      self._jsonl.close()


def duration(seconds: float) -> str:
  """'1h02m03s' or '2m03s'."""
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
    parts += [f'{rate:.3g} steps/s', f'ETA {duration(eta) if eta == eta else "?"}']
    print(' | '.join(parts), file=sys.stderr, flush=True)
