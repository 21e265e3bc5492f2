"""Paths anywhere: local directories and Cloud Storage buckets (gs://), one set of helpers.

Every file a binary reads or writes in a workdir goes through these functions. A local
path (no `scheme://`) uses `os` and `open` exactly as before; a remote one (gs://, or any
scheme etils.epath knows) goes through `etils.epath`, which reaches gs:// through gcsfs
(the optional extra `pip install 'rwjax[gcs]'`). Object stores have no directories, no
append and no rename, so:
  - makedirs(path) is a no-op on them (an object's name carries its "directories");
  - write_atomic(path, data) writes a temporary file and renames it locally, and uploads
    one whole object remotely (a Cloud Storage upload is atomic: readers see the old
    object or the new one, never a part);
  - nothing here appends (gcsfs silently turns mode 'a' into an overwrite,
    fsspec/gcsfs#533): logs are written as whole objects (see rwjax.metrics).
Orbax checkpoints take the path string as is (orbax writes gs:// through tensorstore).
"""

import contextlib
import glob as glob_lib
import io
import json
import os
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


def join(path, *parts) -> str:
  """os.path.join for local paths, '/'-joined for remote ones."""
  path = os.fspath(path)
  if not is_remote(path):
    return os.path.join(path, *parts)
  return '/'.join([path.rstrip('/'), *(p.strip('/') for p in parts)])


def abspath(path) -> str:
  """os.path.abspath for local paths; remote paths are already absolute."""
  path = os.fspath(path)
  return path if is_remote(path) else os.path.abspath(path)


def exists(path) -> bool:
  path = os.fspath(path)
  return _epath(path).exists() if is_remote(path) else os.path.exists(path)


def isdir(path) -> bool:
  """A directory, or on an object store a prefix that holds at least one object."""
  path = os.fspath(path)
  return _epath(path).is_dir() if is_remote(path) else os.path.isdir(path)


def makedirs(path) -> None:
  """os.makedirs(exist_ok=True) locally; nothing on an object store (no directories)."""
  path = os.fspath(path)
  if is_remote(path):
    _require(path)
  else:
    os.makedirs(path, exist_ok=True)


def read_bytes(path) -> bytes:
  path = os.fspath(path)
  if is_remote(path):
    return _epath(path).read_bytes()
  with open(path, 'rb') as f:
    return f.read()


def read_text(path) -> str:
  return read_bytes(path).decode('utf-8')


def read_json(path):
  return json.loads(read_text(path))


def write_atomic(path, data: str | bytes) -> None:
  """Writes the whole file at once: readers see the old content or the new, never a part."""
  path = os.fspath(path)
  data = data.encode('utf-8') if isinstance(data, str) else data
  if is_remote(path):
    _epath(path).write_bytes(data)  # one object upload
    return
  tmp = f'{path}.tmp-{uuid.uuid4().hex[:8]}'
  with open(tmp, 'wb') as f:
    f.write(data)
  os.replace(tmp, path)


def write_json(path, obj, **kwargs) -> None:
  """json.dump(obj, indent=2, **kwargs) to path, atomically."""
  write_atomic(path, json.dumps(obj, indent=2, **kwargs))


@contextlib.contextmanager
def open_write(path, binary: bool = True):
  """A file object to write into; its content lands at `path`, atomically, on exit.

  For writers that want a file (matplotlib's savefig, np.save): e.g.
    with paths.open_write(paths.join(out, 'plot.png')) as f: fig.savefig(f, format='png')
  """
  buffer = io.BytesIO() if binary else io.StringIO()
  yield buffer
  write_atomic(path, buffer.getvalue())


def upload(local_path: str, path) -> None:
  """Copies a local file to `path` (any path), whole and atomically."""
  with open(local_path, 'rb') as f:
    write_atomic(path, f.read())


def remove(path) -> None:
  path = os.fspath(path)
  if is_remote(path):
    _epath(path).unlink()
  else:
    os.remove(path)


def glob(pattern) -> list[str]:
  """Sorted paths matching a glob pattern (`*` within one path component)."""
  pattern = os.fspath(pattern)
  if not is_remote(pattern):
    return sorted(glob_lib.glob(pattern))
  directory, name = pattern.rsplit('/', 1)
  return sorted(os.fspath(p) for p in _epath(directory).glob(name))


def storage_error(path, e: BaseException, what: str = 'write to') -> InputError:
  """One clear InputError for an OSError raised while accessing `path`."""
  path = os.fspath(path)
  if not is_remote(path):
    return InputError(f'cannot {what} {path!r} ({e.strerror or e}); pass a path you can '
                      f'{what.split()[0]}')
  bucket = path.split('://', 1)[1].split('/', 1)[0]
  text = str(e)
  scheme = path.split('://', 1)[0]
  if isinstance(e, FileNotFoundError):
    return InputError(
        f'cannot {what} {path!r}: the bucket {scheme}://{bucket} does not exist (or this '
        f'account cannot see it); create it (`gcloud storage buckets create '
        f'{scheme}://{bucket}`) or pass a path in an existing bucket')
  if isinstance(e, PermissionError) or 'Forbidden' in text or '403' in text:
    role = 'objectAdmin' if what.startswith('write') else 'objectViewer'
    return InputError(
        f'cannot {what} {path!r}: permission denied on {scheme}://{bucket}; grant this '
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
