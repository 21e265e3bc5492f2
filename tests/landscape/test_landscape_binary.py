"""End-to-end runs of `python -m rwjax.landscape` in a subprocess (tiny settings)."""

import json
import os
import pathlib
import subprocess
import sys

import jax.numpy as jnp

import rwjax.landscape  # noqa: F401  (importing must not switch on float64)

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / 'configs' / 'landscape_linear_ae.py')


def _run(tmp_path, *overrides):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  return subprocess.run(
      [sys.executable, '-m', 'rwjax.landscape', f'--config={CONFIG}',
       f'--workdir={tmp_path}', *overrides],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_binary_writes_results_and_plot_and_a_bad_config_is_one_error_line(tmp_path):
  assert jnp.ones(1).dtype == jnp.float32  # float32 stays the default outside the binary
  proc = _run(tmp_path, '--config.methods=newton_mr,bfgs')
  assert proc.returncode == 2
  lines = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
  assert len(lines) == 1 and 'bfgs' in lines[0] and 'Traceback' not in proc.stderr
  proc = _run(tmp_path, '--config.k=6', '--config.p=2', '--config.n=300',
              '--config.num_starts=4', '--config.trajectory_steps=100',
              '--config.methods=newton_mr,gradient_norm', '--config.newton_mr.num_steps=4',
              '--config.gradient_norm.num_steps=4')
  assert proc.returncode == 0, proc.stderr[-2000:]
  results = json.loads((tmp_path / 'results.json').read_text())
  assert set(results['methods']) == {'newton_mr', 'gradient_norm'}
  assert results['analytic']['num_classes'] == 1 + 6 + 15
  assert results['analytic']['max_grad_norm_sq'] < 1e-20
  for m in results['methods'].values():
    assert m['num_starts'] == 4 and 0.0 <= m['success_fraction'] <= 1.0
    assert len(m['final_index']) == 4
  assert results['toy']['(1.4142, 0.0)']['gradient_flat']
  assert (tmp_path / 'loss_vs_index.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  assert 'newton_mr' in proc.stdout and 'success' in proc.stdout
