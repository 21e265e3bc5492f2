"""Fixed inputs of the evaluator's golden numbers (tests/eval/test_golden.py).

Shared by the recorder (bench/golden_evaluate.py, which runs the evaluator of an older commit
on them) and the test (today's evaluator on the same inputs): the architecture, the
evaluation sizes of each recorded case, and a planted wave movie. Nothing here calls rwjax.
"""

import numpy as np

# The network: the paper's architecture at width 4 on 16 x 16 input.
MODEL = {'stem': 'imagenet', 'width': 4, 'channels': 3, 'projector': (16, 8),
         'dtype': 'float32'}
INPUT_SIZE = 16
SEEDS = 2

# The planted wave movie: one 32 x 32 retina (pooled to 16 x 16), 8 waves.
WAVE_LENGTHS = (4, 7, 2, 10, 6, 12, 5, 9)  # frames of wave k; the 2-frame one is too short
GAP = 5  # quiet frames between waves
WAVES = {'wave_count': 4, 'wave_frames': (3, 12)}  # the wave manifolds' selection of them


def wave_movie() -> tuple[np.ndarray, np.ndarray]:
  """(movie f32[1, T, 32, 32], labels i32[1, T]): wave k is a Gaussian blob crossing the
  retina along its own direction, one frame per step, over WAVE_LENGTHS[k] frames; quiet
  frames hold small noise and label -1."""
  rng = np.random.RandomState(0)
  frames, labels = [], []
  yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
  for k, n in enumerate(WAVE_LENGTHS):
    angle = 2 * np.pi * k / len(WAVE_LENGTHS)
    for j in range(n):
      t = j / max(n - 1, 1)
      cy = 16 + 12 * (2 * t - 1) * np.sin(angle)
      cx = 16 + 12 * (2 * t - 1) * np.cos(angle)
      blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 4.0 ** 2))
      frames.append(blob + 0.02 * rng.randn(32, 32))
      labels.append(k)
    for _ in range(GAP):
      frames.append(0.02 * rng.randn(32, 32))
      labels.append(-1)
  return (np.asarray(frames, np.float32)[None], np.asarray(labels, np.int32)[None])


# The recorded cases: overrides of configs/evaluate.py presets, as the older evaluator read
# them ('seeds', 'batch_size' and data sizes common to all).
_COMMON = {'seeds': SEEDS, 'batch_size': 64,
           'data': {'max_train': 200, 'max_test': 100},
           'probe': {'steps': 50, 'l2_grid': (1e-3, 1e-1)}}
_RWJAX = {**_COMMON,
          'shift': {'pixels': (0, 2)},
          'exemplar': {'images': 6, 'n_train': 4, 'n_test': 2},
          'capacity': {'kinds': ('translate', 'rotate', 'color', 'class'), 'P': 4, 'M': 6,
                       'n_t': 20, 'project_dims': 64, 'layers': 'stages'},
          'batchnorm_adapt_images': 100}
_PAPER = {**_COMMON,
          'layers': ('pooled',), 'shift': {'enabled': False},
          'exemplar': {'enabled': False}, 'capacity': {'enabled': False},
          'batchnorm_adapt_images': 100,
          'paper_tasks': {'per_class': 20,
                          'transforms': ('translate', 'rotate', 'color', 'none')},
          # The encoder output and one shallow and one deep node (every layer a program
          # to compile); the paper's whole sets are the registry's (tests/models).
          'paper_probe': {'max_train': 200, 'max_test': 100,
                          'layers': 'pooled,stem_relu,layer4_block0_relu1', 'logistic': True},
          'paper_manifolds': {'kinds': ('translate', 'color', 'class_digits', 'waves'),
                              'exemplar_p': 4, 'exemplar_m': 5,
                              'classes': {'digits': {'p': 4, 'm': 6}},
                              'n_t': 20, 'project_dims': 64, 'simulate': True,
                              'sim_trials': 3, **WAVES,
                              # hooks in network order, the projector's Linear and output
                              'layers': 'input,stem_relu,layer2_block1_out,layer4_block1_out,'
                                        'projector_hidden0_linear,projector_output'}}


def _with(base: dict, **changes) -> dict:
  out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
  for k, v in changes.items():
    out[k] = {**out.get(k, {}), **v} if isinstance(v, dict) else v
  return out


# name -> (preset, overrides); 'batchnorm' / 'capacity.batchnorm' cover every mode for both
# the probes and the manifolds.
CASES = {
    'rwjax_running': ('digits', _with(_RWJAX, batchnorm='running')),
    'rwjax_batch_adapt': ('digits', _with(_RWJAX, batchnorm='batch', batchnorm_batch=32,
                                          capacity={'batchnorm': 'adapt'})),
    'rwjax_adapt_batch_relus': ('digits', _with(_RWJAX, batchnorm='adapt', batchnorm_batch=32,
                                                capacity={'batchnorm': 'batch',
                                                          'layers': 'relus'})),
    'paper_preset': ('paper_digits', _PAPER),  # probes 'batch' (32), manifolds 'running'
    'paper_adapt_relus': ('paper_digits', _with(_PAPER, batchnorm='adapt',
                                                capacity={'batchnorm': 'adapt'},
                                                paper_probe={'layers': 'pooled,layer1_block0_out,'
                                                                       'layer3_block1_relu1'})),
    'paper_running_batch': ('paper_digits', _with(_PAPER, batchnorm='running',
                                                  capacity={'batchnorm': 'batch'})),
}
