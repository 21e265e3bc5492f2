"""gs:// workdirs against the Cloud Storage emulator (gcs_emulator): config.json and metrics
through gcsfs, orbax's checkpoints through tensorstore's gcs driver."""

import os
import runpy
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from rwjax import checkpoint
from rwjax import evaluate
from rwjax import metrics
from rwjax import paths
from rwjax.errors import InputError
from rwjax.ssl import trainer

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(_ROOT, 'tests', 'configs', 'tiny_pretrain.py')
STEPS = 8


def tiny_config(**train):
  c = runpy.run_path(TINY)['get_config']()
  c.train.update({'steps': STEPS, 'log_every': 1, 'checkpoint_every': 100, **train})
  return c


def test_preempted_bucket_run_resumes_to_the_uninterrupted_parameters_and_evaluates(
    gcs_emulator, tmp_path):
  straight = trainer.train(tiny_config(), 'gs://bucket/straight')

  # Preempt a run as a pod's maintenance does: SIGTERM right after its first step.
  with open(tmp_path / 'stderr', 'w') as log:
    p = subprocess.Popen(
        [sys.executable, '-m', 'rwjax.train', f'--config={TINY}', '--workdir=gs://bucket/run',
         f'--config.train.steps={STEPS}', '--config.train.log_every=1',
         '--config.train.checkpoint_every=100'],
        cwd=_ROOT, env=dict(os.environ, PYTHONPATH=_ROOT), stdout=subprocess.PIPE,
        stderr=log, text=True)
    for line in p.stdout:
      if line.startswith('first step'):
        p.send_signal(signal.SIGTERM)
        break
    out, _ = p.communicate(timeout=120)
  err = (tmp_path / 'stderr').read_text()
  assert p.returncode == 0, err[-3000:]
  assert 'preempted: saved step' in out, out + err[-3000:]
  stopped = checkpoint.latest_step('gs://bucket/run')
  assert 1 <= stopped < STEPS

  resumed = trainer.train(tiny_config(), 'gs://bucket/run')
  assert int(resumed.step) == STEPS and checkpoint.latest_step('gs://bucket/run') == STEPS
  # To float32 rounding (the resumed run recompiles its step; see tests/test_train.py).
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               jax.tree.map(np.asarray, straight.params),
               jax.tree.map(np.asarray, resumed.params))

  records = metrics.read_metrics('gs://bucket/run')
  assert [r['step'] for r in records] == list(range(1, STEPS + 1))
  assert len(paths.glob('gs://bucket/run/metrics/part-*.jsonl')) == 2
  assert not paths.exists('gs://bucket/run/metrics.jsonl')
  np.testing.assert_allclose([r['loss'] for r in records],
                             [r['loss'] for r in metrics.read_metrics('gs://bucket/straight')],
                             rtol=1e-4)

  # TensorBoard's reader sees each record's scalars (float32) in the uploaded event files.
  events = paths.glob('gs://bucket/run/tensorboard/events.out.tfevents.*')
  assert len(events) == 2
  scalars = {}  # {tag: {step: value}} from copies of the files
  for i, f in enumerate(events):
    (tmp_path / f'run{i}').mkdir()
    (tmp_path / f'run{i}' / os.path.basename(f)).write_bytes(paths.read_bytes(f))
    acc = event_accumulator.EventAccumulator(str(tmp_path / f'run{i}'),
                                             size_guidance={'scalars': 0})
    acc.Reload()
    for tag in acc.Tags()['scalars']:
      scalars.setdefault(tag, {}).update({e.step: e.value for e in acc.Scalars(tag)})
  assert scalars == {k: {r['step']: np.float32(r[k]) for r in records}
                     for k in set().union(*records) - {'step'}}

  c = runpy.run_path(os.path.join(_ROOT, 'configs', 'evaluate.py'))['get_config']('digits')
  c.workdir, c.seeds = 'gs://bucket/run', 2
  del c.evals['capacity']
  p = c.evals.probes
  p.layers, p.exemplar.transforms, p.classification.shifts = 'pooled', (), ()
  p.classification.max_train, p.classification.max_test, p.logistic.steps = 100, 50, 20
  report = evaluate.run(c)
  assert report['step'] == STEPS and report['workdir'] == 'gs://bucket/run'
  assert paths.read_json('gs://bucket/run/eval/report.json')['rows'] == report['rows']
  assert paths.exists('gs://bucket/run/eval/accuracy.png')


@pytest.mark.parametrize('workdir', ['gs://bucket/parts', 'local'])
def test_metric_records_come_back_in_order_across_writers(gcs_emulator, tmp_path, monkeypatch,
                                                          workdir):
  workdir = str(tmp_path) if workdir == 'local' else workdir
  monkeypatch.setattr(metrics, 'PART_RECORDS', 2)
  first = metrics.MetricWriter(workdir)
  for step in (1, 2, 3):
    first.write(step, {'loss': step / 10})
  # Before close (a preempted process never closes): every record is readable.
  assert metrics.read_metrics(workdir) == [{'step': s, 'loss': s / 10} for s in (1, 2, 3)]
  first.close()
  second = metrics.MetricWriter(workdir)  # a resumed run
  second.write(4, {'loss': 0.25, 'lr': 1e-3})
  second.close()
  assert metrics.read_metrics(workdir) == [
      {'step': 1, 'loss': 0.1}, {'step': 2, 'loss': 0.2}, {'step': 3, 'loss': 0.3},
      {'step': 4, 'loss': 0.25, 'lr': 1e-3}]
  if paths.is_remote(workdir):  # parts of at most 2 records; nothing appended
    assert [p.rsplit('/', 1)[1] for p in paths.glob(workdir + '/metrics/part-*.jsonl')] == [
        'part-00000.jsonl', 'part-00001.jsonl', 'part-00002.jsonl']
    assert not paths.exists(workdir + '/metrics.jsonl')
  else:  # one appended file
    assert len(open(os.path.join(workdir, 'metrics.jsonl')).read().splitlines()) == 4
    assert not os.path.exists(os.path.join(workdir, 'metrics'))


def test_without_the_gcs_extra_a_gs_path_is_one_message():
  # gcsfs made unimportable, as in an install without `rwjax[gcs]`.
  code = ("import sys; sys.modules['gcsfs'] = None\n"
          "from rwjax import paths\n"
          "paths.check_writable('gs://bucket/run')\n")
  out = subprocess.run([sys.executable, '-c', code], cwd=_ROOT, capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=_ROOT), timeout=60)
  last = out.stderr.strip().splitlines()[-1]  # the traceback's exception line
  assert last.startswith('rwjax.errors.InputError: ') and "pip install 'rwjax[gcs]'" in last


def test_missing_bucket_or_refused_access_is_one_message_and_a_refused_save_stops_the_run(
    gcs_faults):
  with pytest.raises(InputError, match=r'the bucket gs://no-such-bucket does not exist'):
    trainer.train(tiny_config(), 'gs://no-such-bucket/run')
  with pytest.raises(InputError, match='is not a pre-training workdir'):
    checkpoint.read_config('gs://no-such-bucket/run')
  gcs_faults([{'method': 'POST', 'contains': 'denied/', 'status': 403, 'times': -1},
              {'method': 'GET', 'contains': 'denied/', 'status': 403, 'times': -1}])
  with pytest.raises(InputError, match=r'cannot write to .*permission denied on gs://bucket; '
                     'grant .*objectAdmin'):
    trainer.train(tiny_config(), 'gs://bucket/denied/run')
  with pytest.raises(InputError, match=r'cannot read .*permission denied on gs://bucket; '
                     'grant .*objectViewer'):
    checkpoint.read_config('gs://bucket/denied/run')
  # From the second checkpoint on, every write is refused (as when access is revoked): the
  # run stops and keeps the last good checkpoint.
  gcs_faults([{'method': 'POST', 'contains': 'broken/checkpoints/2', 'status': 403,
               'times': -1}])
  with pytest.raises(checkpoint.SaveError, match=r'last good checkpoint \(step 1\) is kept'):
    trainer.train(tiny_config(steps=3, checkpoint_every=1), 'gs://bucket/broken')
  assert checkpoint.latest_step('gs://bucket/broken') == 1
  _, variables = checkpoint.load_for_eval('gs://bucket/broken')
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(variables['params']))


def _objects(prefix: str) -> dict:
  """{name under prefix: size} of every object under a gs:// prefix."""
  import fsspec  # pylint: disable=g-import-not-at-top
  fs, root = fsspec.core.url_to_fs(prefix)
  fs.invalidate_cache()
  return {p[len(root):].lstrip('/'): fs.size(p) for p in fs.find(root)}


def test_transient_save_errors_are_retried_and_a_damaged_checkpoint_is_set_aside(gcs_faults,
                                                                                 capfd):
  # The first three checkpoint writes answer 503 (backend error): the clients (tensorstore
  # for arrays, gcsfs for orbax's metadata) retry them and the run completes.
  gcs_faults([{'method': 'POST', 'contains': 'flaky/checkpoints/', 'status': 503, 'times': 3}])
  c = tiny_config(steps=2, checkpoint_every=1)
  assert int(trainer.train(c, 'gs://bucket/flaky').step) == 2
  assert gcs_faults(None)[0]['times'] == 0  # the errors were served
  assert checkpoint.latest_step('gs://bucket/flaky') == 2
  checkpoint.load_for_eval('gs://bucket/flaky')
  # Step 2's data files cut to half (a copy into the bucket that was killed).
  step2 = 'gs://bucket/flaky/checkpoints/2'
  for name in _objects(step2):
    if '/d/' in name:
      data = paths.read_bytes(f'{step2}/{name}')
      paths.write_atomic(f'{step2}/{name}', data[:len(data) // 2])
  damaged = _objects(step2)
  capfd.readouterr()
  c.train.steps = 3
  assert int(trainer.train(c, 'gs://bucket/flaky').step) == 3
  warnings = [l for l in capfd.readouterr().err.splitlines() if l.startswith('warning: ')]
  assert len(warnings) == 1, warnings
  assert warnings[0].startswith(
      'warning: checkpoint 2 in gs://bucket/flaky/checkpoints cannot be read (')
  assert warnings[0].endswith(
      'moved to gs://bucket/flaky/checkpoints_damaged/2, resuming from step 1')
  assert _objects('gs://bucket/flaky/checkpoints_damaged/2') == damaged  # every object kept
  assert checkpoint.latest_step('gs://bucket/flaky') == 3
  _, variables = checkpoint.load_for_eval('gs://bucket/flaky')
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(variables['params']))
