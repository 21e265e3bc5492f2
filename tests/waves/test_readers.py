"""waves.readers: every format reads back what was written, lazily; bad files -> InputError."""

import os

import h5py
import numpy as np
import pytest
import scipy.io
import tifffile

from rwjax.errors import InputError
from rwjax.waves import readers

T, H, W = 12, 8, 6  # H != W: a swapped axis shows


def _movie(t=T, h=H, w=W, seed=0):
  return np.random.default_rng(seed).integers(0, 4000, (t, h, w)).astype(np.uint16)


def _mat73(path, arrays, chunks=True):
  """A MATLAB v7.3 file as MATLAB writes one: a 512-byte header, then HDF5 holding each
  column-major array, i.e. with its axes reversed (numpy's x.T has x's F-order bytes)."""
  with h5py.File(path, 'w', userblock_size=512) as f:
    for name, x in arrays.items():
      f.create_dataset(name, data=np.ascontiguousarray(x.T), chunks=chunks)
      f[name].attrs['MATLAB_class'] = np.bytes_('double')
  with open(path, 'r+b') as f:
    f.write(b'MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Tue Dec  1 08:00:00 2026 '
            b'HDF5 schema 1.00 .'.ljust(116) + b'\0' * 8 + b'\x00\x02IM')


def _write(fmt, path, x):
  if fmt == 'tiff':
    tifffile.imwrite(path, x)
  elif fmt == 'npy':
    np.save(path, x)
  elif fmt == 'npy-fortran':
    np.save(path, np.asfortranarray(x))
  elif fmt == 'npz':
    np.savez_compressed(path, movie=x, dt=np.float32(0.1))
  elif fmt == 'hdf5':
    with h5py.File(path, 'w') as f:
      f.create_dataset('rec/frames', data=x, chunks=(1, *x.shape[1:]))
      f.create_dataset('rec/times', data=np.arange(len(x)))
  elif fmt == 'mat5':
    scipy.io.savemat(path, {'V': x.astype(np.float64), 'fs': 10.0})
  elif fmt == 'mat73':
    _mat73(path, {'V': x.astype(np.float64), 'fs': np.array([[10.0]])})
  return path


EXT = {'tiff': '.tif', 'npy': '.npy', 'npy-fortran': '.npy', 'npz': '.npz', 'hdf5': '.h5',
       'mat5': '.mat', 'mat73': '.mat'}
KEY = {'npz': 'movie', 'hdf5': 'rec/frames'}


@pytest.mark.parametrize('fmt', sorted(EXT))
def test_every_format_reads_back_what_was_written_and_a_damaged_file_fails(tmp_path, fmt):
  x, key = _movie(t=40), KEY.get(fmt, '')
  path = _write(fmt, str(tmp_path / f'rec{EXT[fmt]}'), x)
  with readers.open_movie(path, key=key) as m:
    assert m.shape == (40, H, W)
    np.testing.assert_array_equal(m.read(), x)
    np.testing.assert_array_equal(m.read(3, 7), x[3:7])
    assert m.read().dtype == np.float32
  np.testing.assert_array_equal(readers.read_movie(path, key=key), x)
  whole = open(path, 'rb').read()
  junk = np.random.default_rng(2).integers(0, 256, 4000).astype(np.uint8).tobytes()
  for damaged, message in ((whole[:int(len(whole) * 0.6)], 'damaged or truncated|is truncated'),
                           (b'', r'empty \(0 bytes\)'), (junk, None)):
    with open(path, 'wb') as f:
      f.write(damaged)
    with pytest.raises(InputError, match=message) as e:
      readers.read_movie(path, key=key)
    assert path in str(e.value)


def test_hdf5_in_any_axis_order_without_a_key_or_extension(tmp_path):
  # MATLAB's H x W x T with axes='HWT' (v5 and v7.3) is read in test_a_suspicious_axis_order_*.
  x = _movie()
  with h5py.File(tmp_path / 'x.data', 'w') as f:
    f['m'] = np.transpose(x, (2, 0, 1))
  got = readers.read_movie(str(tmp_path / 'x.data'), fmt='hdf5', axes='WTH')
  np.testing.assert_array_equal(got, x)


@pytest.mark.parametrize('fmt', ['tiff', 'npy', 'hdf5', 'mat73'])
def test_reading_a_few_frames_reads_only_their_bytes(tmp_path, fmt):
  n, size = 200, 32
  x = np.random.default_rng(1).random((n, size, size), dtype=np.float32)
  path, axes = str(tmp_path / f'big{EXT[fmt]}'), 'THW'
  if fmt == 'mat73':  # MATLAB's usual H x W x T: frames are contiguous in the HDF5 file
    axes = 'HWT'
    _mat73(path, {'V': np.transpose(x, (1, 2, 0)).astype(np.float64)}, chunks=(1, size, size))
  else:
    _write(fmt, path, x)
  frame_bytes = size * size * (8 if fmt == 'mat73' else 4)
  with readers.open_movie(path, key=KEY.get(fmt, ''), axes=axes) as m:
    opened = m.bytes_read
    np.testing.assert_array_equal(m.read(100, 104), x[100:104])
    few = m.bytes_read - opened
    m.read()
    everything = m.bytes_read - opened - few
  # 4 frames' bytes plus headers / chunk indices (HDF5: one chunk per frame); the whole
  # movie is 200 frames.
  assert 4 * frame_bytes <= few < 6 * frame_bytes, (few, frame_bytes)
  assert opened < 0.1 * os.path.getsize(path)
  assert everything >= 0.9 * n * frame_bytes  # the counter sees every read (HDF5 caches some)


@pytest.mark.parametrize('fmt', ['npy', 'npy-fortran', 'npz', 'hdf5', 'mat5', 'mat73'])
def test_a_suspicious_axis_order_is_one_warning_line(tmp_path, capsys, fmt):
  # Every format with an axis option, written T x H x W and H x W x T (for .mat: MATLAB's
  # size(V)); read with the default 'THW', the second gives 6 frames of 6 x 20.
  x, key = _movie(t=20, h=6, w=6), KEY.get(fmt, '')
  thw = _write(fmt, str(tmp_path / f'thw{EXT[fmt]}'), x)
  np.testing.assert_array_equal(readers.read_movie(thw, key=key), x)
  assert capsys.readouterr().err == ''
  hwt = _write(fmt, str(tmp_path / f'hwt{EXT[fmt]}'), np.transpose(x, (1, 2, 0)))
  assert readers.read_movie(hwt, key=key).shape == (6, 6, 20)  # read as asked
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and hwt in err and '6 frames of 6x20' in err, err
  assert '--axes=HWT' in err and "data.recorded.axes='HWT'" in err
  np.testing.assert_array_equal(readers.read_movie(hwt, key=key, axes='HWT'), x)
  assert capsys.readouterr().err == ''


def test_the_paper_s_layouts_read_without_a_warning():
  # The paper's T x H x W .npy / .mat movies and TIFF stacks, MEA movies of 64x64 electrodes,
  # non-square frames no other order makes square (T > H, W): no warning. Too few: a warning.
  for shape in [(2000, 32, 32), (3600, 128, 128), (18000, 64, 64), (12, 8, 6), (64, 64, 64)]:
    assert readers.axes_warning('m.npy', 'THW', shape) is None
  assert 'if time is another axis' in readers.axes_warning('m.npy', 'THW', (10, 64, 64))


def test_movie_paths_lists_folders_globs_and_comma_lists(tmp_path):
  for name in ('b.tif', 'a.npy', 'notes.txt', 'c.mat'):
    (tmp_path / name).write_bytes(b'x')
  want = [str(tmp_path / n) for n in ('a.npy', 'b.tif', 'c.mat')]
  assert readers.movie_paths(str(tmp_path)) == want
  assert readers.movie_paths(str(tmp_path), 'tiff') == [want[1]]
  assert readers.movie_paths(f'{tmp_path}/*.tif,{tmp_path}/a.npy') == [want[1], want[0]]
  with pytest.raises(InputError, match='matches no file'):
    readers.movie_paths(f'{tmp_path}/*.h5')
  with pytest.raises(InputError, match='no movie files'):
    readers.movie_paths(' , ')
  (tmp_path / 'empty').mkdir()
  with pytest.raises(InputError, match='holds no movie files'):
    readers.movie_paths(str(tmp_path / 'empty'))


@pytest.mark.parametrize('fmt, key, listed', [
    ('npz', 'frames', "['movie', 'dt']"), ('hdf5', 'movie', "['rec', 'rec/frames'"),
    ('mat5', 'W', "['V', 'fs']"), ('mat73', 'W', "['V', 'fs']")])
def test_a_missing_variable_or_dataset_names_what_is_there(tmp_path, fmt, key, listed):
  path = _write(fmt, str(tmp_path / f'rec{EXT[fmt]}'), _movie())
  with pytest.raises(InputError, match=f"has no (array|dataset|variable) '{key}'") as e:
    readers.open_movie(path, key=key)
  assert path in str(e.value) and listed.replace("'rec', ", '') in str(e.value)


def test_ambiguous_key_wrong_dimensions_and_non_finite_values(tmp_path):
  np.savez(tmp_path / 'two.npz', a=_movie(), b=_movie())
  tifffile.imwrite(tmp_path / 'rgb.tif', np.zeros((3, 8, 8, 3), np.uint8), photometric='rgb')
  nan = _movie().astype(np.float32)
  nan[5, 2, 3] = np.nan
  for name, x in (('flat', np.zeros((5, 4), np.float32)), ('c', np.zeros((3, 4, 4), np.complex64)),
                  ('none', np.zeros((0, 4, 4), np.float32)), ('nan', nan)):
    np.save(tmp_path / f'{name}.npy', x)
  for name, x in (('four', np.zeros((2, 3, 4, 4))), ('none', np.zeros((0, 4, 4)))):
    with h5py.File(tmp_path / f'{name}.h5', 'w') as f:
      f['m'] = x
  no_frames = r'\(T, H, W\) = \(0, 4, 4\); need at least 1 frame'
  for name, kwargs, message in [
      ('two.npz', {}, r"holds arrays \['a', 'b'\]; name the movie"),
      ('flat.npy', {}, r"flat.npy': the movie has shape \(5, 4\) \(2 dimensions\); need 3"),
      ('four.h5', dict(key='m'), r'shape \(2, 3, 4, 4\) \(4 dimensions\)'),
      ('rgb.tif', {}, 'need grey frames'),
      ('c.npy', {}, 'complex64; need real numbers'),
      ('none.npy', {}, no_frames),  # files holding a movie of no frames
      ('none.h5', {}, no_frames),
      ('nope.tif', {}, 'does not exist'),
      ('two.zip', {}, 'cannot tell the movie format'),
      ('c.npy', dict(axes='TXY'), "permutation of 'THW'"),
  ]:
    with pytest.raises(InputError, match=message):
      readers.open_movie(str(tmp_path / name), **kwargs)
  with pytest.raises(InputError, match=r"nan.npy' contains NaN or infinite values \(first in "
                     r'frame 5\)'):
    readers.read_movie(str(tmp_path / 'nan.npy'))


def test_intervals_from_npy_csv_txt(tmp_path):
  np.save(tmp_path / 'w.npy', np.array([[10, 20], [3, 7]]))
  (tmp_path / 'w.csv').write_text('# start,end\n10,20\n3,7\n')
  (tmp_path / 'w.txt').write_text('10 20\n3.0\t7\n')
  for name in ('w.npy', 'w.csv', 'w.txt'):
    np.testing.assert_array_equal(readers.read_intervals(str(tmp_path / name)),
                                  [[3, 7], [10, 20]])


@pytest.mark.parametrize('content, message', [
    ('', r'empty \(0 bytes\)'), ('# nothing\n', 'lists no waves'),
    ('1,2,3\n4,5,6\n', r'shape \(2, 3\); need \[N, 2\]'), ('1.5,4\n', 'not whole frame numbers'),
    ('5,5\n', r'interval 0 \[5, 5\) is empty or reversed'), ('a,b\n', 'cannot read')])
def test_bad_interval_files(tmp_path, content, message):
  path = tmp_path / 'bad.csv'
  path.write_text(content)
  with pytest.raises(InputError, match=message) as e:
    readers.read_intervals(str(path))
  assert str(path) in str(e.value)
