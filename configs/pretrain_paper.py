"""The paper's pre-training protocol on its large simulated set (arXiv:2312.02791).

A fixed movie of 20,000 frames (32x32; here a 64x64 Lansdell lattice block mean-pooled to 32x32),
its waves labelled by the wave finder (rwjax.waves.stats: 3-D connected components, each frame
labelled with its dominant wave), per-pixel z-score over the whole movie then global min-max (the
paper's src/data.py), 3 identical channels, ResNet-18 with the imagenet stem, projector 512-128,
SimCLR with tau 0.5 and the paper's denominator (frames of other waves only), whole-wave batches
of more than 3,000 frames (20% of the waves held out for a validation loss every epoch), frame
separation 1, Adam lr 1e-4 (the paper's scripts; its configs/default_configs.py says 1e-3), weight
decay 1e-6, no schedule, 100 epochs, no augmentation.

Run (write the movie once, then train on it; any movie and labels can be passed instead):
  python -m rwjax.waves simulate --model=lansdell --seconds=2000 --warmup=300 --seed=0 \
      --out=workdirs/paper_movie
  python -m rwjax.train --config=configs/pretrain_paper.py --workdir=workdirs/paper \
      --config.data.movie=workdirs/paper_movie/movie.npy \
      --config.data.labels=workdirs/paper_movie/labels.npy

Controls (the paper's handling_retinal_wave_shuffling): --config.data.shuffle=temporal_global,
spatial_per_frame or spatiotemporal_global. A recorded movie: --config.data.val_fraction=0.1 (the
paper's held-out share for recorded waves). Random-init baseline: --config.train.steps=0.

Where this differs from the paper's code (src/train.py): the training waves are reshuffled every
epoch (--config.data.wave_order=time for the paper's fixed time order) and its last training wave,
which the paper's batching drops each epoch, is used; see rwjax/ssl/wave_batches.py. The paper's
last scripts trained the model-wave network as a ResNet-50 with an 8192-8192-8192 projector; the
paper's text and this config use the ResNet-18 / 512-128 setting.

Run time, measured on a 2-core CPU shared with other jobs (load average 16-30), jax 0.10.2,
float32, with 4 full-size steps of one epoch, not the whole run: the 20,000-frame movie from the
command above holds 901 labelled waves (longest 99 frames; 721 training, 180 validation), so an
epoch is 5 batches of 3,099 slots (4 of ~3,000 frames, 1 of 1,170) and the validation 2 batches.
Init (wave table, transform) 14 s; first step with compilation 366 s; then 460-960 s per step
(~710 s mean over steps 2-4). At a lower load (6-12) bench/train_step.py --batching=waves
--width=64 measured 162 s per step of 3,018 slots. Extrapolated: 100 epochs = 500 steps + 200
validation batches, about 25 hours (load ~9) to 100 hours (load ~20) here: use a GPU. On a GPU:
not measured (no device was lent to this session).
"""

from rwjax import defaults


def get_config():
  c = defaults.pretrain_config()
  c.data.source = 'file'
  c.data.movie = ''  # required: the movie (.npy, [T, H, W] or [B, T, H, W])
  c.data.labels = ''  # its per-frame wave labels; '' = run the wave finder on the movie
  c.data.simulator = 'lansdell'  # whose threshold the wave finder uses (unless data.threshold)
  c.data.input_size = 32
  c.data.batching = 'waves'
  c.data.wave_batch_frames = 3000
  c.data.val_fraction = 0.2  # simulated waves (0.1 for recorded ones)
  c.data.wave_order = 'shuffled'
  c.data.frame_separation = 1
  c.data.shuffle = 'none'
  c.model.stem = 'imagenet'
  c.model.width = 64
  c.model.channels = 3
  c.model.projector = (512, 128)
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
