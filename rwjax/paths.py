"""Paths anywhere: local directories and Cloud Storage buckets (gs://), one set of helpers.

Every file a binary reads or writes in a workdir goes through these functions. A local
path (no `scheme://`) uses `os` and `open`; a remote one goes through `etils.epath`, gs://
through gcsfs (the extra `pip install 'rwjax[gcs]'`; InputError without it). Object stores
have no directories, no append and no rename: makedirs does nothing there, a write uploads
one whole object (atomic), move copies then deletes each object, and logs are rewritten whole
(docs/cloud.md). Orbax checkpoints take the path string as is.

Inputs: open_read(path) is seekable (ranged requests on a bucket). A missing remote input
does not exist (isfile / exists are False); other storage errors on reads are one InputError.
"""

import contextlib
import glob as glob_lib
import io
import json
import os
import pathlib
import uuid

from rwjax.errors import InputError


def is_remote(path) -> bool:
  """True for `scheme://...` paths (gs://, s3://, ...), False for local ones."""
  return '://' in os.fspath(path)


def _require(path: str) -> None:
  """InputError when a gs:// path is given but the gcs extra is not installed."""
  if os.fspath(path).startswith('gs://'):
    try:
      import gcsfs  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      raise InputError(
          f'{os.fspath(path)!r} is a Cloud Storage path, but gcsfs is not installed; '
          "install the extra with `pip install 'rwjax[gcs]'` (or `pip install gcsfs`)") from None


def _epath(path):
  from etils import epath  # pylint: disable=g-import-not-at-top  # only for remote paths
  _require(path)
  return epath.Path(path)


def _fs(path: str):
  """The fsspec filesystem of a remote path (gcsfs for gs://)."""
  import fsspec  # pylint: disable=g-import-not-at-top  # gcsfs is built on it
  _require(path)
  return fsspec.core.url_to_fs(path)[0]


def _remote_read(path: str, fn):
  """fn() for a remote read; FileNotFoundError as is, other storage errors as one InputError."""
  try:
    return fn()
  except (InputError, FileNotFoundError):
    raise
  except Exception as e:  # gcsfs raises OSError ('Forbidden'), HttpError, auth errors
    raise storage_error(path, e, what='read') from None


def _local_or_remote(local, remote, doc: str):
  """A function of one path (str or os.PathLike): local(path), or remote(path) on a store."""
  def fn(path):
    path = os.fspath(path)
    return remote(path) if is_remote(path) else local(path)
  fn.__doc__ = doc
  return fn


def join(path, *parts) -> str:
  """os.path.join for local paths, '/'-joined for remote ones."""
  path = os.fspath(path)
  if not is_remote(path):
    return os.path.join(path, *parts)
  return '/'.join([path.rstrip('/'), *(p.strip('/') for p in parts)])


abspath = _local_or_remote(os.path.abspath, lambda p: p,
                           'os.path.abspath for local paths; remote paths are already absolute.')
exists = _local_or_remote(os.path.exists, lambda p: _epath(p).exists(), 'os.path.exists.')
isdir = _local_or_remote(
    os.path.isdir, lambda p: _epath(p).is_dir(),
    'A directory, or on an object store a prefix that holds at least one object.')
getsize = _local_or_remote(
    os.path.getsize, lambda p: int(_remote_read(p, _epath(p).stat).length), 'Bytes in the file.')
listdir = _local_or_remote(
    os.listdir, lambda p: [c.name for c in _remote_read(p, lambda: list(_epath(p).iterdir()))],
    'The names in a directory (on an object store: under a prefix), as os.listdir.')
remove = _local_or_remote(os.remove, lambda p: _epath(p).unlink(), 'os.remove.')
makedirs = _local_or_remote(
    lambda p: os.makedirs(p, exist_ok=True), _require,
    'os.makedirs(exist_ok=True) locally; nothing on an object store (no directories).')
read_bytes = _local_or_remote(lambda p: pathlib.Path(p).read_bytes(),
                              lambda p: _epath(p).read_bytes(), "The file's content.")


def isfile(path) -> bool:
  """A regular file (on an object store: an object, not a prefix)."""
  path = os.fspath(path)
  if not is_remote(path):
    return os.path.isfile(path)
  try:
    return not _remote_read(path, _epath(path).stat).is_directory
  except FileNotFoundError:
    return False


def open_read(path, readahead: bool = False):
  """A seekable binary file object of `path` (close it, or use `with`).

  Remote: ranged requests through gcsfs's adaptive cache, so seeking readers fetch only what
  they read. readahead=True: every miss fetches a whole 5 MiB block from the read position,
  for readers that walk a file in many small forward reads (a TIFF's page headers).
  """
  path = os.fspath(path)
  if not is_remote(path):
    return open(path, 'rb')  # pylint: disable=consider-using-with
  return _remote_read(path, lambda: _fs(path).open(path, 'rb', cache_type='readahead')
                      if readahead else _epath(path).open('rb'))


def load_npy(path, **kwargs):
  """numpy.load of a .npy at any path (allow_pickle=False unless given). Remote: the
  array is read whole, streamed in numpy's 16 MiB pieces (no second copy in memory)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  with open_read(path) as f:
    return np.load(f, **{'allow_pickle': False, **kwargs})  # damaged: numpy's ValueError


def save_npy(path, array) -> None:
  """numpy.save to any path, atomically (remote: one whole-object upload)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  with open_write(path) as f:
    np.save(f, array)


@contextlib.contextmanager
def open_append(path):
  """A text file to append a log to. Local: open(path, 'a'). Remote (no append on object
  stores): a local staging file; on exit the object is rewritten whole as its old content
  plus what was written (one writer at a time, e.g. one run's log).

  A partial last line (a run killed while it wrote) is kept for whoever reads the log, and a
  newline after it makes what is appended now begin a line of its own.
  """
  path = os.fspath(path)
  if not is_remote(path):
    with open(path, 'a') as f:
      if f.tell() and _last_byte(path) != b'\n':
        f.write('\n')
      yield f
    return
  import tempfile  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryFile('w+b') as stage:
    f = io.TextIOWrapper(stage, encoding='utf-8', write_through=True)
    try:
      yield f
    finally:
      f.flush()
      stage.seek(0)
      new = stage.read()
      old = read_bytes(path) if exists(path) else b''
      write_atomic(path, old + (b'\n' if old and not old.endswith(b'\n') else b'') + new)
      f.detach()


def _last_byte(path: str) -> bytes:
  with open(path, 'rb') as f:
    f.seek(-1, os.SEEK_END)
    return f.read(1)


TORN_SUFFIX = '.torn'  # set_aside_torn_line's side file: PATH.torn


def set_aside_torn_line(path) -> str | None:
  """Makes a local file of records, one per line, end at its last complete line.

  A partial last line (a crash while a record was written: a full disk, a killed process)
  is appended to the side file PATH.torn, then cut from PATH, so that the next record
  appended starts a line of its own. Returns the partial line, or None when PATH ends in a
  newline, is empty or does not exist.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    return None
  with open(path, 'r+b') as f:
    cut = size = f.seek(0, os.SEEK_END)
    while cut > 0:  # back to the last newline, a block at a time (the file may be long)
      start = max(0, cut - (1 << 16))
      f.seek(start)
      block = f.read(cut - start)
      newline = block.rfind(b'\n')
      if newline >= 0:
        cut = start + newline + 1
        break
      cut = start
    if cut == size:
      return None
    f.seek(cut)
    torn = f.read()
    with open(path + TORN_SUFFIX, 'ab') as side:  # kept first, then cut: never lost
      side.write(torn + b'\n')
      side.flush()
      os.fsync(side.fileno())
    f.truncate(cut)
  return torn.decode('utf-8', errors='replace')


def read_many(paths: list) -> list[bytes]:
  """read_bytes of each path, in order. Remote (all on one store): concurrent requests
  (fsspec's cat, batches of its batch_size), one request per object."""
  paths = [os.fspath(p) for p in paths]
  if not paths or not is_remote(paths[0]):
    return [read_bytes(p) for p in paths]
  fs = _fs(paths[0])
  try:
    out = fs.cat(paths, on_error='raise')
  except FileNotFoundError as e:  # listed, then gone
    raise InputError(f'cannot read {len(paths)} files from {os.path.dirname(paths[0])!r}: '
                     f'one of them does not exist ({e}); check that nothing deletes them '
                     'while they are read') from None
  except Exception as e:  # pylint: disable=broad-except  # gcsfs: OSError, HttpError
    raise storage_error(paths[0], e, what='read') from None
  return [out[fs._strip_protocol(p)] for p in paths]  # pylint: disable=protected-access


def read_text(path) -> str:
  return read_bytes(path).decode('utf-8')


def read_json(path):
  return json.loads(read_text(path))


def write_atomic(path, data: str | bytes) -> None:
  """Writes the whole file at once: readers see the old content or the new, never a part."""
  with open_write(path) as f:
    f.write(data.encode('utf-8') if isinstance(data, str) else data)


def write_json(path, obj, **kwargs) -> None:
  """json.dump(obj, indent=2, **kwargs) to path, atomically."""
  write_atomic(path, json.dumps(obj, indent=2, **kwargs))


@contextlib.contextmanager
def open_write(path, binary: bool = True):
  """A file object to write into; its content lands at `path`, atomically, on exit
  (nothing lands if the block raises).

  For writers that want a file (matplotlib's savefig, np.save, PIL's save): e.g.
    with paths.open_write(paths.join(out, 'plot.png')) as f: fig.savefig(f, format='png')
  Local: a temporary file beside `path`, renamed onto it. Remote: an in-memory buffer,
  uploaded as one object.
  """
  path = os.fspath(path)
  if is_remote(path):
    buffer = io.BytesIO() if binary else io.StringIO()
    yield buffer
    data = buffer.getvalue()
    _epath(path).write_bytes(data if binary else data.encode('utf-8'))  # one object upload
    return
  tmp = f'{path}.tmp-{uuid.uuid4().hex[:8]}'
  try:
    with open(tmp, 'wb' if binary else 'w') as f:
      yield f
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def upload(local_path: str, path) -> None:
  """Copies a local file to `path` (any path), whole and atomically."""
  write_atomic(path, read_bytes(local_path))


def move(path, dst) -> None:
  """Moves a file or a directory (with everything in it) to `dst`, creating dst's parent.

  Local: one rename. Remote (no rename on object stores): every object is copied to its
  new name, then removed (fsspec's mv); an interrupted move leaves each object at its old
  name, its new one or both, never neither.
  """
  path, dst = os.fspath(path), os.fspath(dst)
  if not is_remote(path):
    try:
      os.makedirs(os.path.dirname(dst), exist_ok=True)
      os.rename(path, dst)
    except OSError as e:
      raise storage_error(dst, e) from None
    return
  fs = _fs(path)
  try:
    fs.mv(path, dst, recursive=True)
  except Exception as e:  # pylint: disable=broad-except  # gcsfs: OSError, HttpError
    raise storage_error(dst, e) from None
  finally:  # gcsfs caches listings in each instance (fsspec keeps one per thread and set of
    # options; etils.epath, i.e. orbax, has its own): every one of them changed
    for instance in [fs, *type(fs)._cache.values()]:  # pylint: disable=protected-access
      instance.invalidate_cache()


def glob(pattern) -> list[str]:
  """Sorted paths matching a glob pattern (`*`, `?`, `[...]` within path components; no
  `**`), e.g. 'gs://b/run/eval/step*/*/report.json'."""
  pattern = os.fspath(pattern)
  if not is_remote(pattern):
    return sorted(glob_lib.glob(pattern))
  parts = pattern.split('/')
  first = next((i for i, p in enumerate(parts) if glob_lib.has_magic(p)), len(parts) - 1)
  first = max(first, 3)  # never above the bucket: 'gs:', '', 'bucket'
  root, rest = '/'.join(parts[:first]), '/'.join(parts[first:])
  return sorted(os.fspath(p) for p in _remote_read(root, lambda: list(_epath(root).glob(rest))))


def storage_error(path, e: BaseException, what: str = 'write to') -> InputError:
  """One clear InputError for an OSError raised while accessing `path`."""
  path = os.fspath(path)
  if not is_remote(path):
    return InputError(f'cannot {what} {path!r} ({e.strerror or e}); pass a path you can '
                      f'{what.split()[0]}')
  scheme, rest = path.split('://', 1)
  bucket = f"{scheme}://{rest.split('/', 1)[0]}"
  text = str(e)
  if isinstance(e, FileNotFoundError):
    return InputError(
        f'cannot {what} {path!r}: the bucket {bucket} does not exist (or this account cannot '
        f'see it); create it (`gcloud storage buckets create {bucket}`) or pass a path in an '
        'existing bucket')
  if isinstance(e, PermissionError) or 'Forbidden' in text or '403' in text:
    role = 'objectAdmin' if what.startswith('write') else 'objectViewer'
    return InputError(
        f'cannot {what} {path!r}: permission denied on {bucket}; grant this '
        f"machine's service account roles/storage.{role} on the bucket (or "
        '`gcloud auth application-default login`), or pass a path you can '
        f'{what.split()[0]}')
  first = text.splitlines()[0][:200] if text else type(e).__name__
  return InputError(f'cannot {what} {path!r} ({first}); check the path, the network and '
                    'the credentials')


def check_writable(path) -> None:
  """Creates `path` if needed and writes/removes a private probe file in it.

  InputError (storage_error) if it cannot: a missing bucket, no permission, a file in
  the way. The processes of a multi-host run check at once, each with its own probe.
  """
  probe = join(path, f'.write_test-{uuid.uuid4().hex}')
  try:
    makedirs(path)
    write_atomic(probe, b'')
    remove(probe)
  except InputError:
    raise
  except Exception as e:  # gcsfs raises OSError, HttpError, ValueError, auth errors
    if not (is_remote(path) or isinstance(e, OSError)):
      raise
    raise storage_error(path, e) from None
