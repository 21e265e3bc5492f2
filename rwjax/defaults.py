"""Default configs: every key a binary reads, with the paper's values.

Config files in configs/ start from these and override what differs, so the
trainer, the evaluator and the tests share one schema. Configs are data: each
binary reads them in one place and passes plain values down.
"""

import ml_collections


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
  c.data.sim_params = ml_collections.ConfigDict()  # overrides of the simulator's Params
  c.data.sim_size = 64  # lattice cells per side
  c.data.input_size = 32  # network input pixels per side (block mean-pooled)
  # Independent retinas each device simulates: 128 keeps the simulator at ~1/7 of the
  # step on an H100 (bench/train_step.py) while the buffer still turns over every step.
  c.data.retinas_per_device = 128
  c.data.frames_per_step = 1  # fresh frames per retina per training step
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
  return c


def smoke_pretrain_config() -> ml_collections.ConfigDict:
  """CPU smoke pre-training (configs/pretrain_smoke.py, the demo): same path, tiny sizes."""
  c = pretrain_config()
  c.model.width = 8
  c.model.projector = (64, 32)
  c.model.dtype = 'float32'
  c.data.retinas_per_device = 8
  c.data.buffer_frames = 16
  # From rest, the first wave leaves every retina refractory for ~2 minutes: the
  # warm-up must outlast that lull or the buffer holds no waves.
  c.data.warmup_s = 150.0
  c.data.calibration_s = 30.0
  c.train.batch_pairs = 32
  c.train.steps = 60
  c.train.log_every = 10
  c.train.checkpoint_every = 30
  return c
