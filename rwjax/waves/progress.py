"""One progress line on stderr for the wave commands that run for minutes.

`Progress(label, total, unit)(done, note)` reports (unit retina-s: simulated seconds summed
over the retinas simulated; label None: silent):

  fit: 12.5% (2,400/19,200 retina-s), 24.1 retina-s/s, 1 min 40 s elapsed, ETA 11 min 37 s; <note>

The rate counts from the Progress's creation, compilation included, so the ETA holds for the
rest of the run. On a terminal the line is rewritten in place; in a log or a pipe every report
is its own line. A report is printed at the first call (a slow run shows its pace after its
first chunk), when `force` is set and otherwise at most every `every_s` seconds; `finish`
prints the last one.
"""

import sys
import time
from typing import Callable


def clock(seconds: float) -> str:
  """42 s, 3 min 05 s, 1 h 02 min."""
  s = round(seconds)
  if s < 60:
    return f'{s} s'
  if s < 3600:
    return f'{s // 60} min {s % 60:02d} s'
  return f'{s // 3600} h {s % 3600 // 60:02d} min'


class Progress:
  """A progress line (module docstring); call it with the units done so far."""

  def __init__(self, label: str | None, total: float, unit: str = 'retina-s',
               every_s: float | None = None, time_fn: Callable[[], float] = time.time):
    self.label, self.total, self.unit, self._time = label, float(total), unit, time_fn
    self.every_s = every_s
    self.start = time_fn()
    self._last = None  # wall time of the last report
    self._line = ''    # the last report

  def __call__(self, done: float, note: str = '', force: bool = False) -> None:
    """Reports `done` units (throttled; `force`: now)."""
    if self.label is None:
      return
    every = self.every_s if self.every_s is not None else (1.0 if sys.stderr.isatty() else 10.0)
    now = self._time()
    if force or self._last is None or now - self._last >= every:
      self._write(done, note, False, now)

  def finish(self, done: float | None = None, note: str = '') -> None:
    """The last report; `done` (default: total) becomes the total when the work ends early
    (e.g. a fit that converged)."""
    self.total = self.total if done is None else done
    if self.label is not None:
      self._write(self.total, note, True, self._time())

  def _write(self, done: float, note: str, end: bool, now: float) -> None:
    stream = sys.stderr  # looked up per call: a redirected stderr (a log file) is followed
    self._last = now
    elapsed = now - self.start
    line = (f'{self.label}: {100 * min(done / max(self.total, 1e-9), 1):5.1f}% ({done:,.0f}/'
            f'{self.total:,.0f} {self.unit})')
    if done > 0 and elapsed > 0:
      rate = done / elapsed
      line += (f', {rate:.3g} {self.unit}/s, {clock(elapsed)} elapsed, '
               f'ETA {clock(max(self.total - done, 0) / rate)}')
    line += f'; {note}' if note else ''
    if stream.isatty():  # over the last line, padded to its length
      stream.write('\r' + line.ljust(len(self._line)) + ('\n' if end else ''))
    else:
      stream.write(line + '\n')
    self._line = '' if end else line
    stream.flush()
