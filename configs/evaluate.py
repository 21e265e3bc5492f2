"""Evaluation of a pre-trained network against random-init networks of the same architecture.

  python -m rwjax.evaluate --config=configs/evaluate.py --config.workdir=DIR
  python -m rwjax.evaluate --config=configs/evaluate.py:digits --config.workdir=DIR  (CPU demo)
  python -m rwjax.evaluate --config=configs/evaluate.py:cifar10_folder --config.workdir=DIR \
      --config.data.source=folder:/path/to/cifar10
  python -m rwjax.evaluate --config=configs/evaluate.py:paper --config.workdirs='runs/seed*' \
      --config.out=runs/eval

Presets: 'cifar10' (default: tfds:cifar10 probes, exemplar tasks from tfds:cifar100),
'cifar10_folder' (the same from image folders), 'digits' (scikit-learn's 8x8 digits for
everything; minutes on a CPU, with small manifold-capacity sizes, on the stage outputs),
'paper' (the paper's protocol: BatchNorm batch statistics of batches of 50 for the probes,
running statistics for the manifolds, 3 pre-training workdirs against 3 random inits with
Welch's t across networks; tfds:cifar10 / tfds:cifar100, or folders via data.source and
exemplar.source) and 'paper_digits' (the same protocol on digits at CPU-test sizes).
Manifold capacity covers every ReLU output and the projector by default
(--config.capacity.layers=stages for the stage outputs only). Results go to DIR/eval
(report.json, PNG plots).
"""

from rwjax import defaults


def get_config(preset: str = 'cifar10'):
  return defaults.evaluate_config(preset)
