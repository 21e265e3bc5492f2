"""`python -m rwjax.waves`: simulate -> files -> stats, bad input -> one error line, exit 2;
stats / preview on recordings in any supported format."""

import json
import os
import subprocess
import sys

import h5py
import jax
import numpy as np
import pytest
import scipy.io
import tifffile
from PIL import Image

from rwjax.errors import cli_main
from rwjax.waves import godfrey, lansdell, simulate, stats
from rwjax.waves.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli(*args):
  return subprocess.run([sys.executable, '-m', 'rwjax.waves', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=300)


@pytest.fixture(scope='module')
def simulated(tmp_path_factory):
  out = str(tmp_path_factory.mktemp('sim'))
  # 12 s: two 10 s chunks, the surplus dropped; 0.5 s warm-up: a remainder chunk.
  proc = cli('simulate', '--model=lansdell', '--size=16', '--seconds=12', '--batch=2',
             '--warmup=0.5', '--seed=1', '--param', 'diff=0.01', '--param=b=4', f'--out={out}')
  assert proc.returncode == 0, proc.stderr
  return out, proc


def test_simulate_writes_movie_labels_meta_gif(simulated):
  out, proc = simulated
  frames = np.load(os.path.join(out, 'movie.npy'))
  labels = np.load(os.path.join(out, 'labels.npy'))
  assert frames.dtype == np.float32 and frames.shape == (2, 120, 16, 16)
  assert labels.dtype == np.int32 and labels.shape == (2, 120)
  meta = json.load(open(os.path.join(out, 'meta.json')))
  assert meta['model'] == 'lansdell' and meta['threshold'] == -60.0
  assert meta['params']['size'] == 16 and meta['shape'] == [2, 120, 16, 16]
  want = stats.wave_stats(frames, threshold=meta['threshold'], frame_dt=meta['frame_dt'],
                          pixel_mm=meta['pixel_mm'], min_size=meta['min_size'])
  np.testing.assert_array_equal(labels, want.frame_labels)
  with Image.open(os.path.join(out, 'preview.gif')) as gif:
    durations = []  # Pillow merges identical successive frames, adding their durations
    for i in range(gif.n_frames):
      gif.seek(i)
      durations.append(gif.info['duration'])
  assert sum(durations) == 60 * 50  # 120 frames at stride 2, 20 fps: 4x real time
  assert 'coverage' in proc.stdout and 'simulate: 100.0% (25/25 retina-s)' in proc.stderr


def test_simulate_godfrey(tmp_path):
  main(['simulate', '--model=godfrey', '--size=16', '--seconds=1', '--warmup=0',
        f'--out={tmp_path}'])
  assert np.load(tmp_path / 'movie.npy').shape == (1, 10, 16, 16)
  meta = json.loads((tmp_path / 'meta.json').read_text())
  assert meta['model'] == 'godfrey' and meta['threshold'] == godfrey.THRESHOLD


def test_write_movie_is_the_model_run_from_rest_and_what_the_cli_writes(simulated, tmp_path):
  # The library call (rwjax.demo, rwjax.experiment) against the model's own functions
  # run in one piece (the library runs 10 s chunks), and against the CLI's files, with
  # parameters overridden (both --param forms).
  cli_out, proc = simulated
  out = simulate.write_movie(str(tmp_path), size=16, seconds=12, warmup=0.5, batch=2,
                             seed=1, params={'diff': 0.01, 'b': 4}, progress=None)
  p = lansdell.Params(size=16, diff=0.01, b=4.0)
  state = lansdell.warmup(lansdell.init(jax.random.PRNGKey(1), 2, p), 0.5, p)
  want = np.asarray(lansdell.advance(state, 120, p)[1])
  frames = np.load(tmp_path / 'movie.npy')
  assert frames.shape == (2, 120, 16, 16) and out['shape'] == [2, 120, 16, 16]
  np.testing.assert_allclose(frames, want, atol=1e-3)
  for name in ('movie.npy', 'labels.npy', 'meta.json'):
    assert (tmp_path / name).read_bytes() == open(os.path.join(cli_out, name), 'rb').read()
  assert out['params']['b'] == 4.0 and 'movie (2, 120, 16, 16)' in proc.stdout


def test_stats_json_table_and_bad_input_in_a_subprocess(simulated, tmp_path, capsys):
  out, _ = simulated
  main(['stats', f'--movie={out}/movie.npy', '--json'])
  summary = json.loads(capsys.readouterr().out)
  assert {'speed_mm_s_median', 'iwi_s_median', 'duration_s_median', 'area_mm2_median',
          'coverage', 'n_waves'} <= set(summary)
  assert summary['threshold'] == -60.0 and summary['n_frames'] == 120
  main(['stats', f'--movie={out}', '--threshold=-1000'])  # everything is "active"
  table = capsys.readouterr().out
  assert '2 waves in 2 retina(s)' in table and 'coverage 1.000' in table
  proc = cli(*_fill(['stats', '--movie=BAD_DTYPE'], tmp_path))
  assert proc.returncode == 2
  assert proc.stderr.startswith('error: ') and proc.stderr.count('\n') == 1, proc.stderr
  assert 'dtype complex64' in proc.stderr and 'Traceback' not in proc.stderr


BAD_MOVIES = {'BAD_DTYPE': np.zeros((3, 4, 4), np.complex64),  # integer recordings are fine
              'BAD_SHAPE': np.zeros((4, 4), np.float32)}
BAD_INPUT = [
    (['simulate', '--model=nope', '--out=OUT'], 'nope'),
    (['simulate', '--size=0', '--out=OUT'], 'size'),
    (['simulate', '--seconds=-1', '--out=OUT'], 'seconds'),
    (['simulate', '--seconds=0.01', '--out=OUT'], 'one frame'),
    (['simulate', '--batch=0', '--out=OUT'], 'batch'),
    (['simulate', '--min-size=0', '--out=OUT'], 'min-size'),
    (['simulate', '--param=nope=1', '--out=OUT'], "'nope=1': need NAME=VALUE"),
    (['simulate', '--param=size=8', '--out=OUT'], '--size sets the size'),
    (['simulate', '--param=diff=fast', '--out=OUT'], "'fast' is not a float"),
    (['stats', '--movie=/does/not/exist.npy'], 'does not exist'),
    (['convert', '--mea=/does/not/exist.h5', '--out=OUT'], 'does not exist'),
    (['convert', '--mea=BAD_SHAPE', '--out=OUT'], 'not a readable HDF5 file'),
    (['stats', '--movie=BAD_DTYPE'], 'dtype complex64'),
    (['stats', '--movie=BAD_SHAPE'], 'shape'),
    (['stats', '--movie=BAD_SHAPE', '--model=nope'], 'shape'),
]


def _fill(args, tmp_path):
  """Replaces BAD_* by bad movie files and OUT by an output directory in tmp_path."""
  for name, array in BAD_MOVIES.items():
    np.save(tmp_path / f'{name}.npy', array)
    args = [a.replace(name, str(tmp_path / f'{name}.npy')) for a in args]
  return [a.replace('OUT', str(tmp_path / 'out')) for a in args]


@pytest.mark.parametrize('args, match', BAD_INPUT)
def test_bad_input_is_one_error_line(tmp_path, capsys, args, match):
  # In-process (a subprocess per case would spend seconds importing jax); the
  # subprocess check in test_stats_json_table_and_bad_input_in_a_subprocess is end to end.
  with pytest.raises(SystemExit) as exit_info:
    cli_main(lambda: main(_fill(args, tmp_path)))
  err = capsys.readouterr().err
  assert exit_info.value.code == 2
  assert err.startswith('error: ') and err.count('\n') == 1 and match in err, err
  assert not (tmp_path / 'out').exists()


def test_argparse_errors_exit_2(capsys):
  with pytest.raises(SystemExit) as exit_info:
    main(['simulate', '--size=big', '--out=x'])
  assert exit_info.value.code == 2 and 'invalid int value' in capsys.readouterr().err


PIXEL_MM, FRAME_DT, STEP_PX = 0.01, 0.1, 1.5  # a front moving 1.5 px per frame: 0.15 mm/s


def _front_movie():
  """A planar front sweeping x at STEP_PX pixels per frame over a rising baseline."""
  t = np.arange(300, dtype=np.float32)[:, None, None]
  xx = np.arange(32)[None, None, :]
  x = np.broadcast_to(100 + 0.05 * t, (300, 32, 32)).copy()
  for k in range(20):
    x[100 + k] += 50 * (np.abs(xx[0] - k * STEP_PX) < 2)
  return x


@pytest.mark.parametrize('fmt', ['tif', 'h5', 'mat', 'npz'])
def test_stats_measures_a_planted_front_in_any_format(tmp_path, capsys, fmt):
  x = _front_movie()
  path = str(tmp_path / f'rec.{fmt}')
  flags = []
  if fmt == 'tif':
    tifffile.imwrite(path, x)
  elif fmt == 'h5':
    with h5py.File(path, 'w') as f:
      f['imaging/F'] = x
    flags = ['--key=imaging/F']
  elif fmt == 'mat':
    scipy.io.savemat(path, {'movie': np.transpose(x, (1, 2, 0))})  # MATLAB H x W x T
    flags = ['--key=movie', '--axes=HWT']
  else:
    np.savez(path, F=x)
  # The baseline drifts from 100 to 115: without subtracting it nothing stays below 110.
  flags += [f'--movie={path}', f'--pixel-mm={PIXEL_MM}', f'--frame-dt={FRAME_DT}', '--json']
  main(['stats', '--threshold=20', '--background-s=10'] + flags)
  summary = json.loads(capsys.readouterr().out)
  assert summary['n_waves'] == 1
  assert summary['speed_mm_s_median'] == pytest.approx(STEP_PX * PIXEL_MM / FRAME_DT, rel=1e-6)
  assert summary['duration_s_median'] == pytest.approx(20 * FRAME_DT)
  main(['stats', '--threshold=110'] + flags)
  raw = json.loads(capsys.readouterr().out)
  assert raw['frames_with_wave'] > 0.3  # the drift, not the wave


def test_preview_writes_a_gif_of_any_movie_and_stats_needs_its_units(tmp_path, capsys):
  x = _front_movie()
  tifffile.imwrite(tmp_path / 'rec.tif', x)
  main(['preview', f'--movie={tmp_path}/rec.tif', f'--out={tmp_path}/p.gif', '--frame-dt=0.1'])
  assert 'wrote' in capsys.readouterr().out
  with Image.open(tmp_path / 'p.gif') as gif:
    assert gif.size == (256, 256)  # 32 px upscaled 8x
    total = 0
    for i in range(gif.n_frames):  # Pillow merges identical frames, adding their durations
      gif.seek(i)
      total += gif.info['duration']
  assert total == 150 * 50  # 300 frames at stride 2 (4x real time at 20 fps), 50 ms each
  # A v7.3 .mat holding V (MATLAB T x H x W: HDF5 reversed), 10 s shown.
  with h5py.File(tmp_path / 'v.mat', 'w', userblock_size=512) as f:
    f['V'] = np.ascontiguousarray(x.T)
  main(['preview', f'--movie={tmp_path}/v.mat', f'--out={tmp_path}/v.gif', '--seconds=10'])
  assert '50 frames of 32x32' in capsys.readouterr().out
  with pytest.raises(SystemExit) as e:
    cli_main(lambda: main(['stats', f'--movie={tmp_path}/rec.tif']))
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert "give ['--threshold', '--frame-dt', '--pixel-mm']" in err and 'rec.tif' in err
  (tmp_path / 'bad.tif').write_bytes(b'II*\x00' + b'\xff' * 50)
  with pytest.raises(SystemExit):
    cli_main(lambda: main(['stats', f'--movie={tmp_path}/bad.tif', '--threshold=1',
                           '--frame-dt=0.1', '--pixel-mm=0.01']))
  assert 'bad.tif' in capsys.readouterr().err
