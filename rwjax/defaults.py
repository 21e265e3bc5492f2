"""Default configs: every key a binary reads, with its rule and the paper's value.

Config files in configs/ start from these and override what differs, so the trainer, the
evaluator and the tests share one schema; each binary reads its config in one place.
"""

import functools

import ml_collections

from rwjax import schema as S
from rwjax import waves
from rwjax.waves import frames


def _pretrain() -> tuple[ml_collections.ConfigDict, dict]:
  c, rules = ml_collections.ConfigDict(), {}
  key = functools.partial(S.key, c, rules)
  key('seed', 0, S.Int())
  key('multihost', False, S.Flag())  # jax.distributed.initialize() (TPU VM pods, multi-node GPU)

  # The network: ResNet-18 backbone + the paper's projection head.
  # 'imagenet' (7x7/2 conv + max-pool, the paper's) | 'cifar' (3x3/1 conv, no pool)
  key('model.stem', 'imagenet', S.Choice(('imagenet', 'cifar')))
  key('model.width', 64, S.Int(1))  # 64 = ResNet-18
  key('model.channels', 3, S.Choice((1, 3)))  # input channels
  key('model.projector', (512, 128), S.Seq(S.Int(1), min_len=1))  # hidden widths..., output
  # A bias on the projector's output layer (the paper's code: bias_last=False).
  key('model.projector_bias_last', True, S.Flag())
  # The compute dtype: 'auto' = bfloat16 on GPU/TPU, float32 on CPU.
  key('model.dtype', 'auto', S.Choice(('auto', 'float32', 'bfloat16')))
  # How convolutions are computed, the same sums in another order (the paper: PyTorch's):
  # 'matmul_small' (kernels wider than 1x1 onto maps of at most 4 positions as one matrix
  # product, where XLA's CPU convolution is slow: docs/training.md) | 'xla' (everywhere).
  key('model.conv', 'matmul_small', S.Choice(('matmul_small', 'xla')))

  # Where the training frames come from: 'sim' (on-device simulator) | 'file' (a movie .npy).
  key('data.source', 'sim', S.Choice(('sim', 'file')))
  key('data.simulator', 'lansdell', S.Choice(tuple(waves.MODELS)))
  # Every simulator's parameters (the models' defaults), e.g. the published ACh
  # diffusion constant: --config.data.sim_params.lansdell.diff=0.01. The lattice side
  # is data.sim_size. Checked by the simulator (rwjax.ssl.trainer.build_source).
  c.data.sim_params = ml_collections.ConfigDict({
      name: {k: v for k, v in model.Params()._asdict().items() if k != 'size'}
      for name, model in waves.MODELS.items()})
  key('data.sim_size', 64, S.Int(1))  # lattice cells per side
  key('data.input_size', 32, S.Int(1))  # network input pixels per side (block mean-pooled)
  # Frames -> network input (rwjax.waves.frames), for every source: 'per_retina' (each retina
  # z-scored per pixel and min-maxed at lattice resolution, then block-pooled) | 'paper' (its
  # src/data.py: pooled first, then one per-pixel z-score and one min-max over the whole movie).
  key('data.movie_norm', 'per_retina', S.Choice(frames.NORMS))
  # Independent retinas each device simulates: few enough to keep the simulator a small share
  # of the step (docs/performance.md), enough for the buffer to turn over every step.
  key('data.retinas_per_device', 128, S.Int(1))
  key('data.frames_per_step', 1, S.Int(1))  # fresh frames per retina per training step
  # Retinas take turns in this many groups, one group advancing per step: the simulator
  # costs 1/sim_groups per step; each frame stays buffered sim_groups times as many steps.
  key('data.sim_groups', 1, S.Int(1))
  # Recent frames per retina that pairs are drawn from: most Lansdell frames belong to a wave
  # (docs/training.md), so 128 x 32 frames give enough valid pairs for 512.
  key('data.buffer_frames', 32, S.Int(1))
  # Simulated seconds before frames are used (from rest, the first wave leaves every retina
  # refractory for ~2 minutes and the recovery is synchronised for a while: before ~300 s the
  # buffer can hold no waves), and those that fix the z-score/min-max transform.
  key('data.warmup_s', 300.0, S.Float(0))
  key('data.calibration_s', 300.0, S.Float(0, open_lo=True))
  key('data.threshold', ml_collections.config_dict.placeholder(float),  # None = model default
      S.Either(S.Float(), S.Choice((None,))))
  # Per-frame wave labels of the sim source (docs/training.md): 'components' (the wave finder's
  # 3-D connected components, tracked in-jit; the paper's, offline) | 'active_fraction' (a
  # frame with active_fraction of its pixels active; consecutive such frames are one wave).
  key('data.wave_labels', 'components', S.Choice(('components', 'active_fraction')))
  key('data.min_wave_size', 50, S.Int(1))  # pixel-frames; rwjax.waves.stats.DEFAULT_MIN_SIZE
  # Frames simulated ahead of those returned ('components'), so that a wave's labels settle
  # (it reaches min_wave_size, merges are seen) before pairs are drawn from its frames.
  key('data.label_delay', 10, S.Int(0))
  key('data.active_fraction', 0.01, S.Float(0, 1))  # a wave frame has this share of pixels active
  key('data.movie', '', S.Text())  # source='file': float32[B, T, H, W] or [T, H, W] .npy
  key('data.labels', '', S.Text())  # source='file': int32 per-frame wave labels .npy ('' = detect)
  # source='file': 'saved' = data.movie is one .npy written by `python -m rwjax.waves simulate /
  # convert`; any other = recordings read by rwjax.waves.readers ('auto': by the extension) and
  # prepared by rwjax.waves.dataset (data.movie: files, a comma-separated list, a folder or a glob).
  key('data.movie_format', 'saved',
      S.Choice(('saved', 'auto', 'tiff', 'npy', 'npz', 'hdf5', 'mat')))
  # .npz array / HDF5 dataset / MATLAB variable ('' = the only one; .mat: 'V')
  key('data.recorded.key', '', S.Text())
  key('data.recorded.axes', 'THW', S.Text(True))  # stored axis order, e.g. 'HWT' (.mat: size()'s)
  key('data.recorded.zscore', True, S.Flag())  # per-pixel z-score per recording (paper: over all)
  # min-max to [0, 1] over the whole dataset (the paper's), each recording, or none
  key('data.recorded.minmax', 'dataset', S.Choice(('dataset', 'recording', 'none')))
  key('data.recorded.dff_window_s', 0.0, S.Float(0))  # dF/F: rolling-median window, s (paper: off)
  # rotated copies added (paper: all three)
  key('data.recorded.rotations', (90, 180, 270), S.Seq(S.Choice((90, 180, 270))))
  key('data.recorded.frame_dt', 0.0, S.Float(0))  # s per frame: needed by the options in seconds
  key('data.recorded.pixel_mm', 0.0, S.Float(0))  # mm per pixel: needed by smooth_mm
  # Wave labels: [start, end) interval files (paper: watershed_waves_labels.npy), one or one
  # per movie; '' = find waves with data.threshold (movie units) after these options.
  key('data.recorded.intervals', '', S.Text())
  key('data.recorded.background_s', 0.0, S.Float(0))  # minus each pixel's rolling median (0 = off)
  key('data.recorded.detect_dff', False, S.Flag())  # detect on dF/F against that median instead
  key('data.recorded.smooth_s', 0.0, S.Float(0))  # Gaussian smoothing to detect: sigma in s...
  key('data.recorded.smooth_mm', 0.0, S.Float(0))  # ...and in space (mm)
  key('data.recorded.min_size', 50, S.Int(1))  # smallest wave, pixel-frames (waves.stats default)
  key('data.recorded.chunk_frames', 256, S.Int(1))  # frames read at once (larger-than-memory data)
  # source='file': where the movie lives in training (rwjax/ssl/placement.py): 'replicated'
  # (a copy on every device; the paper's single GPU holds its whole dataset) | 'sharded' (each
  # device its own contiguous part, sampled in-jit) | 'stream' (from the host, the next chunk put
  # on the devices while the step runs) | 'auto' = sharded when a shard fits data.device_bytes,
  # stream otherwise (replicated for a movie with fewer separate waves than devices).
  key('data.placement', 'auto', S.Choice(('auto', 'replicated', 'sharded', 'stream')))
  key('data.device_bytes', 4e9, S.Float(1))  # bytes of movie on each device, at most
  key('data.stream_steps', 1, S.Int(1))  # 'stream', pairs: steps each chunk of the movie serves
  key('data.frame_separation', 1, S.Int(1))  # positive = same wave's frame this many frames later
  # Controls (rwjax/ssl/pairs.py): 'none', the paper's three, and the within-wave / fixed
  # variants; 'temporal' | 'spatial' | 'spatiotemporal' are aliases of the last three.
  key('data.shuffle', 'none', S.Choice((
      'none', 'temporal_global', 'spatial_per_frame', 'spatiotemporal_global',
      'temporal_within_wave', 'spatial_fixed', 'spatiotemporal_within_wave',
      'temporal', 'spatial', 'spatiotemporal')))
  # How a step's views are drawn: 'pairs' (random chopped pairs from the buffer or movie,
  # train.batch_pairs of them) | 'waves' (the paper's whole-wave batches; source='file' only).
  key('data.batching', 'pairs', S.Choice(('pairs', 'waves')))
  key('data.wave_batch_frames', 3000, S.Int(1))  # waves: a batch closes past this (paper: 3000)
  # waves held out for the validation loss (paper: 0.2 sim, 0.1 recorded)
  key('data.val_fraction', 0.2, S.Float(0, 1, open_hi=True))
  # waves: epoch order, 'shuffled' anew | 'time' (the paper's)
  key('data.wave_order', 'shuffled', S.Choice(('shuffled', 'time')))
  key('data.augment.translate', 0, S.Int(0))  # max random shift in pixels (0 = off)
  key('data.augment.flip', False, S.Flag())
  key('data.augment.noise_std', 0.0, S.Float(0))

  key('loss.temperature', 0.5, S.Float(0, open_lo=True))
  # 'all' (NT-Xent: positives in the denominator) | 'negatives' (the paper's: frames of other
  # waves only; see rwjax/ssl/loss.py).
  key('loss.denominator', 'all', S.Choice(('negatives', 'all')))

  # 'adam' (paper: lr 1e-3, wd 1e-6) | 'lars' (SimCLR)
  key('optim.name', 'adam', S.Choice(('adam', 'lars')))
  key('optim.lr', 1e-3, S.Float(0, open_lo=True))  # LARS: the base lr, scaled by batch_pairs / 256
  key('optim.weight_decay', 1e-6, S.Float(0))
  key('optim.schedule', 'constant', S.Choice(('constant', 'cosine')))
  key('optim.warmup_steps', 0, S.Int(0))

  key('train.batch_pairs', 512, S.Int(1))  # global; 2 views per pair
  key('train.steps', 20_000, S.Int(0))
  key('train.epochs', 0, S.Int(0))  # waves: > 0 = epochs to run (paper: 100) instead of train.steps
  key('train.log_every', 100, S.Int(1))
  key('train.checkpoint_every', 1000, S.Int(1))
  key('train.keep_checkpoints', 3, S.Int(1))
  # Online natural-image accuracies (rwjax.eval.monitor) every this many steps, a multiple
  # of log_every (0 = off). Not in the paper (its evaluation runs after pre-training).
  key('train.monitor_every', 1000, S.Int(0))
  # any rwjax.data.sources spec: digits | tfds:<name> | folder:<path>
  key('monitor.source', 'digits', S.Text(True))
  key('monitor.train_split', 'train', S.Text(True))
  key('monitor.test_split', 'test', S.Text(True))
  key('monitor.max_train', 1000, S.Int(0))  # images held in device memory (0 = all)
  key('monitor.max_test', 500, S.Int(0))
  key('monitor.batch_size', 250, S.Int(1))  # divides both splits: one compiled feature step
  key('monitor.knn_k', 20, S.Int(1))  # solo-learn's WeightedKNNClassifier's: k 20, T 0.07, cosine
  key('monitor.knn_temperature', 0.07, S.Float(0, open_lo=True))
  key('monitor.probe_steps', 100, S.Int(1))
  key('monitor.probe_l2_grid', (1e-4, 1e-2, 1.0), S.Seq(S.Float(0), min_len=1))
  return c, rules


def pretrain_config() -> ml_collections.ConfigDict:
  """SimCLR pre-training on simulated retinal waves (arXiv:2312.02791 settings)."""
  return _pretrain()[0]


def pretrain_rules() -> dict:
  """The rule of every key of `pretrain_config` (data.sim_params: the simulator's)."""
  return _pretrain()[1]


def smoke_pretrain_config() -> ml_collections.ConfigDict:
  """CPU smoke pre-training (configs/pretrain_smoke.py, the demo): same path, tiny sizes."""
  c = pretrain_config()
  c.update_from_flattened_dict({
      'model.width': 8, 'model.projector': (64, 32), 'model.dtype': 'float32',
      'data.retinas_per_device': 8, 'data.buffer_frames': 16, 'data.calibration_s': 30.0,
      'train.batch_pairs': 32, 'train.steps': 60, 'train.log_every': 10,
      'train.checkpoint_every': 30,
      'train.monitor_every': 0})  # off: the smoke run times the training step
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
  # (docs/evaluation.md says why).
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
