"""Recorded wave movies in the formats labs use: TIFF, NumPy, HDF5, MATLAB.

`open_movie(path)` opens one recording without reading its frames: a `Movie` with `shape`
(T, H, W) whose `read(t0, t1)` returns frames t0..t1-1 as f32[t1 - t0, H, W]. Headers (format,
variable, shape, dtype, whether the file is complete) are checked when the file is opened, so
a bad file fails before anything is computed. Formats: FORMATS, EXTENSIONS and docs/training.md,
'Recorded calcium-imaging movies'. TIFF pages, C-order time-first .npy frames and HDF5 / MATLAB
v7.3 hyperslabs are read lazily, on a bucket too (rwjax.paths.open_read, ranged reads); any
other .npy is memory-mapped locally and read whole from a bucket; .npz and MATLAB v5/v4 are
read whole.

`axes` names the stored axes: 'THW' (default) or a permutation such as 'HWT'; for .mat files
it is MATLAB's `size(V)` order in both versions (a v7.3 file's HDF5 dataset holds the
column-major array with its axes reversed). A movie whose axis order looks wrong
(`axes_warning`) is read as asked, with one warning line on stderr naming the order to try.

`read_intervals`: [start, end) wave intervals, one wave per row, from .npy (int [N, 2]) or
.csv / .txt (two numbers per line, comma or whitespace separated, '#' comments).

Every problem is one `InputError` naming the file: missing, empty, truncated or corrupt,
missing variable or dataset, wrong number of dimensions, unsupported dtype. Non-finite values
are found when the frames are read (`check_finite`).
"""

import contextlib
import io
import logging
import os
import sys
import warnings
import zipfile
import zlib

import numpy as np

from rwjax import paths
from rwjax.errors import InputError

FORMATS = ('tiff', 'npy', 'npz', 'hdf5', 'mat')
EXTENSIONS = {'.tif': 'tiff', '.tiff': 'tiff', '.npy': 'npy', '.npz': 'npz', '.h5': 'hdf5',
              '.hdf5': 'hdf5', '.hdf': 'hdf5', '.mat': 'mat'}
MAT_KEY = 'V'  # the variable of the paper's simulated movies (rw_model_72k_V.mat)


class CountingFile(io.RawIOBase):
  """A read-only binary file that counts the bytes read through it (`bytes_read`)."""

  def __init__(self, path: str, readahead: bool = False):
    super().__init__()
    self._f = (paths.open_read(path, readahead) if paths.is_remote(path)  # ranged reads
               else open(path, 'rb', buffering=0))  # pylint: disable=consider-using-with
    self.bytes_read = 0

  def readable(self):
    return True

  def seekable(self):
    return True

  def readinto(self, b):
    n = self._f.readinto(b)
    self.bytes_read += n or 0
    return n

  def seek(self, offset, whence=io.SEEK_SET):
    return self._f.seek(offset, whence)

  def tell(self):
    return self._f.tell()

  def close(self):
    self._f.close()
    super().close()


def detect_format(path: str, fmt: str = 'auto') -> str:
  """The format of `path`: `fmt` itself, or (fmt='auto') the one its extension names."""
  if fmt != 'auto':
    if fmt not in FORMATS:
      raise InputError(f"movie format {fmt!r} is unknown; use 'auto' or one of {FORMATS}")
    return fmt
  ext = os.path.splitext(path)[1].lower()
  if ext not in EXTENSIONS:
    raise InputError(f'{path!r}: cannot tell the movie format from the extension {ext!r}; '
                     f'use one of {sorted(EXTENSIONS)} or name the format ({FORMATS})')
  return EXTENSIONS[ext]


def movie_paths(spec: str | list[str] | tuple[str, ...], fmt: str = 'auto') -> list[str]:
  """Movie files named by `spec`: a list, a comma-separated string, a folder (its files
  with a movie extension, sorted by name; only those of format `fmt` unless 'auto', e.g.
  'tiff' to skip an interval .npy kept beside the stacks) or a glob pattern, in order."""
  exts = [e for e, f in EXTENSIONS.items() if fmt in ('auto', f)]
  items = list(spec) if isinstance(spec, (list, tuple)) else [
      s.strip() for s in str(spec).split(',') if s.strip()]
  if not items:
    raise InputError('no movie files given; pass a file, a comma-separated list, a folder '
                     'or a glob pattern')
  out = []
  for item in items:
    if paths.isdir(item):
      found = sorted(paths.join(item, f) for f in paths.listdir(item)
                     if os.path.splitext(f)[1].lower() in exts)
      if not found:
        raise InputError(f'folder {item!r} holds no movie files ({sorted(exts)})')
      out += found
    elif any(c in item for c in '*?['):
      found = paths.glob(item)
      if not found:
        raise InputError(f'the pattern {item!r} matches no file')
      out += found
    else:
      out.append(item)
  return out


def _check_file(path: str, what: str = 'movie file') -> None:
  if not paths.isfile(path):
    raise InputError(f'{what} {path!r} does not exist')
  if paths.getsize(path) == 0:
    raise InputError(f'{what} {path!r} is empty (0 bytes)')


def _check_dtype(path: str, dtype: np.dtype) -> None:
  if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)
          or dtype == np.bool_):
    raise InputError(f'{path!r}: the movie has dtype {dtype}; need real numbers '
                     '(integers or floats)')


def _order(path: str, axes: str, ndim: int, shape: tuple) -> tuple[int, ...]:
  """Transpose that brings stored axes `axes` (checked by open_movie) to (T, H, W)."""
  if ndim != 3:
    raise InputError(f'{path!r}: the movie has shape {shape} ({ndim} dimensions); need 3 '
                     '(time and two image axes, e.g. [T, H, W]); a single recording per file')
  return tuple(axes.index(c) for c in 'THW')


class Movie:
  """One recording opened for reading (see the module docstring).

  Attributes:
    path, format: the file and its format.
    shape: (T, H, W).
    dtype: the stored dtype (frames are returned as float32).
    bytes_read: bytes read from the file so far (lazy formats), None otherwise.
  """

  def __init__(self, path, fmt, stored_shape, dtype, axes, read_stored, close=None,
               counter=None):
    self.path, self.format, self.dtype = path, fmt, np.dtype(dtype)
    self._read_stored, self._close, self._counter = read_stored, close, counter
    try:
      _check_dtype(path, self.dtype)
      self._perm = _order(path, axes, len(stored_shape), tuple(stored_shape))
      self._axes = axes
      self.shape = tuple(int(stored_shape[i]) for i in self._perm)
      t, h, w = self.shape
      if t < 1 or h < 2 or w < 2:
        raise InputError(f'{path!r}: the movie has shape (T, H, W) = {self.shape}; need at '
                         'least 1 frame of at least 2x2 pixels')
    except InputError:
      self.close()  # the file handles opened for this movie
      raise

  @property
  def bytes_read(self):
    return None if self._counter is None else self._counter.bytes_read

  def read(self, t0: int = 0, t1: int | None = None) -> np.ndarray:
    """Frames t0..t1-1 as f32[t1 - t0, H, W] (t1=None: to the end)."""
    t1 = self.shape[0] if t1 is None else t1
    if not 0 <= t0 < t1 <= self.shape[0]:
      raise ValueError(f'frames [{t0}, {t1}) outside [0, {self.shape[0]})')
    index = tuple(slice(t0, t1) if a == 'T' else slice(None) for a in self._axes)
    try:
      stored = self._read_stored(index)
    except InputError:
      raise
    except Exception as e:  # pylint: disable=broad-except  # h5py / tifffile / zlib errors
      raise InputError(f'{self.path!r}: cannot read frames {t0}..{t1 - 1} ({type(e).__name__}: '
                       f'{e}); the file is damaged or truncated') from None
    return np.ascontiguousarray(np.transpose(stored, self._perm), dtype=np.float32)

  def close(self):
    if self._close is not None:
      self._close()
      self._close = None

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def _npy_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
  """(shape, fortran_order, dtype) of the .npy file object f, left at the data."""
  version = np.lib.format.read_magic(f)
  return (np.lib.format.read_array_header_1_0 if version == (1, 0)
          else np.lib.format.read_array_header_2_0)(f)


def _open_npy(path, axes):
  f = CountingFile(path)
  try:
    shape, fortran, dtype = _npy_header(f)
    offset = f.tell()
  except (ValueError, OSError, EOFError) as e:
    f.close()
    raise InputError(f'{path!r} is not a .npy file ({e})') from None
  if dtype.hasobject:
    f.close()
    raise InputError(f'{path!r} holds Python objects; save a numeric array with numpy.save')
  need = offset + int(np.prod(shape)) * dtype.itemsize
  size = paths.getsize(path)
  if size < need:
    f.close()
    raise InputError(f'{path!r} is truncated: its header announces {shape} {dtype} '
                     f'({need} bytes) but the file has {size} bytes')
  if not fortran and axes[0] == 'T' and len(shape) == 3:
    frame = int(np.prod(shape[1:])) * dtype.itemsize

    def read(index):  # frames are contiguous: read exactly their bytes
      t = index[0]
      f.seek(offset + t.start * frame)
      buf = f.read((t.stop - t.start) * frame)
      return np.frombuffer(buf, dtype).reshape(t.stop - t.start, *shape[1:])

    return Movie(path, 'npy', shape, dtype, axes, read, f.close, f)
  f.close()
  if paths.is_remote(path):  # no memory map of an object: read whole
    arr = paths.load_npy(path)
    return Movie(path, 'npy', arr.shape, arr.dtype, axes, lambda index: arr[index])
  arr = np.load(path, mmap_mode='r', allow_pickle=False)  # pages are read when sliced
  return Movie(path, 'npy', arr.shape, arr.dtype, axes, lambda index: arr[index])


def _open_npz(path, key, axes):
  try:
    with paths.open_read(path) as f, np.load(f, allow_pickle=False) as z:
      names = list(z.files)
      if not key:
        if len(names) != 1:
          raise InputError(f'{path!r} holds arrays {names}; name the movie with key=NAME '
                           '(--config.data.recorded.key)')
        key = names[0]
      if key not in names:
        raise InputError(f'{path!r} has no array {key!r}; it holds {names}')
      arr = z[key]
  except InputError:
    raise
  except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error) as e:
    raise InputError(f'{path!r} is not a readable .npz archive ({type(e).__name__}: {e}); '
                     'the file is damaged or truncated') from None
  return Movie(path, 'npz', arr.shape, arr.dtype, axes, lambda index: arr[index])


def _h5_datasets(f) -> list[str]:
  import h5py  # pylint: disable=g-import-not-at-top
  names = []
  f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
  return names


def _open_hdf5(path, key, axes, fmt='hdf5'):
  """An HDF5 dataset (also a MATLAB v7.3 variable: fmt='mat', axes already reversed)."""
  import h5py  # pylint: disable=g-import-not-at-top
  counter = CountingFile(path)
  try:
    f = h5py.File(counter, 'r')
  except Exception as e:  # pylint: disable=broad-except  # h5py raises OSError variants
    counter.close()
    what = 'MATLAB v7.3 (HDF5)' if fmt == 'mat' else 'HDF5'
    raise InputError(f'{path!r} is not a readable {what} file ({e}); the file is damaged or '
                     'truncated') from None

  def close():
    f.close()
    counter.close()

  def fail(msg):
    close()
    raise InputError(msg)

  names = _h5_datasets(f)
  if not key:
    three = [n for n in names if f[n].ndim == 3]
    if len(three) != 1:
      fail(f'{path!r} holds datasets {names}; name the movie with key=PATH '
           '(--config.data.recorded.key)')
    key = three[0]
  if key not in f or not isinstance(f[key], h5py.Dataset):
    what = 'variable' if fmt == 'mat' else 'dataset'
    fail(f'{path!r} has no {what} {key!r}; it holds {names}')
  ds = f[key]
  if ds.dtype.kind not in 'biuf':
    fail(f'{path!r}: {key!r} has dtype {ds.dtype}; need real numbers (a MATLAB cell, struct '
         'or complex array cannot be a movie)')
  try:
    if ds.ndim:
      ds[(slice(0, 1),) * ds.ndim]  # the first element: fails early on broken chunks
  except Exception as e:  # pylint: disable=broad-except
    fail(f'{path!r}: cannot read {key!r} ({e}); the file is damaged or truncated')
  return Movie(path, fmt, ds.shape, ds.dtype, axes, lambda index: ds[index], close, counter)


def _is_hdf5(path) -> bool:
  """h5py.is_hdf5 for any path: the HDF5 signature at byte 0, 512, 1024, 2048, ... (a
  MATLAB v7.3 file has a 512-byte user block first)."""
  import h5py  # pylint: disable=g-import-not-at-top
  if not paths.is_remote(path):
    return h5py.is_hdf5(path)
  size, offset = paths.getsize(path), 0
  with paths.open_read(path) as f:
    while offset + 8 <= size:
      f.seek(offset)
      if f.read(8) == b'\x89HDF\r\n\x1a\n':
        return True
      offset = 512 if offset == 0 else 2 * offset
  return False


def _open_mat(path, key, axes):
  key = key or MAT_KEY
  if _is_hdf5(path):  # v7.3: MATLAB's column-major array, HDF5 axes reversed
    return _open_hdf5(path, key, axes[::-1], fmt='mat')
  import scipy.io  # pylint: disable=g-import-not-at-top
  if paths.is_remote(path):  # v5/v4 files are read whole, locally too
    path_or_file = io.BytesIO(paths.read_bytes(path))
  else:
    path_or_file = path
  try:
    names = [name for name, _, _ in scipy.io.whosmat(path_or_file)]
  except Exception as e:  # pylint: disable=broad-except  # scipy raises many types
    raise InputError(f'{path!r} is not a readable MATLAB file ({type(e).__name__}: {e}); the '
                     'file is damaged or truncated') from None
  if key not in names:
    raise InputError(f'{path!r} has no variable {key!r}; it holds {names} (set key=NAME, '
                     '--config.data.recorded.key)')
  try:
    if not isinstance(path_or_file, str):
      path_or_file.seek(0)
    arr = scipy.io.loadmat(path_or_file, variable_names=[key])[key]
  except Exception as e:  # pylint: disable=broad-except
    raise InputError(f'{path!r}: cannot read variable {key!r} ({type(e).__name__}: {e}); the '
                     'file is damaged or truncated') from None
  if not isinstance(arr, np.ndarray) or arr.dtype.kind not in 'biuf':
    raise InputError(f'{path!r}: variable {key!r} is a {getattr(arr, "dtype", type(arr))} '
                     'value; need a real numeric array')
  return Movie(path, 'mat', arr.shape, arr.dtype, axes, lambda index: arr[index])


@contextlib.contextmanager
def _tifffile_warnings():
  """Collects the messages tifffile logs at WARNING or above (a damaged page chain)."""
  messages = []

  class Collect(logging.Handler):
    def emit(self, record):
      messages.append(record.getMessage())

  logger = logging.getLogger('tifffile')
  handler = Collect(logging.WARNING)
  logger.addHandler(handler)
  propagate, logger.propagate = logger.propagate, False
  try:
    yield messages
  finally:
    logger.removeHandler(handler)
    logger.propagate = propagate


def _open_tiff(path, axes):
  import tifffile  # pylint: disable=g-import-not-at-top
  if axes != 'THW':
    raise InputError(f"{path!r}: a TIFF stack has one frame per page; axes must be 'THW', "
                     f'got {axes!r}')
  counter = CountingFile(path, readahead=True)  # page headers spread over the file
  try:
    with _tifffile_warnings() as warned:
      tif = tifffile.TiffFile(counter)
      pages = tif.pages
      pages.useframes = True  # light-weight frames after the first page
      pages.cache = True  # each page's tags are parsed once
      n = len(pages)
      first = pages.first
      shape, dtype = first.shape, first.dtype
    if warned:  # tifffile skips a broken page chain with a log warning, not an error
      tif.close()
      raise ValueError(warned[0])
  except Exception as e:  # pylint: disable=broad-except  # tifffile raises many types
    counter.close()
    raise InputError(f'{path!r} is not a readable TIFF file ({type(e).__name__}: {e}); the '
                     'file is damaged or truncated') from None

  def close():
    tif.close()
    counter.close()

  if len(shape) != 2 or dtype is None:
    close()
    raise InputError(f'{path!r}: TIFF pages of shape {shape}; need grey frames (one 2-D '
                     'image per page, no colour samples)')
  size = paths.getsize(path)
  for i in range(n):  # every frame's bytes must lie inside the file
    page = pages[i]
    end = max((o + c for o, c in zip(page.dataoffsets, page.databytecounts)), default=0)
    if end > size or not page.databytecounts or 0 in page.databytecounts:
      close()
      raise InputError(f'{path!r} is truncated: frame {i} of {n} needs bytes up to {end} but '
                       f'the file has {size}')

  def read(index):  # the pages of frames t (tifffile reads runs of pages at once)
    t = index[0]
    return tif.asarray(key=range(t.start, t.stop)).reshape(t.stop - t.start, *shape)

  return Movie(path, 'tiff', (n, *shape), dtype, axes, read, close, counter)


def axes_warning(path: str, axes: str, shape: tuple[int, int, int]) -> str | None:
  """The warning for a movie read with `axes` as `shape` (T, H, W) when that order looks
  wrong, else None: its frames are not square while another order makes them square, or
  its time axis is shorter than a spatial one (the paper's movies are T x H x W with
  T >= H = W). The order suggested makes the frames square (the longest such time axis),
  else puts time on the longest axis."""
  t, h, w = shape
  if t >= max(h, w) and (h == w or len(set(shape)) == 3):
    return None
  sizes = [shape['THW'.index(a)] for a in axes]  # in the stored (or MATLAB size()) order
  square = [i for i in range(3) if len({sizes[j] for j in range(3) if j != i}) == 1]
  time_at = max(square or range(3), key=lambda i: sizes[i])
  spatial = iter('HW')
  order = ''.join('T' if i == time_at else next(spatial) for i in range(3))
  n, side = sizes[time_at], [sizes[i] for i in range(3) if i != time_at]
  fix = (f"if it holds {n} frames of {side[0]}x{side[1]}, pass --axes={order} (config key "
         f"data.recorded.axes='{order}')") if order != axes else (
         'if time is another axis, name the stored order with --axes (config key '
         'data.recorded.axes)')
  return (f"warning: {path} read with axes='{axes}' gives {t} frames of {h}x{w} pixels; "
          + fix)


def open_movie(path: str, *, fmt: str = 'auto', key: str = '', axes: str = 'THW') -> Movie:
  """Opens one recording (see the module docstring); close it (or use `with`).

  Args:
    path: the file.
    fmt: 'auto' (from the extension) or one of FORMATS.
    key: .npz array / HDF5 dataset path / MATLAB variable ('' = the only one; 'V' for .mat).
    axes: the stored axis order, a permutation of 'THW' (MATLAB's order for .mat).
  """
  fmt = detect_format(path, fmt)
  _check_file(path)
  if sorted(axes) != ['H', 'T', 'W']:
    raise InputError(f"axes={axes!r} must be a permutation of 'THW' (e.g. 'HWT')")
  if fmt == 'tiff':  # one frame per page: no other order to suggest
    return _open_tiff(path, axes)
  movie = {'npy': lambda: _open_npy(path, axes), 'npz': lambda: _open_npz(path, key, axes),
           'hdf5': lambda: _open_hdf5(path, key, axes),
           'mat': lambda: _open_mat(path, key, axes)}[fmt]()
  warning = axes_warning(path, axes, movie.shape)
  if warning:
    print(warning, file=sys.stderr, flush=True)
  return movie


def read_movie(path: str, **kwargs) -> np.ndarray:
  """The whole recording f32[T, H, W] (open_movie's arguments), checked to be finite."""
  with open_movie(path, **kwargs) as movie:
    frames = movie.read()
  check_finite(path, frames)
  return frames


def check_finite(path: str, frames: np.ndarray, t0: int = 0) -> None:
  """InputError naming the first frame (t0 + its index) of f32[T, H, W] with NaN or inf."""
  bad = ~np.isfinite(frames)
  if bad.any():
    t = t0 + int(np.argmax(bad.any(axis=(1, 2))))
    raise InputError(f'{path!r} contains NaN or infinite values (first in frame {t}); '
                     'replace them (e.g. interpolate dropped frames) before training')


def _npy_ndim(path: str) -> int | None:
  try:
    with paths.open_read(path) as f:
      return len(_npy_header(f)[0])
  except (ValueError, OSError, EOFError):
    return None  # read_movie reports what is wrong


def load_any(path: str, *, fmt: str = 'auto', key: str = '', axes: str = 'THW') -> np.ndarray:
  """A movie for the wave tools (`python -m rwjax.waves stats / preview`).

  A movie directory, or a .npy holding [B, T, H, W] (what `simulate` and `convert`
  write), is read by rwjax.waves.movie.load_movie: f32[B, T, H, W]. Any other supported
  file is one recording (read_movie): f32[T, H, W].
  """
  from rwjax.waves import movie as movie_io  # pylint: disable=g-import-not-at-top
  if paths.isdir(path) or (paths.isfile(path) and detect_format(path, fmt) == 'npy'
                           and _npy_ndim(path) == 4):
    return movie_io.load_movie(path)
  return read_movie(path, fmt=fmt, key=key, axes=axes)


def read_intervals(path: str) -> np.ndarray:
  """Wave intervals i64[N, 2] of [start, end) frames from .npy, .csv or .txt (see the
  module docstring); checked to be whole numbers with start < end, sorted by start."""
  _check_file(path, 'interval file')
  ext = os.path.splitext(path)[1].lower()
  try:
    if ext == '.npy':
      x = paths.load_npy(path)
    elif ext in ('.csv', '.txt'):
      text = paths.read_text(path).replace(',', ' ')
      with warnings.catch_warnings():  # an empty file is reported below
        warnings.simplefilter('ignore', UserWarning)
        x = np.loadtxt(io.StringIO(text), ndmin=2, comments='#')
    else:
      raise InputError(f'interval file {path!r}: use .npy, .csv or .txt, not {ext!r}')
  except InputError:
    raise
  except (ValueError, OSError, EOFError) as e:
    raise InputError(f'cannot read interval file {path!r} ({e}); need two numbers per row: '
                     'start and end frame of each wave') from None
  x = np.asarray(x)
  if x.size == 0:
    raise InputError(f'interval file {path!r} lists no waves')
  if x.ndim != 2 or x.shape[1] != 2 or x.dtype.kind not in 'iuf':
    raise InputError(f'interval file {path!r} holds {x.dtype} of shape {x.shape}; need [N, 2] '
                     '(start, end) frame pairs')
  if x.dtype.kind == 'f' and not (np.isfinite(x).all() and (x == np.round(x)).all()):
    raise InputError(f'interval file {path!r} holds values that are not whole frame numbers')
  x = x.astype(np.int64)
  bad = np.nonzero(x[:, 1] <= x[:, 0])[0]
  if bad.size:
    raise InputError(f'interval file {path!r}: interval {bad[0]} [{x[bad[0], 0]}, '
                     f'{x[bad[0], 1]}) is empty or reversed; need start < end ([start, end) '
                     'frames)')
  return x[np.argsort(x[:, 0], kind='stable')]
