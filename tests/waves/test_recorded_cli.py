"""`python -m rwjax.waves stats / preview` on recordings in any supported format."""

import json

import h5py
import numpy as np
import pytest
import scipy.io
import tifffile
from PIL import Image

from rwjax.errors import cli_main
from rwjax.waves.cli import main

PIXEL_MM, FRAME_DT, STEP_PX = 0.01, 0.1, 1.5  # a front moving 1.5 px per frame: 0.15 mm/s


def _front_movie():
  """A planar front sweeping x at STEP_PX pixels per frame over a rising baseline."""
  t = np.arange(300, dtype=np.float32)[:, None, None]
  xx = np.arange(32)[None, None, :]
  x = np.broadcast_to(100 + 0.05 * t, (300, 32, 32)).copy()
  for k in range(20):
    x[100 + k] += 50 * (np.abs(xx[0] - k * STEP_PX) < 2)
  return x


def _stats(capsys, *flags):
  main(['stats', *flags, f'--pixel-mm={PIXEL_MM}', f'--frame-dt={FRAME_DT}', '--json'])
  return json.loads(capsys.readouterr().out)


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
  summary = _stats(capsys, f'--movie={path}', '--threshold=20', '--background-s=10', *flags)
  assert summary['n_waves'] == 1
  assert summary['speed_mm_s_median'] == pytest.approx(STEP_PX * PIXEL_MM / FRAME_DT, rel=1e-6)
  assert summary['duration_s_median'] == pytest.approx(20 * FRAME_DT)
  raw = _stats(capsys, f'--movie={path}', '--threshold=110', *flags)
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
