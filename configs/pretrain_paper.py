"""The paper's pre-training protocol on its large simulated set (arXiv:2312.02791).

A fixed movie of 20,000 frames (32x32; here a 64x64 Lansdell lattice block mean-pooled to 32x32)
whose waves are as long, in frames, as the paper's (docs/paper_movie.md: 62 waves of a mean 312
frames, 97% of frames in a wave, ~10 waves per 3,000-frame batch; the paper's set: 791 waves in
237,424 frames, a mean 300), its waves labelled by the wave finder (rwjax.waves.stats: 3-D
connected components of at least data.min_wave_size pixel-frames, each frame labelled with its
dominant wave), normalised as the paper's src/data.py does (data.movie_norm='paper': pooled, then
one per-pixel z-score and one min-max over the whole movie), 3 identical channels, ResNet-18 with
the imagenet stem, projector 512-128 without a bias on its last layer (the paper's
bias_last=False), SimCLR with tau 0.5 and the paper's denominator (frames of other waves only),
whole-wave batches of more than 3,000 frames (20% of the waves held out for a validation loss
every epoch), frame separation 1, Adam lr 1e-4 (the paper's scripts; its
configs/default_configs.py says 1e-3), weight decay 1e-6, no schedule, 100 epochs, no
augmentation.

The movie: the Lansdell model with the diffusion constant fitted to a P6 recording of Maccione et
al. (2014) (D 0.0022 mm^2/s, README "Recorded waves"), on a 4 mm retina (64 cells: the fit's
lattice spacing), its initiation probability raised to 1.6e-4 per cell and 0.1 s window so that
waves follow each other as closely as in the paper's set, filmed every 5 ms (spont_frames=20
frames per spontaneous-input window): 20,000 frames = 100 s. Waves of >= 1000 pixel-frames (50 at
0.1 s frames, the default, times the 20x frame rate). The values are data.sim_params.lansdell and
data.min_wave_size below; the movie is written once (36 s on 2 CPU cores):

  python -m rwjax.waves simulate --model=lansdell --size=64 --seconds=100 --batch=1 \
      --warmup=300 --seed=0 --min-size=1000 --param frame_dt=0.005 --param spont_frames=20 \
      --param extent_mm=4.0 --param diff=0.0022 --param spont_prob=0.00016 \
      --out=workdirs/paper_movie
  python -m rwjax.train --config=configs/pretrain_paper.py --workdir=workdirs/paper \
      --config.data.movie=workdirs/paper_movie/movie.npy \
      --config.data.labels=workdirs/paper_movie/labels.npy

Any movie and labels can be passed instead (rwjax's earlier movie: `simulate --model=lansdell
--seconds=2000 --warmup=300 --seed=0`, 0.1 s frames on 2 mm, ~18 frames per wave). Noise without
waves of the same histogram, correlation lengths and labels (a control):
  python -m rwjax.waves noise --like=workdirs/paper_movie --out=workdirs/paper_noise --seed=0
  ... --config.data.movie=workdirs/paper_noise/movie.npy \
      --config.data.labels=workdirs/paper_noise/labels.npy

Controls (the paper's handling_retinal_wave_shuffling): --config.data.shuffle=temporal_global,
spatial_per_frame or spatiotemporal_global. A recorded movie: --config.data.val_fraction=0.1 (the
paper's held-out share for recorded waves). Random-init baseline: --config.train.steps=0.
rwjax's earlier choices: --config.data.movie_norm=per_retina,
--config.model.projector_bias_last=True.

Where this differs from the paper's code (src/train.py): the training waves are reshuffled every
epoch (--config.data.wave_order=time for the paper's fixed time order) and its last training wave,
which the paper's batching drops each epoch, is used; see rwjax/ssl/wave_batches.py. The paper's
last scripts trained the model-wave network as a ResNet-50 with an 8192-8192-8192 projector; the
paper's text and this config use the ResNet-18 / 512-128 setting.

Run time. An epoch of this movie is 5-6 batches (50 training waves); a batch has 3,000 + the
longest wave (1,547 frames) = 4,547 slots, padded, so that one compiled step serves all. Measured
with the earlier 0.1 s movie (batches of 3,099 slots), on a 2-core CPU shared with other jobs
(load average 16-30), jax 0.10.2, float32, 4 full-size steps: init 14 s; first step with
compilation 366 s; then 460-960 s per step; at a lower load (6-12) bench/train_step.py
--batching=waves --width=64 measured 162 s per step of 3,018 slots. 100 epochs (~550 steps) are a
GPU run. On a GPU: not measured.
"""

from rwjax import defaults


def get_config():
  c = defaults.pretrain_config()
  c.data.source = 'file'
  c.data.movie_norm = 'paper'  # its src/data.py: pool, z-score per pixel, min-max, whole movie
  c.data.movie = ''  # required: the movie (.npy, [T, H, W] or [B, T, H, W])
  c.data.labels = ''  # its per-frame wave labels; '' = run the wave finder on the movie
  c.data.simulator = 'lansdell'  # whose threshold the wave finder uses (unless data.threshold)
  c.data.input_size = 32
  c.data.batching = 'waves'
  # The movie's wave finder (and the simulate command's --min-size): waves of >= 1000 pixel-
  # frames at 5 ms frames (the default 50 at 0.1 s frames, times the frame rate).
  c.data.min_wave_size = 1000
  # The movie's simulator (docstring; `python -m rwjax.waves simulate --param NAME=VALUE`):
  # the fitted D on a 4 mm retina, filmed every 5 ms. Saved movies only: the on-device source
  # advances one frame at a time, which needs spont_frames=1.
  lansdell = c.data.sim_params.lansdell
  lansdell.frame_dt = 0.005  # s per frame (rwjax's default 0.1)
  lansdell.spont_frames = 20  # frames per 0.1 s spontaneous-input window
  lansdell.extent_mm = 4.0  # 64 cells: spacing 0.063 mm, the fit's (32 cells over 2 mm)
  lansdell.diff = 0.0022  # mm^2/s, fitted to a P6 recording (default 0.005, published 0.01)
  lansdell.spont_prob = 1.6e-4  # per cell and window (published 1.25e-4, fit 9.6e-5)
  c.data.wave_batch_frames = 3000
  c.data.val_fraction = 0.2  # simulated waves (0.1 for recorded ones)
  c.data.wave_order = 'shuffled'
  c.data.frame_separation = 1
  c.data.shuffle = 'none'
  c.model.stem = 'imagenet'
  c.model.width = 64
  c.model.channels = 3
  c.model.projector = (512, 128)
  c.model.projector_bias_last = False  # the paper's bias_last=False
  c.loss.temperature = 0.5
  c.loss.denominator = 'negatives'
  c.optim.name = 'adam'
  c.optim.lr = 1e-4
  c.optim.weight_decay = 1e-6
  c.optim.schedule = 'constant'
  c.optim.warmup_steps = 0
  c.train.epochs = 100
  c.train.log_every = 5
  c.train.checkpoint_every = 50
  return c
