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
  assert (tmp_path / 'metrics.jsonl.torn').read_text() == '{"step": 6, "lo\n'
  assert metrics.read_metrics(str(tmp_path)) == [
      {'step': 2, 'loss': 3.0}, {'step': 4, 'loss': 2.5}, {'step': 6, 'loss': 2.0}]
  assert capsys.readouterr().err == ''  # nothing left to warn about


def test_a_whole_file_is_left_as_it_is(tmp_path, capsys):
  text = _lines({'step': 1, 'loss': 1.0})
  (tmp_path / 'metrics.jsonl').write_text(text)
  metrics.MetricWriter(str(tmp_path)).close()
  assert (tmp_path / 'metrics.jsonl').read_text() == text
  assert not (tmp_path / 'metrics.jsonl.torn').exists() and capsys.readouterr().err == ''


def test_a_record_appended_to_a_torn_line_is_read_with_one_warning(tmp_path, capsys):
  # The file: a crash inside the record of step 4, then a resumed run (before torn
  # lines were set aside) appended its step-70 record to the partial line.
  path = tmp_path / 'metrics.jsonl'
  path.write_text(_lines({'step': 2, 'loss': 3.0}) + '{"step": 4'
                  + _lines({'step': 70, 'loss': 1.5}, {'step': 80, 'loss': 1.25}))
  assert metrics.read_metrics(str(tmp_path)) == [
      {'step': 2, 'loss': 3.0}, {'step': 70, 'loss': 1.5}, {'step': 80, 'loss': 1.25}]
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1
  assert err[0].startswith(f"warning: {path}: line 2 begins with a partial record ('{{\"step\": 4')")
  assert err[0].endswith('(step 70)')


def test_a_line_that_is_no_record_is_named_and_the_lines_after_it_are_read(tmp_path, capsys):
  path = tmp_path / 'metrics.jsonl'
  path.write_text(_lines({'step': 1, 'loss': 1.0}) + '\x00\x00\x00 garbage\n\n'
                  + _lines({'step': 2, 'loss': 0.5}) + '{"step": 3, "lo')
  assert metrics.read_metrics(str(tmp_path)) == [{'step': 1, 'loss': 1.0},
                                                  {'step': 2, 'loss': 0.5}]
  err = capsys.readouterr().err.strip().splitlines()
  assert [e.split(' is not a metrics record')[0] for e in err] == [
      f'warning: {path}: line 2', f'warning: {path}: line 5']
