"""The progress line: ETA from the rate so far, throttling, a terminal's carriage return."""

import re
import sys

from rwjax.waves import progress


def test_eta_is_the_rest_at_the_rate_so_far_reports_are_throttled_no_label_silent(capsys):
  # Made at t=100; reports at t=110 (first: printed), 111 (throttled), 125, 126 (forced).
  p = progress.Progress('fit', 1000, every_s=10,
                        time_fn=iter([100, 110, 111, 125, 126, 130]).__next__)
  p(100)             # 100 units in 10 s: 10/s, 900 left: ETA 90 s
  p(150)             # 1 s after the last report: skipped
  p(300, 'best 0.5')  # 15 s later: 300 in 25 s = 12/s, 700 left: ETA 58 s (58.33)
  p(310, force=True)
  p.finish(400, 'converged')  # the total becomes 400
  lines = capsys.readouterr().err.splitlines()
  assert lines == [
      'fit:  10.0% (100/1,000 retina-s), 10 retina-s/s, 10 s elapsed, ETA 1 min 30 s',
      'fit:  30.0% (300/1,000 retina-s), 12 retina-s/s, 25 s elapsed, ETA 58 s; best 0.5',
      'fit:  31.0% (310/1,000 retina-s), 11.9 retina-s/s, 26 s elapsed, ETA 58 s',
      'fit: 100.0% (400/400 retina-s), 13.3 retina-s/s, 30 s elapsed, ETA 0 s; converged']
  silent = progress.Progress(None, 10)  # no label: no output
  silent(5, force=True)
  silent.finish()
  assert capsys.readouterr().err == ''


def test_a_terminal_gets_one_line_rewritten_in_place(capsys, monkeypatch):
  monkeypatch.setattr(sys.stderr, 'isatty', lambda: True)
  p = progress.Progress('simulate', 20, every_s=0, time_fn=iter([0, 1, 2, 4]).__next__)
  p(5)
  p(10)
  p.finish()
  out = capsys.readouterr().err
  assert out.count('\n') == 1 and out.endswith('\n') and out.count('\r') == 3
  shown = [re.sub(r'\s+$', '', s) for s in out.split('\r')[1:]]
  assert shown[0].startswith('simulate:  25.0% (5/20 retina-s), 5 retina-s/s')
  assert shown[-1].startswith('simulate: 100.0% (20/20 retina-s)')


def test_clock():
  assert [progress.clock(s) for s in (0.4, 59.6, 185, 3725)] == [
      '0 s', '1 min 00 s', '3 min 05 s', '1 h 02 min']
