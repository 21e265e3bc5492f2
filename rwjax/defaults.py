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
  # A bias on the projector's output layer: True (rwjax's original head) | False (the paper's
  # code: bias_last=False, configs/pretrain_paper.py).
  c.model.projector_bias_last = True
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
  # Frames -> network input (rwjax.waves.frames): 'per_retina' (each retina z-scored per pixel
  # and min-maxed at lattice resolution, then block-pooled; rwjax's original) | 'paper' (its
  # src/data.py: pooled first, then one per-pixel z-score and one min-max over the whole movie).
  # Every source: the saved movie, recordings (data.recorded), the on-device simulator.
  c.data.movie_norm = 'per_retina'
  # Independent retinas each device simulates: 128 keeps the simulator at ~1/7 of the
  # step on an H100 (bench/train_step.py) while the buffer still turns over every step.
  c.data.retinas_per_device = 128
  c.data.frames_per_step = 1  # fresh frames per retina per training step
  # Retinas take turns in this many groups, one group advancing per step: the simulator
  # costs 1/sim_groups per step; each frame stays buffered sim_groups times as many steps.
  c.data.sim_groups = 1
  # Recent frames per retina that pairs are drawn from: 81% of Lansdell frames belong to a
  # wave (wave finder and 'components' labels alike; 2 retinas, 150 s after 300 s of warm-up,
  # bench/wave_labels.py; Godfrey: 5.5%), so 128 x 32 frames give enough valid pairs for 512.
  c.data.buffer_frames = 32
  c.data.warmup_s = 300.0  # simulated seconds before frames are used (from rest, the
  # first wave leaves every retina refractory for ~2 minutes)
  c.data.calibration_s = 300.0  # simulated seconds that fix the z-score/min-max transform
  c.data.threshold = ml_collections.config_dict.placeholder(float)  # None = model default
  # Per-frame wave labels of the sim source (rwjax/ssl/sources.py): 'components' (the wave
  # finder's, rwjax.waves.stats.frame_labels: 3-D connected components, tracked in-jit) or
  # 'active_fraction' (the earlier rule: a frame is part of a wave when active_fraction of
  # its pixels are active; consecutive such frames are one wave). The paper labelled its
  # movies offline with connected components.
  c.data.wave_labels = 'components'
  c.data.min_wave_size = 50  # pixel-frames; rwjax.waves.stats.DEFAULT_MIN_SIZE
  # Frames simulated ahead of those returned ('components'), so that a wave's labels settle
  # (it reaches min_wave_size, merges are seen) before pairs are drawn from its frames.
  c.data.label_delay = 10
  c.data.active_fraction = 0.01  # a frame is part of a wave when this share of pixels is active
  c.data.movie = ''  # source='file': float32[B, T, H, W] or [T, H, W] .npy
  c.data.labels = ''  # source='file': int32 per-frame wave labels .npy ('' = detect waves)
  # source='file': 'saved' = data.movie is one .npy written by `python -m rwjax.waves
  # simulate / convert`; any other value = recordings read by rwjax.waves.readers and
  # prepared by rwjax.waves.dataset (data.movie: files, a comma-separated list, a folder or
  # a glob): 'auto' (from the extension) | 'tiff' | 'npy' | 'npz' | 'hdf5' | 'mat'.
  c.data.movie_format = 'saved'
  c.data.recorded = ml_collections.ConfigDict()
  r = c.data.recorded
  r.key = ''  # .npz array / HDF5 dataset / MATLAB variable ('' = the only one; .mat: 'V')
  r.axes = 'THW'  # stored axis order (MATLAB's size() order for .mat), e.g. 'HWT'
  r.zscore = True  # per-pixel z-score over time, per recording (paper: over all at once)
  r.minmax = 'dataset'  # 'dataset' (paper: one min-max over all) | 'recording' | 'none'
  r.dff_window_s = 0.0  # dF/F against a rolling median over this many s (paper: off)
  r.rotations = (90, 180, 270)  # rotated copies added (paper: all three)
  r.frame_dt = 0.0  # seconds per frame: needed by the options given in seconds
  r.pixel_mm = 0.0  # mm per pixel: needed by smooth_mm
  # Wave labels: [start, end) interval files (paper: watershed_waves_labels.npy), one or one
  # per movie; '' = find waves with data.threshold (movie units) after these options.
  r.intervals = ''
  r.background_s = 0.0  # subtract each pixel's rolling median over this many s (0 = off)
  r.detect_dff = False  # detect on dF/F against that median instead
  r.smooth_s = 0.0  # Gaussian smoothing before detection: sigma in time (s)...
  r.smooth_mm = 0.0  # ...and in space (mm)
  r.min_size = 50  # smallest wave in pixel-frames (rwjax.waves.stats.DEFAULT_MIN_SIZE)
  r.chunk_frames = 256  # frames read at a time (recordings larger than memory stream)
  # source='file': where the movie lives in training (rwjax/ssl/placement.py): 'replicated'
  # (a copy on every device; the paper's single GPU holds its whole dataset) | 'sharded' (each
  # device its own contiguous part, sampled in-jit) | 'stream' (from the host, the next chunk put
  # on the devices while the step runs) | 'auto' = sharded when a shard fits data.device_bytes,
  # stream otherwise (replicated for a movie with fewer separate waves than devices).
  c.data.placement = 'auto'
  c.data.device_bytes = 4e9  # bytes of device memory the movie may take on each device
  c.data.stream_steps = 1  # 'stream', pairs: steps each chunk of the movie serves
  c.data.frame_separation = 1  # positive = frame of the same wave this many frames later
  c.data.shuffle = 'none'  # controls: 'none' | 'temporal' | 'spatial' | 'spatiotemporal'
  # (the paper's: 'temporal_global', 'spatial_per_frame', 'spatiotemporal_global'; the older
  # names are aliases of 'temporal_within_wave', 'spatial_fixed', 'spatiotemporal_within_wave';
  # see rwjax/ssl/pairs.py)
  # How a step's views are drawn: 'pairs' (random chopped pairs from the buffer or movie,
  # train.batch_pairs of them) | 'waves' (the paper's whole-wave batches; source='file' only).
  c.data.batching = 'pairs'
  c.data.wave_batch_frames = 3000  # waves: a batch closes once it holds more frames (paper: 3000)
  c.data.val_fraction = 0.2  # waves held out for the validation loss (paper: 0.2 sim, 0.1 recorded)
  c.data.wave_order = 'shuffled'  # waves: epoch order, 'shuffled' anew | 'time' (the paper's)
  c.data.augment = ml_collections.ConfigDict()
  c.data.augment.translate = 0  # max random shift in pixels (0 = off)
  c.data.augment.flip = False
  c.data.augment.noise_std = 0.0

  c.loss = ml_collections.ConfigDict()
  c.loss.temperature = 0.5
  # 'all' (NT-Xent: positives in the denominator) | 'negatives' (the paper's: frames of other
  # waves only; see rwjax/ssl/loss.py).
  c.loss.denominator = 'all'

  c.optim = ml_collections.ConfigDict()
  c.optim.name = 'adam'  # 'adam' (paper: lr 1e-3, wd 1e-6) | 'lars' (SimCLR)
  c.optim.lr = 1e-3  # for LARS: the base lr, scaled by batch_pairs / 256
  c.optim.weight_decay = 1e-6
  c.optim.schedule = 'constant'  # 'constant' | 'cosine'
  c.optim.warmup_steps = 0

  c.train = ml_collections.ConfigDict()
  c.train.batch_pairs = 512  # global; 2 views per pair
  c.train.steps = 20_000
  c.train.epochs = 0  # batching='waves': > 0 runs this many epochs (paper: 100) instead of steps
  c.train.log_every = 100
  c.train.checkpoint_every = 1000
  c.train.keep_checkpoints = 3
  # Online natural-image accuracies (rwjax.eval.monitor) every this many steps, a multiple
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
  c.workdir = ''  # The pre-training workdir (config.json + checkpoints/); this or workdirs.
  # Several pre-training runs for the pre-trained arm, one value per network: 'DIR1,DIR2,DIR3'
  # and / or globs ('runs/seed*'); the paper pre-trained with seeds 42, 43, 44.
  c.workdirs = ''
  c.out = ''  # '' = <workdir>/eval (required with several workdirs).
  # Random-init networks and probe / task draws per arm; with several workdirs, their count
  # (seed s pairs workdir s with random-init network s).
  c.seeds = 3
  # Test between the arms: 'auto' = paired over seeds with one workdir (rwjax's original),
  # Welch's t across networks with several (rwjax.eval.stats says why); 'welch' | 'paired'.
  c.test = 'auto'
  # Evaluate the random-init arm (rwjax's original and the paper's comparison). False: only
  # the pre-trained networks are evaluated and rows carry their summary with no comparison,
  # for callers that compare across runs themselves (rwjax.experiment); halves the cost.
  c.random_init_arm = True
  c.batch_size = 512  # Images per feature-extraction step.
  c.layers = LAYERS
  # BatchNorm statistics of the frozen networks on natural images, both arms alike
  # (rwjax.eval.batchnorm): 'running' (the stored ones; rwjax's original), 'batch' (each
  # feature-extraction batch's; the paper's probes), 'adapt' (recomputed once on the probe's
  # training images, then fixed).
  c.batchnorm = 'running'
  c.batchnorm_batch = 0  # 'batch': images per BatchNorm batch (0 = batch_size); paper: 50.
  c.batchnorm_adapt_images = 0  # 'adapt': training images to adapt on (0 = all).

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
  # BatchNorm mode of the manifold analysis ('' = config.batchnorm); the paper's
  # (src/mftma_analysis.py: model.eval()) is 'running'.
  c.capacity.batchnorm = ''

  _paper_protocol_keys(c)

  if preset == 'cifar10_folder':
    c.data.source = 'folder:data/cifar10'
    c.exemplar.source = 'folder:data/cifar10'
  elif preset == 'paper':
    _enable_paper_protocol(c, digits=False)
  elif preset == 'paper_digits':  # The digits preset with the paper's protocol on digits.
    c = evaluate_config('digits')
    _enable_paper_protocol(c, digits=True)
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
    raise InputError(f"unknown preset {preset!r}; use 'cifar10', 'cifar10_folder', 'digits', "
                     "'paper' or 'paper_digits'")
  if preset in ('paper', 'paper_digits'):
    _paper_protocol(c, digits=preset == 'paper_digits')
  return c


def _paper_protocol(c: ml_collections.ConfigDict, digits: bool) -> None:
  """The paper's evaluation protocol on top of an evaluate config (issue 13): its BatchNorm
  handling and its statistics over pre-training seeds here; its tasks, probes and manifolds
  (eval-tasks-manifolds) beside them. digits: the CPU-test sizes (scikit-learn digits)."""
  c.seeds = 3  # The paper: pre-training seeds 42, 43, 44 (pass 3 workdirs).
  c.test = 'auto'  # Welch's t across networks with several workdirs.
  c.batchnorm = 'batch'  # src/test.py trains its probes with the encoder in train mode...
  c.batchnorm_batch = 50  # ...on batches of 50 (its probe's batch size).
  c.capacity.batchnorm = 'running'  # src/mftma_analysis.py: model.eval().
  if digits:
    c.batchnorm_batch = 32
    c.data.max_train, c.data.max_test = 300, 300  # >= capacity.M = 20 test images per class
    c.probe.steps = 100


def _paper_protocol_keys(c: ml_collections.ConfigDict) -> None:
  """The paper's tasks, probes and manifolds (rwjax.eval.paper; off unless a preset or
  --config.paper_*.enabled=True turns them on). Paper values from its code, commit f39aa6d."""
  from rwjax.data import paper_tasks  # pylint: disable=g-import-not-at-top
  # Invariance classification (its CIFAR100_classify_augs): 10 classes x all 600 images
  # (train + test pooled), each transformed once, split 5/6 : 1/6 by a seeded draw.
  t = c.paper_tasks = ml_collections.ConfigDict()
  t.enabled = False
  t.source = 'tfds:cifar100'  # Or folder:<CIFAR-100 folder>; CIFAR-10 stands in here.
  t.splits = ('train', 'test')  # Pooled.
  t.classes = paper_tasks.DEFAULT_CLASSES  # Paper: unknown (its tensor's script is missing).
  t.per_class = paper_tasks.PER_CLASS  # 600 = all of CIFAR-100's; 0 = every image.
  t.transforms = ('translate', 'rotate', 'color', 'none')
  t.translate = 0.5  # RandomAffine(0, translate=(0.5, 0.5)).
  t.degrees = 180.0  # RandomAffine(180).
  t.jitter = (0.5, 0.5, 0.5, 0.5)  # ColorJitter(brightness, contrast, saturation, hue).
  t.fill = 0.0  # Uncovered pixels (torchvision's 0).

  # Probes: (a) the paper's Adam linear layer, best test accuracy over epochs ("paper
  # protocol"), (b) today's logistic probe (config.probe) on the same features.
  p = c.paper_probe = ml_collections.ConfigDict()
  p.enabled = False
  p.lr = 1e-4  # Paper: 1e-4.
  p.batch_size = 50  # Paper: 50.
  p.epochs = 4  # Paper: range(1, 5).
  p.weight_decay = 1e-6  # Paper: Adam weight_decay 1e-6.
  # 'relus': pooled + all 17 ReLUs; 'paper': pooled + its 9 probe nodes; or 'name,name,...'.
  p.layers = 'relus'
  p.logistic = True  # Also today's probe (config.probe settings) on every task and layer.
  # Plain classification datasets (their data.train_split / data.test_split).
  p.classification = ('tfds:mnist', 'tfds:cifar10')
  p.fit = 'pad'  # Smaller images (MNIST 28x28) zero-padded to the input size; 'resize'.
  p.max_train = 0  # 0 = all (else an evenly spaced subset), for CPU runs.
  p.max_test = 0

  m = c.paper_manifolds = ml_collections.ConfigDict()
  m.enabled = False
  m.kinds = ('translate', 'color', 'class_cifar10', 'class_cifar100', 'waves')
  m.exemplar_source = 'tfds:cifar100'  # Paper: CIFAR-100 test images.
  m.exemplar_split = 'test'
  m.exemplar_p = 50  # Paper: 50 images...
  m.exemplar_m = 20  # ...x 20 transforms.
  m.translate = 0.1  # RandomAffine(0, translate=(0.1, 0.1)).
  m.jitter = (0.5, 0.5, 0.5, 0.5)  # ColorJitter(0.5, 0.5, 0.5, 0.5).
  # Class manifolds: kind 'class_<name>' reads classes.<name>. Paper: CIFAR-10 10 x 100,
  # CIFAR-100 50 (random) x 50, from its ranked lists ('ranked' needs TFDS ids).
  m.classes = ml_collections.ConfigDict({
      'cifar10': {'source': 'tfds:cifar10', 'p': 10, 'm': 100, 'ranked': 'cifar10'},
      'cifar100': {'source': 'tfds:cifar100', 'p': 50, 'm': 50, 'ranked': 'cifar100'}})
  m.class_selection = 'ranked'  # 'ranked' | 'confidence' | 'first'.
  # 'confidence': the logistic probe's network: 'pretrained', 'random_init' (seed 0's) or a
  # pre-training workdir; '' = not chosen (an error when needed).
  m.confidence_network = ''
  # Wave manifolds: '' = the pre-training's data.movie / data.labels (file source); skipped
  # when there is none.
  m.wave_movie = ''
  m.wave_labels = ''
  m.wave_count = 50  # Paper: the first 50 waves...
  m.wave_frames = (50, 132)  # ...of 50 to 132 frames.
  m.layers = 'paper'  # The paper's hooks (13 for ResNet-18 + 512-128), or 'name,name,...'.
  m.n_t = 500  # Paper: 500.
  m.kappa = 0.0  # Paper: 0.
  m.project_dims = 5000  # Paper: wider layers projected to 5,000.
  m.variance = 0.9  # Paper: perc=0.90 (components holding 90% of the variance).
  m.simulate = True  # Simulated capacity at the encoder output and projector layers.
  m.sim_trials = 100  # Paper: n_rep=100.


def _enable_paper_protocol(c: ml_collections.ConfigDict, digits: bool) -> None:
  """Turns on the paper's tasks, probes and manifolds; `digits`: scikit-learn's digits for
  everything at CPU-test sizes."""
  c.paper_tasks.enabled = c.paper_probe.enabled = c.paper_manifolds.enabled = True
  if not digits:
    return
  t, p, m = c.paper_tasks, c.paper_probe, c.paper_manifolds
  t.source = 'digits'
  t.classes = tuple(str(i) for i in range(10))
  t.per_class = 100  # digits has 174..183 per class (train + test)
  t.transforms = ('translate', 'none')
  p.classification = ('digits',)
  p.layers = 'paper'
  p.fit = 'resize'  # 8x8 digits
  m.kinds = ('translate', 'class_digits')
  m.exemplar_source, m.exemplar_p, m.exemplar_m = 'digits', 5, 4
  m.classes = ml_collections.ConfigDict({'digits': {'source': 'digits', 'p': 5, 'm': 10,
                                                    'ranked': ''}})
  m.class_selection = 'first'
  m.n_t, m.project_dims, m.sim_trials = 50, 256, 4
