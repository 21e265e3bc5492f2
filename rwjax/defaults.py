"""Default configs: every key a binary reads, with the paper's values.

Config files in configs/ start from these and override what differs, so the
trainer, the evaluator and the tests share one schema. Configs are data: each
binary reads them in one place and passes plain values down.
"""

import ml_collections

from rwjax import waves
from rwjax.errors import InputError
from rwjax.eval.features import LAYERS
from rwjax.eval.probes import L2_GRID


def pretrain_config() -> ml_collections.ConfigDict:
  """SimCLR pre-training on simulated retinal waves (arXiv:2312.02791 settings)."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  # Call jax.distributed.initialize() (TPU VM pods, multi-node GPU).
  c.multihost = False

  # The network: ResNet-18 backbone + the paper's projection head.
  c.model = ml_collections.ConfigDict()
  c.model.stem = 'imagenet'  # 'imagenet' (7x7/2 + max-pool, the paper's) | 'cifar'
  c.model.width = 64
  c.model.channels = 3
  c.model.projector = (512, 128)  # hidden widths..., output width
  c.model.dtype = 'auto'  # 'auto' = bfloat16 on GPU/TPU, float32 on CPU

  # Where the training frames come from.
  c.data = ml_collections.ConfigDict()
  c.data.source = 'sim'  # 'sim' (on-device simulator) | 'file' (a movie .npy)
  c.data.simulator = 'lansdell'  # 'lansdell' | 'godfrey'
  # Every simulator's parameters (the models' defaults), e.g. the published ACh
  # diffusion constant: --config.data.sim_params.lansdell.diff=0.01. The lattice side
  # is data.sim_size.
  c.data.sim_params = ml_collections.ConfigDict({
      name: {k: v for k, v in model.Params()._asdict().items() if k != 'size'}
      for name, model in waves.MODELS.items()})
  c.data.sim_size = 64  # lattice cells per side
  c.data.input_size = 32  # network input pixels per side (block mean-pooled)
  # Independent retinas each device simulates: 128 keeps the simulator at ~1/7 of the
  # step on an H100 (bench/train_step.py) while the buffer still turns over every step.
  c.data.retinas_per_device = 128
  c.data.frames_per_step = 1  # fresh frames per retina per training step
  # Retinas take turns in this many groups, one group advancing per step: the simulator
  # costs 1/sim_groups per step; each frame stays buffered sim_groups times as many steps.
  c.data.sim_groups = 1
  # Recent frames per retina that pairs are drawn from: about a fifth of frames belong to
  # a wave, so 128 x 32 frames give enough valid pairs for 512 per step.
  c.data.buffer_frames = 32
  c.data.warmup_s = 300.0  # simulated seconds before frames are used (from rest, the
  # first wave leaves every retina refractory for ~2 minutes)
  c.data.calibration_s = 300.0  # simulated seconds that fix the z-score/min-max transform
  c.data.threshold = ml_collections.config_dict.placeholder(float)  # None = model default
  c.data.active_fraction = 0.01  # a frame is part of a wave when this share of pixels is active
  c.data.movie = ''  # source='file': float32[B, T, H, W] or [T, H, W] .npy
  c.data.labels = ''  # source='file': int32 per-frame wave labels .npy ('' = detect waves)
  c.data.frame_separation = 1  # positive = frame of the same wave this many frames later
  c.data.shuffle = 'none'  # controls: 'none' | 'temporal' | 'spatial' | 'spatiotemporal'
  c.data.augment = ml_collections.ConfigDict()
  c.data.augment.translate = 0  # max random shift in pixels (0 = off)
  c.data.augment.flip = False
  c.data.augment.noise_std = 0.0

  c.loss = ml_collections.ConfigDict()
  c.loss.temperature = 0.5

  c.optim = ml_collections.ConfigDict()
  c.optim.name = 'adam'  # 'adam' (paper: lr 1e-3, wd 1e-6) | 'lars' (SimCLR)
  c.optim.lr = 1e-3  # for LARS: the base lr, scaled by batch_pairs / 256
  c.optim.weight_decay = 1e-6
  c.optim.schedule = 'constant'  # 'constant' | 'cosine'
  c.optim.warmup_steps = 0

  c.train = ml_collections.ConfigDict()
  c.train.batch_pairs = 512  # global; 2 views per pair
  c.train.steps = 20_000
  c.train.log_every = 100
  c.train.checkpoint_every = 1000
  c.train.keep_checkpoints = 3
  # Online natural-image accuracies (rwjax.ssl.monitor) every this many steps, a multiple
  # of log_every (0 = off). Not in the paper (its evaluation runs after pre-training).
  c.train.monitor_every = 1000
  c.monitor = ml_collections.ConfigDict()
  c.monitor.source = 'digits'  # any rwjax.data.sources spec: digits | tfds:<name> | folder:<path>
  c.monitor.train_split = 'train'
  c.monitor.test_split = 'test'
  c.monitor.max_train = 1000  # images held in device memory (0 = all)
  c.monitor.max_test = 500
  c.monitor.batch_size = 250  # divides both splits: one compiled feature step
  c.monitor.knn_k = 20  # solo-learn's WeightedKNNClassifier defaults: k 20, T 0.07, cosine
  c.monitor.knn_temperature = 0.07
  c.monitor.probe_steps = 100
  c.monitor.probe_l2_grid = (1e-4, 1e-2, 1.0)
  return c


def smoke_pretrain_config() -> ml_collections.ConfigDict:
  """CPU smoke pre-training (configs/pretrain_smoke.py, the demo): same path, tiny sizes."""
  c = pretrain_config()
  c.model.width = 8
  c.model.projector = (64, 32)
  c.model.dtype = 'float32'
  c.data.retinas_per_device = 8
  c.data.buffer_frames = 16
  # From rest, the first wave leaves every retina refractory for ~2 minutes and the
  # recovery is synchronised for a while: before ~300 s the buffer can hold no waves.
  c.data.warmup_s = 300.0
  c.data.calibration_s = 30.0
  c.train.batch_pairs = 32
  c.train.steps = 60
  c.train.log_every = 10
  c.train.checkpoint_every = 30
  c.train.monitor_every = 0  # off: the smoke run times the training step
  return c


def evaluate_config(preset: str = 'cifar10') -> ml_collections.ConfigDict:
  """Evaluation against random-init networks (configs/evaluate.py and its presets)."""
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

  # Mean-field manifold capacity (rwjax.eval.capacity) of every layer's full (flattened)
  # representation. Exemplar manifolds: P images of exemplar.source / exemplar.split, M
  # transforms each (exemplar.max_shift / max_degrees / fill); class manifolds: P classes x
  # M images of the data.test_split. The paper's sizes.
  c.capacity = ml_collections.ConfigDict()
  c.capacity.enabled = True
  c.capacity.kinds = ('translate', 'rotate', 'color', 'class')
  c.capacity.P = 10  # Manifolds.
  c.capacity.M = 100  # Points per manifold.
  c.capacity.n_t = 500  # Gaussian draws per manifold.
  c.capacity.kappa = 0.0  # Margin.
  c.capacity.project_dims = 5000  # Wider layers are randomly projected to this many dims.
  # 'relus': every ReLU output of the ResNet-18 (the stem's and two per block, 17) and the
  # projector's hidden ReLUs and output, as in the paper; 'stages': config.layers.
  c.capacity.layers = 'relus'

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
    c.capacity.P, c.capacity.M, c.capacity.n_t = 5, 20, 50
    c.capacity.project_dims = 512
    c.capacity.layers = 'stages'  # Keeps the CPU demo fast.
  elif preset != 'cifar10':
    raise InputError(f"unknown preset {preset!r}; use 'cifar10', 'cifar10_folder' or 'digits'")
  return c
