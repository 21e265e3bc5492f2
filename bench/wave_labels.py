"""The stream's per-frame wave labels against the wave finder's; prints one JSON object.

  python -m rwjax.waves simulate --model=M --seconds=150 --warmup=300 --batch=2 --out=DIR
  python bench/wave_labels.py --movie=DIR [--model=M] [--delay=10] [--retinas=16]

For the movie's raw frames (simulator units) it compares, with
rwjax.waves.stats.frame_labels (3-D connected components of at least --min_size
pixel-frames) as the reference, the labels of the two stream rules of
rwjax/ssl/sources.py: 'active_fraction' (a frame with >= 1% active pixels is in a wave,
consecutive such frames are one wave) and 'components' (rwjax.ssl.wave_labels, each frame
labelled when it is --delay frames old, as the source exposes it). Per rule: the share of
frames labelled as a wave, the adjusted Rand index over the frames either labelling calls
a wave, the share of stream waves whose frames hold more than one finder wave (and the
median / max number they hold), and the share of finder waves that no stream wave has to
itself (no stream wave whose finder waves are exactly that one) and the share whose frames
the stream never labels as a wave. Cost: the labeller's time per frame for --retinas
retinas (frames of the movie, tiled), beside the simulator's for one frame of as many.
"""

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.metrics import adjusted_rand_score

from rwjax import waves
from rwjax.ssl import wave_labels
from rwjax.waves import movie as movie_lib
from rwjax.waves import stats


def agreement(stream: np.ndarray, finder: np.ndarray) -> dict:
  """Figures of stream labels against finder labels (both i32[B, T], batch-unique ids)."""
  s, f = stream.ravel(), finder.ravel()
  either = (s >= 0) | (f >= 0)
  held = [np.unique(f[(s == w) & (f >= 0)]) for w in np.unique(s[s >= 0])]
  n_held = np.array([h.size for h in held])
  own = {int(h[0]) for h in held if h.size == 1}
  finder_waves = np.unique(f[f >= 0])
  return dict(
      frames_active=float((s >= 0).mean()),
      ari=float(adjusted_rand_score(f[either], s[either])),
      stream_waves=len(held),
      spanning=float((n_held > 1).mean()) if held else None,
      finder_waves_per_stream_wave_median=float(np.median(n_held)) if held else None,
      finder_waves_per_stream_wave_max=int(n_held.max()) if held else None,
      finder_waves_without_own_label=float(np.mean([w not in own for w in finder_waves]))
      if finder_waves.size else None,
      finder_waves_unlabelled=float(np.mean([not (s[f == w] >= 0).any() for w in finder_waves]))
      if finder_waves.size else None)


def active_fraction_labels(masks: np.ndarray, fraction: float) -> np.ndarray:
  """The 'active_fraction' rule on masks bool[B, T, H, W] -> i32[B, T] (batch-unique)."""
  b = masks.shape[0]
  count, active = jnp.zeros(b, jnp.int32), jnp.zeros(b, bool)
  out = []
  for t in range(masks.shape[1]):
    count, active, wave = wave_labels.active_fraction_update(
        count, active, jnp.asarray(masks[:, t]), fraction)
    out.append(np.asarray(wave))
  out = np.stack(out, 1)
  return np.where(out >= 0, out + np.arange(b)[:, None] * (masks.shape[1] + 1), -1)


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--movie', required=True, help='a `python -m rwjax.waves simulate` directory')
  p.add_argument('--model', default=None, help="threshold's model (default: the movie's)")
  p.add_argument('--delay', type=int, default=10, help='frames of look-ahead (label_delay)')
  p.add_argument('--min_size', type=int, default=stats.DEFAULT_MIN_SIZE)
  p.add_argument('--active_fraction', type=float, default=0.01)
  p.add_argument('--retinas', type=int, default=16, help='retinas for the timing')
  args = p.parse_args()
  frames = np.asarray(movie_lib.load_movie(os.path.join(args.movie, movie_lib.MOVIE_FILE)))
  frames = frames[None] if frames.ndim == 3 else frames
  with open(os.path.join(args.movie, movie_lib.META_FILE)) as f:
    meta = json.load(f)
  model = waves.get_model(args.model or meta['model'])
  masks = frames > model.THRESHOLD
  finder = stats.frame_labels(frames, model.THRESHOLD, args.min_size)
  t0 = time.perf_counter()
  label = jax.jit(wave_labels.label_movie, static_argnums=(1, 2))
  comp = np.asarray(label(jnp.asarray(masks), args.min_size, args.delay))
  seconds = time.perf_counter() - t0
  comp = np.where(comp >= 0, comp + np.arange(len(comp))[:, None] * wave_labels.SLOTS, -1)
  print(json.dumps(dict(
      bench='wave_labels', movie=args.movie, model=model.__name__.split('.')[-1],
      shape=list(frames.shape), delay=args.delay, min_size=args.min_size,
      finder_frames_active=float((finder >= 0).mean()),
      finder_waves=int(np.unique(finder[finder >= 0]).size),
      active_fraction=agreement(active_fraction_labels(masks, args.active_fraction), finder),
      components=agreement(comp, finder), components_seconds=seconds,
      **cost(model, masks, args.retinas, args.min_size))))


def _seconds(fn, *args, repeats=5):
  jax.block_until_ready(fn(*args))
  t0 = time.perf_counter()
  for _ in range(repeats):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - t0) / repeats


def cost(model, masks: np.ndarray, retinas: int, min_size: int, frames: int = 50) -> dict:
  """ms per frame of the labeller (track + frame_labels over a 42-frame window, inside one
  jitted scan) and of the simulator (default Params of the movie's size) for `retinas`."""
  _, t, h, w = masks.shape
  m = np.tile(masks[:, t // 2:t // 2 + frames], (-(-retinas // len(masks)), 1, 1, 1))[:retinas]
  label = jax.jit(lambda tr, m: wave_labels.frame_labels(wave_labels.track(tr, m), min_size))
  label_s = _seconds(label, wave_labels.init(retinas, h, w, 42), jnp.asarray(m)) / frames
  params = model.Params(size=h)
  state = model.init(jax.random.PRNGKey(0), retinas, params)
  sim_s = _seconds(jax.jit(lambda s: model.advance(s, 1, params)), state)
  return dict(timing_retinas=retinas, labeller_ms_per_frame=label_s * 1e3,
              simulator_ms_per_frame=sim_s * 1e3, labeller_vs_simulator=label_s / sim_s)


if __name__ == '__main__':
  main()
