"""launch/offline_gpu.sh: a slice of the experiment per session, results carried between them.

The script's `run` at the tiny scale on CPU, three sessions on "fresh machines" (the
experiment's directory deleted in between, only results.tgz carried over): the first trains
and evaluates, the second finds every run finished and trains nothing, the third is stopped
by its deadline and still reports and packs what exists; then `merge`.
"""

import io
import os
import subprocess
import sys
import tarfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, 'launch', 'offline_gpu.sh')
# The suite's one tiny experiment is tests/test_experiment.py's: here the script's slices
# evaluate the random-init network only (step 0, one evaluator report), no training.
EXPECTED = {'runs/random_init/seed0/eval/step0/report.json'}


def script(*args, **env):
  e = {**os.environ, 'PYTHON': sys.executable, 'SCALE': 'tiny', 'EXTRA': '--config.seeds=1',
       'ONLY': 'random_init', **env}
  return subprocess.run(['bash', SCRIPT, *args], cwd=ROOT, env=e, capture_output=True,
                        text=True, timeout=900)


def members(path):
  with tarfile.open(path) as t:
    return {m.name: (t.extractfile(m).read() if m.isfile() else None) for m in t.getmembers()}


def row(stdout, phase):
  lines = [l for l in stdout.splitlines() if l.startswith(phase + ' ')]
  assert len(lines) == 1, stdout
  return lines[0]


@pytest.fixture(scope='module')
def sessions(tmp_path_factory):
  """Three sessions: (tmp, [CompletedProcess], [files each left in the experiment's directory
  (each session starts from a fresh one)])."""
  tmp = tmp_path_factory.mktemp('offline')
  common = dict(WORK=str(tmp / 'work'), DATA=str(tmp / 'data'))
  settings = [
      dict(RESULTS=''),
      dict(RESULTS=str(tmp / 'out1' / 'results.tgz')),
      # An arm whose run cannot finish before the deadline (the movie alone takes longer
      # than the experiment's 7 s: DEADLINE_S - RESERVE_S).
      dict(RESULTS=str(tmp / 'out2' / 'results.tgz'), ONLY='random_init,lansdell_movie',
           DEADLINE_S='12', RESERVE_S='5')]
  done, left = [], []
  for i, env in enumerate(settings, 1):
    done.append(script('run', OUT=str(tmp / f'out{i}'), **common, **env))
    left.append([os.path.relpath(os.path.join(d, f), tmp / 'work')
                 for d, _, files in os.walk(tmp / 'work') for f in files])
  return tmp, done, left


def test_sessions_pack_the_evaluations_resume_from_them_and_stop_at_the_deadline(sessions):
  tmp, (first, second, third), (left1, left2, _) = sessions
  for p in (first, second, third):
    assert p.returncode == 0, p.stdout + p.stderr
  # The first packs every evaluation and no checkpoint. The summary table is the last thing
  # printed, and is also kept in OUT.
  assert first.stdout.rstrip().endswith(row(first.stdout, 'total'))
  assert open(tmp / 'out1' / 'session.txt').read() == first.stdout
  assert 'rc 0: 1 runs done, 0 finished before' in row(first.stdout, 'experiment')
  one = members(tmp / 'out1' / 'results.tgz')
  assert {n for n in one if n.endswith('/report.json')} == EXPECTED
  assert {'runs/random_init/seed0/run.json', 'runs/random_init/seed0/timing.json',
          'report.md', 'report.html', 'results.json'} <= set(one)
  # Not packed: checkpoints, TensorBoard files, compiled programs (checkpoints exist).
  assert [n for n in left1 if '/checkpoints/' in n]
  assert not [n for n in one if 'checkpoints' in n or 'tensorboard' in n
              or n.startswith(('data', 'jax_cache'))]
  assert open(tmp / 'out1' / 'report.md').read() == one['report.md'].decode()

  # The next starts from the results in a fresh directory and runs nothing (no checkpoint).
  assert 'rc 0: 0 runs done, 1 finished before' in row(second.stdout, 'experiment')
  assert not [n for n in left2 if '/checkpoints/' in n or n.startswith('data/')]
  two = members(tmp / 'out2' / 'results.tgz')
  assert all(two[n] == one[n] for n in EXPECTED)  # the same evaluations, byte for byte

  # The third, stopped by its deadline, still reports and packs.
  assert 'rc 124' in row(third.stdout, 'experiment')
  assert 'run again to go on' in row(third.stdout, 'experiment')
  assert 'rc 0' in row(third.stdout, 'report')
  three = members(tmp / 'out3' / 'results.tgz')
  assert {n for n in three if n.endswith('/report.json')} == EXPECTED
  assert all(three[n] == one[n] for n in EXPECTED)
  assert 'config.report_only' in open(tmp / 'out3' / 'experiment.log').read()
  # The report, from the runs that exist (no wave arm has results yet).
  assert 'Wave arm: None (none ran)' in three['report.md'].decode()


def test_keep_resumes_in_the_same_directory(sessions):
  """KEEP=1: the directory of the last slice is kept (no RESULTS unpacked into a fresh one),
  so its finished evaluation is found where it is."""
  tmp = sessions[0]
  p = script('run', OUT=str(tmp / 'out4'), WORK=str(tmp / 'work'), DATA=str(tmp / 'data'),
             RESULTS='', KEEP='1')
  assert p.returncode == 0, p.stdout + p.stderr
  assert 'rc 0: 0 runs done, 1 finished before' in row(p.stdout, 'experiment')


def test_merge_keeps_the_results_and_refuses_a_file_without_them(sessions, tmp_path):
  tmp = sessions[0]
  dest = tmp_path / 'experiment_paper'
  bad = tmp_path / 'bad.tgz'
  with tarfile.open(bad, 'w:gz') as t:
    info = tarfile.TarInfo('report.md')
    info.size = 2
    t.addfile(info, io.BytesIO(b'hi'))
  p = script('merge', str(bad), DEST=str(dest))
  assert p.returncode == 2 and 'holds no evaluation report' in p.stderr and not dest.exists()
  p = script('merge', str(tmp / 'out3' / 'results.tgz'), DEST=str(dest))
  assert p.returncode == 0, p.stderr
  assert 'holds 1 evaluation reports' in p.stdout
  assert sorted(os.listdir(dest)) == ['figures', 'report.md', 'results.json', 'results.tgz']
  assert (dest / 'results.tgz').read_bytes() == (tmp / 'out3' / 'results.tgz').read_bytes()
  assert (dest / 'figures').is_dir()


def test_bad_settings_are_one_message_each(tmp_path):
  p = script('run', OUT='')
  assert p.returncode == 2 and 'set OUT' in p.stderr
  p = script('run', OUT=str(tmp_path / 'out'), BENCH='wave')
  assert p.returncode == 2 and "unknown benchmark 'wave'" in p.stderr
  assert not (tmp_path / 'out').exists()  # refused before anything was written
  p = script('run', OUT=str(tmp_path / 'out'), WORK=ROOT)  # `run` empties WORK first
  assert p.returncode == 2 and 'would be deleted' in p.stderr
  assert os.path.isfile(os.path.join(ROOT, 'README.md'))
  p = script('nope')
  assert p.returncode == 2 and 'offline_gpu.sh prepare' in p.stderr
