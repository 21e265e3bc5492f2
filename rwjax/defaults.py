"""Default configs: every key a binary reads, with the paper's values.

Config files in configs/ start from these and override what differs, so the
trainer, the evaluator and the tests share one schema. Configs are data: each
binary reads them in one place and passes plain values down.
"""

import ml_collections

from rwjax import schema as S
from rwjax import waves


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
  # How convolutions are computed, the same sums in another order (the paper: PyTorch's):
  # 'matmul_small' (kernels wider than 1x1 onto maps of at most 4 positions as one matrix
  # product, where XLA's CPU convolution is 10-100x slower: bench/conv.py) | 'xla'
  # (lax.conv_general_dilated everywhere; the numbers recorded before this key).
  c.model.conv = 'matmul_small'

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


def _evaluate() -> tuple[ml_collections.ConfigDict, dict]:
  c, r = ml_collections.ConfigDict(), {}
  # The pre-trained arm: one pre-training workdir (config.json + checkpoints/), or several
  # ('DIR1,DIR2,DIR3' and / or globs 'runs/seed*'; the paper pre-trained with seeds 42-44).
  S.key(c, r, 'workdir', '', S.Text())
  S.key(c, r, 'workdirs', '', S.Text())
  S.key(c, r, 'out', '', S.Text())  # '' = <workdir>/eval (required with several workdirs)
  # Random-init networks and draws per arm; with several workdirs, their count (seed s pairs
  # workdir s with random-init network s). The paper: 3.
  S.key(c, r, 'seeds', 3, S.Int(1))
  # 'auto' = paired over seeds with one workdir, Welch's t across networks with several
  # (rwjax.eval.stats says why).
  S.key(c, r, 'test', 'auto', S.Choice(('auto', 'welch', 'paired')))
  # Evaluate the random-init arm too (False: the pre-trained networks only, for callers that
  # compare across runs themselves, rwjax.experiment; halves the cost).
  S.key(c, r, 'random_init_arm', True, S.Flag())
  S.key(c, r, 'batch_size', 512, S.Int(1))  # images per forward step
  # BatchNorm mode 'batch': images per BatchNorm batch (0 = batch_size); the paper's 50.
  S.key(c, r, 'batchnorm_batch', 0, S.Int(0))
  # BatchNorm mode 'adapt': the images whose statistics replace the running ones (e.g. the
  # classification train split; `images` evenly spaced of them, 0 = all).
  S.key(c, r, 'adapt.source', '', S.Text())
  S.key(c, r, 'adapt.split', 'train', S.Text(True))
  S.key(c, r, 'adapt.max_examples', 0, S.Int(0))
  S.key(c, r, 'adapt.images', 0, S.Int(0))
  # 'dataset': normalised with the dataset's channel mean and std, as evals with normalize=
  # 'dataset' see their images (the paper's).
  S.key(c, r, 'adapt.normalize', 'none', S.Choice(('none', 'dataset')))
  S.key(c, r, 'data_dir', '', S.Text())  # TFDS data_dir ('' = TFDS's default)
  S.key(c, r, 'download', False, S.Flag())  # let TFDS download and prepare a missing dataset
  # The evaluations by name (rwjax.eval.evals; presets in configs/evaluate.py).
  c.evals = ml_collections.ConfigDict()
  return c, r


def evaluate_config() -> ml_collections.ConfigDict:
  """The evaluator's keys without evaluations (configs/evaluate.py adds its presets')."""
  return _evaluate()[0]


def evaluate_rules() -> dict:
  """The rule of every key of `evaluate_config` (config.evals entries: rwjax.eval.evals)."""
  return _evaluate()[1]


def config_file(name: str, arg: str = ''):
  """get_config(arg) of the repository's configs/NAME.py (presets live there, not here)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      'configs', f'{name}.py')
  spec = importlib.util.spec_from_file_location(f'rwjax_configs_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(*([arg] if arg else []))
