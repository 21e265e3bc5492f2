"""The paper's pre-training on recorded retinal waves (or your own recordings).

Any number of movie files, each one recording [T, H, W]: multi-page TIFF, .npy, .npz,
HDF5 or MATLAB (rwjax/waves/readers.py), prepared as the paper prepared its five
3,600-frame 128x128 TIFF stacks (rwjax/waves/dataset.py): per-pixel z-score over time
per recording, one min-max to [0, 1] over the whole dataset, 4x4 mean-pooling to 32x32,
copies rotated by 90, 180 and 270 degrees, grey replicated to 3 channels. Waves come
from [start, end) frame-interval files (the paper's watershed_waves_labels.npy layout)
or are found with a threshold. The rest is the paper's protocol, configs/pretrain_paper.py:
ResNet-18, SimCLR with the paper's denominator on whole-wave batches of more than 3,000
frames, Adam lr 1e-4, 100 epochs, with 10% of the waves held out (the paper's share for
recorded waves) for the validation loss. Random pairs instead:
--config.data.batching=pairs --config.train.epochs=0 --config.train.steps=N.

Run (the paper's files; one interval file counting frames over the five in order, or one
interval file per movie, comma-separated in the same order):
  python -m rwjax.train --config=configs/pretrain_recorded.py --workdir=workdirs/recorded \
      --config.data.movie=DATA/210830_001-oriented.tif,DATA/210830_002-oriented.tif,\
DATA/210830_003-oriented.tif,DATA/210830_004-oriented.tif,DATA/210830_005-oriented.tif \
      --config.data.recorded.intervals=DATA/intervals.npy

A folder or a glob works too (--config.data.movie=DATA/ or 'DATA/*.tif'). Other layouts:
  --config.data.recorded.key=V --config.data.recorded.axes=HWT   # MATLAB H x W x T
  --config.data.recorded.key=imaging/F                           # an HDF5 dataset
Finding the waves instead of reading intervals (threshold in the movie's units after the
background subtraction; seconds and mm need the frame interval and pixel size):
  --config.data.threshold=0.2 --config.data.recorded.background_s=30 \
      --config.data.recorded.detect_dff=True --config.data.recorded.frame_dt=0.1
The paper's preprocessing steps are config values (rwjax/defaults.py, data.recorded):
  --config.data.recorded.rotations='()' --config.data.recorded.minmax=recording \
      --config.data.recorded.dff_window_s=30 --config.data.recorded.frame_dt=0.1

Expected: the dataset is read and prepared on the host at start (recordings are read in
chunks, so files larger than memory work): 20 rows (5 recordings x 4 orientations) of
3,600 frames of 32x32, 295 MB in float32. Rows of different length are padded with
unlabelled frames. Its wave frames then sit in device memory sharded over the devices
(each its own contiguous part), or are streamed from the host when a part exceeds
--config.data.device_bytes (config.data.placement, rwjax/ssl/placement.py). Checkpoints and metrics as for
configs/pretrain_waves.py; the movie is not checkpointed (resuming reads it again).
"""

import os
import runpy


def get_config():
  c = runpy.run_path(os.path.join(os.path.dirname(__file__), 'pretrain_paper.py'))['get_config']()
  c.data.val_fraction = 0.1  # the paper's held-out share of recorded waves
  # Per-recording z-scores at full resolution, then pooling (the docstring's order); the
  # paper's (pool, then one z-score over all recordings and rotations): 'paper'.
  c.data.movie_norm = 'per_retina'
  c.data.movie_format = 'auto'  # from each file's extension
  c.data.movie = ''  # required: --config.data.movie=FILES
  return c
