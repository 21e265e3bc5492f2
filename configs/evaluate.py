"""Evaluation presets: which evaluations `python -m rwjax.evaluate` runs, at which sizes.

  python -m rwjax.evaluate --config=configs/evaluate.py:PRESET --config.workdir=DIR
  python -m rwjax.evaluate --config=configs/evaluate.py:paper --config.workdirs='runs/seed*' \
      --config.out=runs/eval

Presets:
  rwjax         rwjax's protocol: L2-logistic probes on the average-pooled stage outputs
                (CIFAR-10 classification with test sets shifted by 1-8 pixels, exemplar tasks
                of CIFAR-100 images under translation, rotation and colour jitter) and the
                mean-field capacity of translation, rotation, colour and class manifolds at
                every ReLU output; BatchNorm running statistics; tfds: datasets.
  rwjax_folder  the same from image folders (--config.evals.*.source=folder:PATH).
  digits        rwjax's protocol on scikit-learn's 8x8 digits at CPU sizes (minutes).
  paper         the paper's protocol (chung-neuroai-lab/retinal_waves_learning f39aa6d):
                its Adam probe (best test accuracy over 4 epochs, with the last epoch's
                beside it, and the logistic probe on the same features) on its invariance
                tasks (10 CIFAR-100 classes translated, rotated, colour-jittered, untouched)
                and on MNIST and CIFAR-10, at the encoder output and the 17 ReLUs, BatchNorm
                batch statistics of batches of 50; its manifold analysis (capacity, radius,
                dimension, center correlation, participation ratio, PCs for 90%, simulated
                capacity) of translation, colour, CIFAR-10 and CIFAR-100 class and wave
                manifolds at its 13 hooked layers, running statistics; 3 pre-training workdirs
                against 3 random inits, Welch's t across networks.
  paper_digits  the paper's protocol on digits at CPU-test sizes.
  combined      rwjax's and the paper's evaluations together (one pass per image set).
Override any key: --config.evals.paper_probes.classification.max_train=5000.
"""

from rwjax import defaults
from rwjax.eval import evals

PRESETS = ('rwjax', 'rwjax_folder', 'digits', 'paper', 'paper_digits', 'combined')
DIGITS = tuple(str(i) for i in range(10))


def rwjax_evals(c, source: str, exemplar_source: str) -> None:
  """rwjax's probes and capacity (its values at full size)."""
  p = c.evals.probes = evals.new('probe')
  p.classification.sources = (source,)
  p.classification.shifts = (1, 2, 4, 8)  # pixels to the right
  p.exemplar.transforms = ('translate', 'rotate', 'color')
  p.exemplar.source, p.exemplar.split = exemplar_source, 'test'
  m = c.evals.capacity = evals.new('manifolds')
  m.layers = 'relus'  # every ReLU output and the projector, as the paper's analysis
  m.exemplar.source, m.exemplar.split = exemplar_source, 'test'
  m.classes['class_test'].source = source
  c.adapt.source = source


def paper_evals(c) -> None:
  """The paper's probes and manifold analysis (its values)."""
  c.seeds = 3  # its pre-training seeds 42, 43, 44 (pass 3 workdirs)
  c.batchnorm_batch = 50  # src/test.py: the frozen encoder in train mode, batches of 50
  p = c.evals.paper_probes = evals.new('probe')
  p.batchnorm = ('batch',)
  p.layers = 'paper_probe_relus'  # the encoder output and every intermediate ReLU
  p.features = 'paper'
  p.probes = ('adam', 'logistic')
  p.draws = 'paper'
  p.invariance.transforms = ('translate', 'rotate', 'color', 'none')
  p.classification.sources = ('tfds:mnist', 'tfds:cifar10')
  p.classification.fit = 'pad'  # MNIST's 28 x 28 unchanged on a 32 x 32 canvas
  m = c.evals.paper_manifolds = evals.new('manifolds')
  m.layers = 'paper_hooks'
  m.draws = 'paper'
  m.kinds = ('translate', 'color', 'class_cifar10', 'class_cifar100', 'waves')
  m.measures = ('alpha', 'radius', 'dimension', 'center_corr', 'participation_ratio',
                'pcs_90', 'sim_alpha')
  m.exemplar.style, m.exemplar.translate, m.exemplar.p, m.exemplar.m = 'torchvision', 0.1, 50, 20
  m.exemplar.jitter = (0.5, 0.5, 0.5, 0.5)
  del m.classes['class_test']
  m.classes['class_cifar10'] = evals._class_set('tfds:cifar10', 10, 100, 'ranked', 'cifar10')
  m.classes['class_cifar100'] = evals._class_set('tfds:cifar100', 50, 50, 'ranked',
                                                 'cifar100')
  c.adapt.source = 'tfds:cifar10'


def _digits_sizes(c) -> None:
  """rwjax's evals on digits at CPU sizes (the demo's)."""
  c.seeds, c.batch_size = 2, 256
  p, m = c.evals.probes, c.evals.capacity
  p.classification.shifts = (2, 4, 8)
  p.exemplar.images, p.exemplar.n_train, p.exemplar.n_test = 20, 10, 5
  m.layers = 'stages'  # keeps the CPU demo fast
  m.exemplar.p, m.exemplar.m, m.n_t, m.project_dims = 5, 20, 50, 512
  m.classes['class_test'].update({'p': 5, 'm': 20})


def _paper_digits_sizes(c) -> None:
  c.seeds, c.batch_size, c.batchnorm_batch = 3, 256, 32
  p, m = c.evals.paper_probes, c.evals.paper_manifolds
  p.layers = 'paper_probe'
  p.logistic.steps = 100
  p.invariance.source, p.invariance.classes, p.invariance.per_class = 'digits', DIGITS, 100
  p.invariance.transforms = ('translate', 'none')
  p.classification.sources, p.classification.fit = ('digits',), 'resize'
  p.classification.max_train = p.classification.max_test = 300
  m.kinds = ('translate', 'class_digits')
  m.exemplar.source, m.exemplar.p, m.exemplar.m = 'digits', 5, 4
  del m.classes['class_cifar10'], m.classes['class_cifar100']
  m.classes['class_digits'] = evals._class_set('digits', 5, 10, 'first')
  m.n_t, m.project_dims, m.sim_trials = 50, 256, 4
  c.adapt.source, c.adapt.max_examples = 'digits', 300


def get_config(preset: str = 'rwjax'):
  if preset not in PRESETS:
    from rwjax.errors import InputError  # pylint: disable=g-import-not-at-top
    raise InputError(f'unknown preset {preset!r}; use one of {PRESETS} '
                     '(--config=configs/evaluate.py:PRESET)')
  c = defaults.evaluate_config()
  if preset in ('rwjax', 'combined'):
    rwjax_evals(c, 'tfds:cifar10', 'tfds:cifar100')
  elif preset == 'rwjax_folder':
    rwjax_evals(c, 'folder:data/cifar10', 'folder:data/cifar10')
  elif preset in ('digits', 'paper_digits'):
    rwjax_evals(c, 'digits', 'digits')
    _digits_sizes(c)
  if preset in ('paper', 'combined', 'paper_digits'):
    paper_evals(c)
  if preset == 'paper_digits':
    _paper_digits_sizes(c)
  return c
