"""Evaluation of a pre-trained network against random-init networks of the same architecture.

  python -m rwjax.evaluate --config=configs/evaluate.py --config.workdir=DIR
  python -m rwjax.evaluate --config=configs/evaluate.py:digits --config.workdir=DIR  (CPU demo)
  python -m rwjax.evaluate --config=configs/evaluate.py:cifar10_folder --config.workdir=DIR \
      --config.data.source=folder:/path/to/cifar10

Presets: 'cifar10' (default: tfds:cifar10 probes, exemplar tasks from tfds:cifar100),
'cifar10_folder' (the same from image folders), 'digits' (scikit-learn's 8x8 digits for
everything; minutes on a CPU). Results go to DIR/eval (report.json, PNG plots).
"""

import ml_collections

from rwjax.eval.features import LAYERS
from rwjax.eval.probes import L2_GRID


def get_config(preset: str = 'cifar10') -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.workdir = ''  # The pre-training workdir (config.json + checkpoints/); required.
  c.out = ''  # '' = <workdir>/eval.
  c.seeds = 3  # Random-init networks and probe / task draws per arm.
  c.batch_size = 512  # Images per feature-extraction step.
  c.layers = LAYERS

  # Natural images for the classification probes (and the translated test sets).
  c.data = ml_collections.ConfigDict()
  c.data.source = 'tfds:cifar10'  # tfds:<name> | folder:<path> | digits
  c.data.data_dir = ''  # TFDS data_dir ('' = TFDS's default).
  c.data.download = False  # Let TFDS download and prepare a missing dataset.
  c.data.train_split = 'train'
  c.data.test_split = 'test'
  c.data.max_train = 0  # 0 = all (otherwise an evenly spaced subset).
  c.data.max_test = 0

  c.probe = ml_collections.ConfigDict()
  c.probe.l2_grid = L2_GRID
  c.probe.val_fraction = 0.2
  c.probe.steps = 300  # Accelerated gradient steps per fit.

  # (b) Translated test sets: probes trained on centred images, tested on shifted ones.
  c.shift = ml_collections.ConfigDict()
  c.shift.enabled = True
  c.shift.pixels = (0, 1, 2, 4, 8)  # Horizontal shifts (to the right); uncovered pixels = 0.

  # (a) Exemplar tasks: P images, each a class; samples are transforms of it.
  c.exemplar = ml_collections.ConfigDict()
  c.exemplar.enabled = True
  c.exemplar.source = 'tfds:cifar100'
  c.exemplar.split = 'test'
  c.exemplar.images = 50  # P, drawn per seed.
  c.exemplar.n_train = 20  # Transforms per image to train on...
  c.exemplar.n_test = 10  # ...and held-out transforms to test on.
  c.exemplar.transforms = ('translate', 'rotate', 'color')
  c.exemplar.max_shift = 0.5  # Fraction of the image size, in y and x.
  c.exemplar.max_degrees = 180.0
  c.exemplar.fill = 0.0  # Value of uncovered pixels.

  if preset == 'cifar10_folder':
    c.data.source = 'folder:data/cifar10'
    c.exemplar.source = 'folder:data/cifar10'
  elif preset == 'digits':
    c.seeds = 2
    c.batch_size = 256
    c.data.source = 'digits'
    c.exemplar.source = 'digits'
    c.exemplar.images = 20
    c.exemplar.n_train = 10
    c.exemplar.n_test = 5
    c.shift.pixels = (0, 2, 4, 8)
  elif preset != 'cifar10':
    raise ValueError(f"unknown preset {preset!r}; use 'cifar10', 'cifar10_folder' or 'digits'")
  return c
