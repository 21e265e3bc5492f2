"""rwjax.paths: append-only files after a crash while a line was written (local and gs://),
and moving a directory (on gs://: tests/test_gcs.py)."""

import os

import pytest

from rwjax import paths


def test_set_aside_torn_line_keeps_the_partial_line_in_a_side_file(tmp_path):
  file = tmp_path / 'records.jsonl'
  path = str(file)
  assert paths.set_aside_torn_line(path) is None  # no file
  file.write_text('')
  assert paths.set_aside_torn_line(path) is None  # empty
  long = 'x' * 100_000  # a last line longer than the block read back at a time
  file.write_text('one\ntwo\n' + long)
  assert paths.set_aside_torn_line(path) == long
  assert open(path).read() == 'one\ntwo\n'
  assert paths.set_aside_torn_line(path) is None
  with open(path, 'a') as f:
    f.write('thr')
  assert paths.set_aside_torn_line(path) == 'thr'
  assert open(path + '.torn').read() == long + '\nthr\n'  # each crash's line, kept
  file.write_text('no newline at all')
  assert paths.set_aside_torn_line(path) == 'no newline at all'
  assert open(path).read() == ''


@pytest.mark.parametrize('where', ['local', 'gs://bucket/logs'])
def test_open_append_starts_after_a_partial_last_line(tmp_path, request, where):
  if where != 'local':
    request.getfixturevalue('gcs_emulator')
  log = paths.join(tmp_path if where == 'local' else where, 'log.txt')
  for text in ('first run\nkilled in the mid', 'second run\n', 'third run\n'):
    with paths.open_append(log) as f:
      f.write(text)
  assert paths.read_text(log) == 'first run\nkilled in the mid\nsecond run\nthird run\n'


def test_move_creates_the_parent_and_keeps_every_file(tmp_path):
  src = tmp_path / 'a' / '7'
  (src / 'sub').mkdir(parents=True)
  (src / 'sub' / 'f').write_bytes(b'123')
  (src / 'g').write_bytes(b'')
  paths.move(str(src), str(tmp_path / 'b' / 'c' / '7'))
  assert not src.exists()
  assert sorted(os.listdir(tmp_path / 'b' / 'c' / '7')) == ['g', 'sub']
  assert (tmp_path / 'b' / 'c' / '7' / 'sub' / 'f').read_bytes() == b'123'
