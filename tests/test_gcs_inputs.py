"""gs:// inputs and outputs against the Cloud Storage emulator (gcs_emulator): movies, interval
files and image folders read from a bucket; `python -m rwjax.waves` outputs and the experiment's
run directories and report written to one. Files are put and read back with gcsfs itself
(`_fs()`); what rwjax reads is compared with the planted arrays and with the local files."""

import io
import json
import os
import runpy

import h5py
import numpy as np
import pytest
from PIL import Image
import scipy.io
import tifffile

from rwjax import experiment
from rwjax.experiment import report as report_lib
from rwjax import paths
from rwjax import schema as S
from rwjax.data import sources as image_sources
from rwjax.errors import InputError
from rwjax.ssl import trainer
from rwjax.waves import cli as waves_cli
from rwjax.waves import dataset
from rwjax.waves import movie as movie_io
from rwjax.waves import readers

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fs():
  import gcsfs  # pylint: disable=g-import-not-at-top
  return gcsfs.GCSFileSystem()


def _put(local_dir, url):
  """Every file under local_dir to url/..., with gcsfs."""
  fs = _fs()
  for base, _, files in os.walk(local_dir):
    for name in files:
      rel = os.path.relpath(os.path.join(base, name), local_dir)
      fs.pipe(f'{url}/{rel}', open(os.path.join(base, name), 'rb').read())
  fs.invalidate_cache()


def _get(url) -> bytes:
  fs = _fs()
  fs.invalidate_cache()
  return fs.cat(url)


def _planted(t=12, h=8, w=8, seed=0):
  return np.random.default_rng(seed).normal(size=(t, h, w)).astype(np.float32)


def test_saved_movie_and_labels_on_a_bucket_read_as_locally(gcs_emulator, tmp_path,
                                                           monkeypatch):
  frames = np.random.default_rng(1).uniform(size=(2, 20, 16, 16)).astype(np.float32)
  labels = np.repeat(np.arange(4), 10).reshape(2, 20).astype(np.int32)
  meta = {'model': 'lansdell', 'frame_dt': 0.1, 'threshold': 0.5}
  local = str(tmp_path / 'saved')
  movie_io.save_movie(local, frames, labels, meta)
  movie_io.save_movie('gs://bucket/saved', frames, labels, meta)
  for name in ('movie.npy', 'labels.npy', 'meta.json'):
    assert _get(f'gs://bucket/saved/{name}') == open(os.path.join(local, name), 'rb').read()
  np.testing.assert_array_equal(np.load(io.BytesIO(_get('gs://bucket/saved/movie.npy'))), frames)

  for path in ('gs://bucket/saved', 'gs://bucket/saved/movie.npy'):
    np.testing.assert_array_equal(movie_io.load_movie(path), frames)
    assert movie_io.load_meta(path) == meta
    np.testing.assert_array_equal(readers.load_any(path), frames)

  # The trainer's file source (data.movie, data.labels) gets the same arrays as locally.
  seen = []
  real = trainer.sources.make_file_source
  monkeypatch.setattr(trainer.sources, 'make_file_source',
                      lambda m, l: (seen.append((np.asarray(m), np.asarray(l))), real(m, l))[1])
  for where in (local, 'gs://bucket/saved'):
    c = runpy.run_path(os.path.join(_ROOT, 'tests', 'configs', 'tiny_pretrain.py'))['get_config']()
    c.data.source, c.data.movie_format = 'file', 'saved'
    c.data.movie, c.data.labels = f'{where}/movie.npy', f'{where}/labels.npy'
    c.data.frame_separation = 1
    trainer.build_source(c)
  assert len(seen) == 2
  np.testing.assert_array_equal(seen[0][0], seen[1][0])
  np.testing.assert_array_equal(seen[1][1], labels)


def _h5(path, datasets: dict, **kwargs):
  with h5py.File(path, 'w', **kwargs) as f:
    for name, value in datasets.items():
      f[name] = value


# Each format's extension and writer of frames f32[T, H, W] (the format's own library).
FORMATS = {
    'npy': ('.npy', np.save),
    'npz': ('.npz', lambda path, x: np.savez(path, movie=x)),
    'tiff': ('.tif', tifffile.imwrite),
    'hdf5': ('.h5', lambda path, x: _h5(path, {'data/movie': x})),
    'mat5': ('.mat', lambda path, x: scipy.io.savemat(path, {'V': x})),
    # MATLAB v7.3: HDF5 after a 512-byte user block, axes reversed.
    'mat73': ('.mat', lambda path, x: _h5(path, {'V': np.ascontiguousarray(x.T)},
                                          userblock_size=512)),
}


@pytest.mark.parametrize('fmt', list(FORMATS))
def test_recorded_movie_on_a_bucket_reads_as_locally(gcs_emulator, tmp_path, fmt):
  frames = _planted(seed=len(fmt))
  ext, write = FORMATS[fmt]
  local, url = str(tmp_path / f'rec{ext}'), f'gs://bucket/recordings/{fmt}/rec{ext}'
  write(local, frames)
  _fs().pipe(url, open(local, 'rb').read())
  np.testing.assert_array_equal(readers.read_movie(url), frames)
  np.testing.assert_array_equal(readers.read_movie(url), readers.read_movie(local))
  with readers.open_movie(url) as m:
    assert m.shape == frames.shape
    np.testing.assert_array_equal(m.read(3, 7), frames[3:7])


@pytest.mark.parametrize('fmt', ['npy', 'hdf5'])
def test_frames_of_a_large_bucket_movie_are_read_without_fetching_the_file(gcs_emulator,
                                                                          tmp_path, fmt):
  # 13 MB: more than two of gcsfs's 5 MiB read-ahead blocks.
  frames = _planted(t=200, h=128, w=128, seed=3)
  ext, write = FORMATS[fmt]
  local, url = str(tmp_path / f'big{ext}'), f'gs://bucket/big/big{ext}'
  write(local, frames)
  _fs().pipe(url, open(local, 'rb').read())
  size = os.path.getsize(local)
  with readers.open_movie(url) as m:
    np.testing.assert_array_equal(m.read(100, 104), frames[100:104])
    fetched = m._counter._f.cache.total_requested_bytes  # bytes gcsfs asked the bucket for
  assert fetched < 0.5 * size, (fetched, size)


def test_recordings_folder_glob_and_intervals_on_a_bucket(gcs_emulator, tmp_path):
  folder = tmp_path / 'recs'
  folder.mkdir()
  movies = [_planted(t=30, h=8, w=8, seed=s) for s in (10, 11)]
  for i, x in enumerate(movies):
    x[5:9] += 4.0  # a wave
    np.save(folder / f'r{i}.npy', x)
  (folder / 'waves.csv').write_text('# start, end\n5, 9\n35, 39\n')  # frames over both
  _put(str(folder), 'gs://bucket/recs')
  assert readers.movie_paths('gs://bucket/recs', 'npy') == [
      'gs://bucket/recs/r0.npy', 'gs://bucket/recs/r1.npy']
  assert readers.movie_paths('gs://bucket/recs/r*.npy') == readers.movie_paths(
      'gs://bucket/recs', 'npy')
  np.testing.assert_array_equal(readers.read_intervals('gs://bucket/recs/waves.csv'),
                                [[5, 9], [35, 39]])
  kw = dict(out_size=4, fmt='npy', rotations=(90,), chunk_frames=7)
  remote = dataset.load_dataset('gs://bucket/recs', intervals='gs://bucket/recs/waves.csv', **kw)
  here = dataset.load_dataset(str(folder), intervals=str(folder / 'waves.csv'), **kw)
  np.testing.assert_array_equal(remote.movie, here.movie)
  np.testing.assert_array_equal(remote.labels, here.labels)
  assert remote.paths[:2] == ['gs://bucket/recs/r0.npy', 'gs://bucket/recs/r1.npy']
  assert (remote.labels[0, 5:9] == 0).all() and (remote.labels[1, 5:9] == 0).all()


def test_image_folder_on_a_bucket_gives_the_local_images(gcs_emulator, tmp_path):
  rng = np.random.default_rng(0)
  planted = {}
  for split, classes in (('train', ('cat', 'dog', 'frog')), ('test', ('cat', 'frog'))):
    for c in classes:
      (tmp_path / 'img' / split / c).mkdir(parents=True)
      for i in range(3):
        x = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        Image.fromarray(x).save(tmp_path / 'img' / split / c / f'{i}.png')
        planted.setdefault(split, []).append((c, x))
  (tmp_path / 'img' / 'train' / 'cat' / 'notes.txt').write_text('not an image')
  _put(str(tmp_path / 'img'), 'gs://bucket/img')
  for split in ('train', 'test'):
    images, labels, names = image_sources.load_images('folder:gs://bucket/img', split)
    assert names == ['cat', 'dog', 'frog']
    np.testing.assert_array_equal(images, np.stack([x for _, x in planted[split]]))
    assert [names[i] for i in labels] == [c for c, _ in planted[split]]
    local = image_sources.load_images(f'folder:{tmp_path / "img"}', split, max_examples=4)
    remote = image_sources.load_images('folder:gs://bucket/img', split, max_examples=4)
    np.testing.assert_array_equal(remote[0], local[0])
    np.testing.assert_array_equal(remote[1], local[1])


def test_a_missing_bucket_input_is_one_message_naming_it(gcs_emulator, gcs_faults):
  cases = [
      (lambda: readers.read_movie('gs://bucket/nothing/rec.tif'),
       r"movie file 'gs://bucket/nothing/rec\.tif' does not exist"),
      (lambda: readers.read_movie('gs://no-such-bucket/rec.h5'),
       r"movie file 'gs://no-such-bucket/rec\.h5' does not exist"),
      (lambda: movie_io.load_movie('gs://bucket/nothing'),
       r"movie file 'gs://bucket/nothing' does not exist"),
      (lambda: readers.read_intervals('gs://bucket/nothing/waves.npy'),
       r"interval file 'gs://bucket/nothing/waves\.npy' does not exist"),
      (lambda: readers.movie_paths('gs://bucket/nothing/*.npy'),
       r"the pattern 'gs://bucket/nothing/\*\.npy' matches no file"),
      (lambda: image_sources.load_images('folder:gs://bucket/nothing', 'train'),
       r"image folder 'gs://bucket/nothing' does not exist"),
      (lambda: waves_cli.main(['stats', '--movie', 'gs://bucket/nothing.npy']),
       r"'gs://bucket/nothing\.npy' does not exist"),
  ]
  for call, message in cases:
    with pytest.raises(InputError, match=message):
      call()
  # A damaged file on the bucket: the reader's own message, as for a local file.
  _fs().pipe('gs://bucket/bad/movie.npy', b'not a numpy file')
  with pytest.raises(InputError, match=r"cannot read 'gs://bucket/bad/movie\.npy' as a \.npy"):
    movie_io.load_movie('gs://bucket/bad')
  with pytest.raises(InputError, match=r"'gs://bucket/bad/movie\.npy' is not a \.npy file"):
    readers.read_movie('gs://bucket/bad/movie.npy')
  _fs().pipe('gs://bucket/denied/rec.npy', b'x' * 200)
  gcs_faults([{'method': 'GET', 'contains': 'denied/', 'status': 403, 'times': -1}])
  with pytest.raises(InputError, match=r"cannot read 'gs://bucket/denied/rec\.npy': permission "
                     'denied on gs://bucket'):
    readers.read_movie('gs://bucket/denied/rec.npy')


SIM = ['simulate', '--size', '16', '--seconds', '3', '--warmup', '0', '--gif-seconds', '2',
       '--param', 'spont_prob=0.05']


def test_waves_simulate_stats_and_preview_into_a_bucket_and_not_a_missing_one(gcs_emulator,
                                                                               tmp_path, capsys):
  local = str(tmp_path / 'sim')
  waves_cli.main(SIM + ['--out', local])
  waves_cli.main(SIM + ['--out', 'gs://bucket/sim'])
  for name in ('movie.npy', 'labels.npy', 'preview.gif'):
    assert _get(f'gs://bucket/sim/{name}') == open(os.path.join(local, name), 'rb').read(), name
  assert json.loads(_get('gs://bucket/sim/meta.json')) == json.load(
      open(os.path.join(local, 'meta.json')))
  capsys.readouterr()
  waves_cli.main(['stats', '--movie', 'gs://bucket/sim', '--json'])
  waves_cli.main(['stats', '--movie', local, '--json'])
  remote, here = capsys.readouterr().out.strip().splitlines()
  assert json.loads(remote) == json.loads(here)
  waves_cli.main(['preview', '--movie', 'gs://bucket/sim/movie.npy', '--out',
                  'gs://bucket/previews/p.gif', '--seconds', '1'])
  waves_cli.main(['preview', '--movie', local, '--out', str(tmp_path / 'p.gif'),
                  '--seconds', '1'])
  assert _get('gs://bucket/previews/p.gif') == (tmp_path / 'p.gif').read_bytes()
  assert Image.open(io.BytesIO(_get('gs://bucket/previews/p.gif'))).format == 'GIF'
  with pytest.raises(InputError, match='the bucket gs://no-such-bucket does not exist'):
    waves_cli.main(SIM[:4] + ['1e9', '--out', 'gs://no-such-bucket/sim'])  # would run forever


def _tiny(**overrides):
  c = runpy.run_path(os.path.join(_ROOT, 'configs', 'experiment.py'))['get_config']('tiny')
  for k, v in overrides.items():
    S.put(c, k, v)
  return c


def _cheap(plan):
  """Only rwjax's probes, of two layers on a few digits."""
  e = plan.evaluate
  for name in [n for n in e.evals if n != 'probes']:
    del e.evals[name]
  p = e.evals.probes
  p.layers, p.exemplar.transforms, p.classification.shifts = 'stem,pooled', (), ()
  p.classification.max_train, p.classification.max_test, p.logistic.steps = 100, 50, 20
  return plan


def test_mea_dataset_and_experiment_recorded_movie_from_and_into_a_bucket(gcs_emulator,
                                                                          tmp_path):
  # Planted MEA spike files (a front sweeping the columns), as tests/test_experiment.py's.
  (tmp_path / 'mea').mkdir()
  rng = np.random.default_rng(0)
  rows, cols = np.meshgrid(np.arange(64), np.arange(64), indexing='ij')
  rows, cols = rows.ravel(), cols.ravel()
  times = [np.sort(c * 0.05 + 1.0 + rng.uniform(0, 0.1, 3)) for c in cols]
  for age in (5, 12):
    _h5(tmp_path / 'mea' / f'p{age}.h5', {
        'epos': np.stack([rows, cols]).astype(np.float64) * 42.0,
        'sCount': np.full(rows.size, 3, np.int32), 'spikes': np.concatenate(times),
        'summary/duration': np.array([8.0]), 'meta/age': np.array([age])})
  _put(str(tmp_path / 'mea'), 'gs://bucket/mea')
  args = ['mea-dataset', '--segment-s', '4', '--ages', '5:5']
  waves_cli.main(args + ['--folder', 'gs://bucket/mea', '--out', 'gs://bucket/mea_movie'])
  waves_cli.main(args + ['--folder', str(tmp_path / 'mea'), '--out', str(tmp_path / 'out')])
  for name in ('movie.npy', 'labels.npy'):
    assert _get(f'gs://bucket/mea_movie/{name}') == (tmp_path / 'out' / name).read_bytes()
  meta = json.loads(_get('gs://bucket/mea_movie/meta.json'))
  assert [s['file'] for s in meta['sources']] == ['gs://bucket/mea/p5.h5']

  plan = experiment.make_plan(_tiny(recordings='gs://bucket/mea'), 'gs://bucket/exp_rec')
  assert plan.recordings == ['gs://bucket/mea/p5.h5']
  assert list(plan.rejected) == ['gs://bucket/mea/p12.h5']
  experiment.write_recorded(plan)
  local = experiment.make_plan(_tiny(recordings=str(tmp_path / 'mea')), str(tmp_path / 'w'))
  experiment.write_recorded(local)
  for name in ('movie.npy', 'labels.npy'):
    assert _get(f'gs://bucket/exp_rec/data/recorded/{name}') == open(
        os.path.join(local.paths['{recorded}'], name), 'rb').read()
  settings = json.loads(_get('gs://bucket/exp_rec/data/recorded/settings.json'))
  assert settings['recordings'] == plan.recordings


def test_experiment_run_directory_and_report_in_a_bucket(gcs_emulator, tmp_path):
  config = _tiny(only='random_init', seeds=1)
  plan = _cheap(experiment.make_plan(config, 'gs://bucket/exp'))
  (run,) = plan.runs
  assert run.dir == 'gs://bucket/exp/runs/random_init/seed0'
  assert not run.finished
  experiment.execute(plan, run)
  assert run.finished
  assert json.loads(_get(run.dir + '/run.json')) == run.record
  report = json.loads(_get(run.dir + '/eval/step0/report.json'))
  row = next(r for r in report['rows'] if (r['task'], r['layer']) == ('digits', 'pooled'))
  assert 0 <= row['pretrained']['mean'] <= 1
  assert 'starting:' in _get(run.dir + '/log.txt').decode()  # the trainer's log, uploaded
  timing = json.loads(_get(run.dir + '/timing.json'))
  experiment.execute(plan, run)  # finished: nothing is redone
  assert json.loads(_get(run.dir + '/timing.json')) == timing

  results = experiment.collect(plan)
  assert results['random_init'][0][0] == experiment.measures(report)
  other = _cheap(experiment.make_plan(_tiny(only='random_init', seeds=1,
                                            **{'pretrain.model.width': 8}), 'gs://bucket/exp'))
  with pytest.raises(InputError, match='holds runs of another config'):
    experiment.check_existing(other)
  with pytest.raises(InputError, match='the bucket gs://no-such-bucket does not exist'):
    experiment.run(config, 'gs://no-such-bucket/exp')

  # The report in the bucket is the report written locally from the same results (and a
  # planted trained arm, for the figures).
  m = results['random_init'][0][0]
  results['movie_pairs'] = {0: {0: m, plan.steps[-1]: {k: v + 0.05 for k, v in m.items()}}}
  machine = {'platform': 'test'}
  local = _cheap(experiment.make_plan(config, str(tmp_path / 'exp')))
  os.makedirs(local.runs[0].dir)
  with open(os.path.join(local.runs[0].dir, 'timing.json'), 'wb') as f:
    f.write(_get(run.dir + '/timing.json'))
  report_lib.write(plan, results, machine, 1.0)
  report_lib.write(local, results, machine, 1.0)
  remote_md = _get('gs://bucket/exp/report.md').decode()
  assert remote_md == (tmp_path / 'exp' / 'report.md').read_text().replace(
      str(tmp_path / 'exp'), 'gs://bucket/exp')
  assert json.loads(_get('gs://bucket/exp/results.json'))['results'] == json.loads(
      (tmp_path / 'exp' / 'results.json').read_text())['results']
  figures = sorted(os.listdir(tmp_path / 'exp' / 'figures'))
  assert figures and sorted(p.rsplit('/', 1)[1] for p in paths.glob(
      'gs://bucket/exp/figures/*.png')) == figures
  for name in figures:
    assert _get(f'gs://bucket/exp/figures/{name}') == (tmp_path / 'exp' / 'figures' /
                                                        name).read_bytes()
