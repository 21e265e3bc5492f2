"""Metric records (rwjax.metrics) after a crash while one was written: a torn last line."""

import json

from rwjax import metrics


def _lines(*records):
  return ''.join(json.dumps(r) + '\n' for r in records)


def test_a_resumed_run_sets_the_torn_last_line_aside_and_appends_on_a_line_of_its_own(
    tmp_path, capsys):
  path = tmp_path / 'metrics.jsonl'
  # The crashed run wrote steps 2 and 4, and stopped inside the record of step 6.
  path.write_text(_lines({'step': 2, 'loss': 3.0}, {'step': 4, 'loss': 2.5}) + '{"step": 6, "lo')
  writer = metrics.MetricWriter(str(tmp_path))
  writer.write(6, {'loss': 2.0})
  writer.close()
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith(f'warning: {path} ended in a partial record')
  assert err[0].endswith(f'moved it to {path}.torn')
  assert path.read_text() == _lines({'step': 2, 'loss': 3.0}, {'step': 4, 'loss': 2.5},
                                    {'step': 6, 'loss': 2.0})
  torn = (tmp_path / 'metrics.jsonl.torn').read_text()
  assert torn == '{"step": 6, "lo\n'
  assert metrics.read_metrics(str(tmp_path)) == [
      {'step': 2, 'loss': 3.0}, {'step': 4, 'loss': 2.5}, {'step': 6, 'loss': 2.0}]
  # The next resumption finds a whole file: it is left as it is, with nothing to warn about.
  text = path.read_text()
  metrics.MetricWriter(str(tmp_path)).close()
  assert path.read_text() == text and (tmp_path / 'metrics.jsonl.torn').read_text() == torn
  assert capsys.readouterr().err == ''


def test_lines_that_are_no_record_are_named_and_the_records_around_them_read(tmp_path, capsys):
  # A crash inside the record of step 4, then a resumed run that appended its step-70 record
  # to the partial line without setting it aside; then a line of garbage, an empty line and a
  # last partial record.
  path = tmp_path / 'metrics.jsonl'
  path.write_text(_lines({'step': 2, 'loss': 3.0}) + '{"step": 4'
                  + _lines({'step': 70, 'loss': 1.5}) + '\x00\x00\x00 garbage\n\n'
                  + _lines({'step': 80, 'loss': 1.25}) + '{"step": 90, "lo')
  assert metrics.read_metrics(str(tmp_path)) == [
      {'step': 2, 'loss': 3.0}, {'step': 70, 'loss': 1.5}, {'step': 80, 'loss': 1.25}]
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 3
  assert err[0].startswith(
      f"warning: {path}: line 2 begins with a partial record ('{{\"step\": 4')")
  assert err[0].endswith('(step 70)')
  assert [e.split(' is not a metrics record')[0] for e in err[1:]] == [
      f'warning: {path}: line 3', f'warning: {path}: line 6']
