"""Test set-up: 8 virtual CPU devices for the sharded code, and a compilation cache.

The cache (fresh in every clone: .jax_cache/ is git-ignored) lets tests and their
subprocesses that build the same programs compile them once.
"""

import os

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Must be set before jax is imported anywhere.
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=8')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', os.path.join(_ROOT, '.jax_cache'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')

# Module order. `make test` hands whole modules to its pytest-xdist workers in this order
# (--dist loadscope --no-loadscope-reorder): the longest first, so that no core idles at the
# end (the tiny experiment's module alone is ~1/4 of the suite), and the notebook's tiny
# experiment last, when its programs are in the compilation cache (the experiment tests
# compiled them).
_FIRST = ('tests/test_experiment.py', 'tests/launch/test_local.py', 'tests/eval/test_golden.py',
          'tests/test_train.py')
_LAST = ('tests/launch/test_colab.py',)


def pytest_collection_modifyitems(config, items):
  def rank(item):
    path = os.path.relpath(str(item.path), _ROOT).replace(os.sep, '/')
    return (_FIRST.index(path) if path in _FIRST else len(_FIRST) + (path in _LAST))
  items.sort(key=rank)  # stable: collection order within each rank


# A local Cloud Storage emulator for the gs:// tests (tests/test_gcs.py), started on first
# use and stopped when the session ends. A pytest fixture rather than .ci/run, so that
# `make test`, .ci/run and a single `pytest tests/test_gcs.py` all get one. The emulator is a
# child process on 127.0.0.1 that serves until its stdin closes: it also stops if pytest
# is killed.
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

_EMULATOR = '''
import json, logging, sys
from urllib.parse import unquote
logging.disable(logging.CRITICAL)
from gcp_storage_emulator import server as emulator
from gcp_storage_emulator.handlers import objects

plain_download = objects.download

def download(request, response, storage, *args, **kwargs):
  # Cloud Storage sends an object's generation with its data; tensorstore (orbax's
  # array writes, OCDBT manifests) reads it from there, the emulator does not send it.
  plain_download(request, response, storage, *args, **kwargs)
  try:
    obj = storage.get_file_obj(request.params['bucket_name'], request.params['object_id'])
  except Exception:
    return
  response['x-goog-generation'] = obj['generation']
  response['x-goog-metageneration'] = obj['metageneration']

objects.download = download  # also reached from objects.get (?alt=media)
emulator.HANDLERS = tuple((r, {m: download if f is plain_download else f for m, f in h.items()})
                          for r, h in emulator.HANDLERS)

# Errors a real bucket gives and the emulator does not (no IAM, never unavailable):
# POST /_faults [{"method", "contains" (in the URL or body), "status", "times" (-1: all)}]
# makes the matching requests fail with that status, as Cloud Storage answers them.
FAULTS = []
Handler = emulator.RequestHandler

def with_faults(plain):
  def handle(self):
    body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
    self.rfile = __import__('io').BytesIO(body)
    if self.path == '/_faults':  # POST: set the rules; GET: what is left of them
      if self.command == 'POST':
        FAULTS[:] = json.loads(body)
      return self._reply(200, FAULTS)
    for f in FAULTS:
      seen = unquote(self.path) + body.decode('latin-1')  # the name: in the URL or the body
      if f['times'] and f['method'] == self.command and f['contains'] in seen:
        f['times'] -= 1
        return self._reply(f['status'], {'error': {'code': f['status'], 'message': (
            'caller does not have storage.objects.create access' if f['status'] == 403
            else 'backend error')}})
    return plain(self)
  return handle

def reply(self, status, obj):
  data = json.dumps(obj).encode()
  self.send_response(status)
  self.send_header('Content-Type', 'application/json')
  self.send_header('Content-Length', str(len(data)))
  self.end_headers()
  self.wfile.write(data)

Handler._reply = reply
for name in ('do_GET', 'do_POST', 'do_PUT', 'do_DELETE', 'do_PATCH'):
  setattr(Handler, name, with_faults(getattr(Handler, name)))

# The emulator serves one connection at a time; with socketserver's default backlog of 5,
# concurrent clients (gcsfs's batched reads, tensorstore) see refused connections and retry
# after seconds. Let them wait in the queue instead.
import http.server
http.server.HTTPServer.request_queue_size = 1024

server = emulator.create_server('127.0.0.1', 0, in_memory=True, default_bucket='bucket')
server.start()
print(server._api._httpd.server_port, flush=True)
sys.stdin.read()
server.stop()
'''


@pytest.fixture(scope='session')
def gcs_emulator():
  """URL of a Cloud Storage emulator holding an empty bucket 'bucket'; the environment
  points gcsfs (STORAGE_EMULATOR_HOST) and tensorstore, i.e. orbax's array writes
  (TENSORSTORE_GCS_HTTP_URL, GOOGLE_AUTH_TOKEN_FOR_TESTING) at it, for this process and
  its children."""
  p = subprocess.Popen([sys.executable, '-c', _EMULATOR], stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE, text=True)
  url = f'http://127.0.0.1:{int(p.stdout.readline())}'
  env = {'STORAGE_EMULATOR_HOST': url, 'TENSORSTORE_GCS_HTTP_URL': url,
         'GOOGLE_AUTH_TOKEN_FOR_TESTING': 'emulator',
         # gcsfs's zonal/hierarchical-bucket probe calls the Storage Control API (gRPC),
         # which the emulator does not serve.
         'GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT': 'false'}
  try:
    with pytest.MonkeyPatch.context() as mp:
      for k, v in env.items():
        mp.setenv(k, v)
      yield url
  finally:
    p.stdin.close()
    try:
      p.wait(timeout=10)
    except subprocess.TimeoutExpired:
      p.kill()


@pytest.fixture
def gcs_faults(gcs_emulator):
  """set(rules) -> the rules left: the emulator answers matching requests with errors
  (see _EMULATOR); set(None) only reads what is left of them."""
  import json
  import urllib.request

  def set_faults(rules):
    data = None if rules is None else json.dumps(rules).encode()
    with urllib.request.urlopen(urllib.request.Request(
        f'{gcs_emulator}/_faults', data=data, method='GET' if data is None else 'POST'),
        timeout=10) as r:
      return json.loads(r.read())

  yield set_faults
  set_faults([])
