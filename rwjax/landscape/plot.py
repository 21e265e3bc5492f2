"""The loss-vs-index figure: final points of each method over the analytic critical values."""

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from rwjax import paths


def loss_vs_index(path: str, plot_data: dict) -> None:
  """Writes a PNG with one panel per method.

  plot_data: {'analytic': {'loss': f[C], 'index': f[C]},
              'methods': {name: {'loss': f[S], 'index': f[S], 'success': bool[S]}}}.
  """
  methods = plot_data['methods']
  analytic = plot_data['analytic']
  fig, axes = plt.subplots(1, len(methods), figsize=(4.5 * len(methods), 4), squeeze=False,
                           sharey=True)
  for ax, (name, m) in zip(axes[0], methods.items()):
    ax.scatter(analytic['index'], analytic['loss'], s=60, marker='_', color='0.6',
               label='analytic critical points')
    ok = np.asarray(m['success'], bool)
    ax.scatter(m['index'][ok], m['loss'][ok], s=14, color='C0',
               label=f'||g||² below threshold ({ok.sum()})')
    ax.scatter(m['index'][~ok], m['loss'][~ok], s=14, facecolors='none', edgecolors='C3',
               label=f'not converged ({(~ok).sum()})')
    ax.set_title(name)
    ax.set_xlabel('index (fraction of negative eigenvalues)')
    ax.legend(fontsize=7)
  axes[0, 0].set_ylabel('loss')
  fig.tight_layout()
  with paths.open_write(path) as f:  # any path (gs://)
    fig.savefig(f, format='png', dpi=120)
  plt.close(fig)
