"""An older commit's tree, for benchmarks and golden numbers that run old and new side by side.

  with old_tree('b2d170c') as root: subprocess.run([...], env=python_env(root))

`git archive` of the commit into a temporary directory (no checkout of this tree is touched);
`python_env(root)` puts that tree first on PYTHONPATH, so `import rwjax` there is the old
package while the caller keeps today's.
"""

import contextlib
import os
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@contextlib.contextmanager
def old_tree(commit: str):
  """Yields a temporary directory holding the tree of `commit` of this repository."""
  with tempfile.TemporaryDirectory(prefix=f'rwjax-{commit[:10]}-') as tmp:
    archive = subprocess.run(['git', '-C', ROOT, 'archive', commit], check=True,
                             capture_output=True).stdout
    subprocess.run(['tar', '-x', '-C', tmp], input=archive, check=True)
    yield tmp


def python_env(root: str) -> dict:
  """os.environ with `root` first on PYTHONPATH (and no compilation cache shared with today's
  tree: programs of both trees would be cached under one key space)."""
  env = dict(os.environ)
  env['PYTHONPATH'] = os.pathsep.join([root] + [p for p in env.get('PYTHONPATH', '').split(
      os.pathsep) if p])
  env.pop('JAX_COMPILATION_CACHE_DIR', None)
  return env
