"""The arms of the experiment's matrix: each an override of the pre-training config.

An arm's role: 'waves' (pre-trained on waves), 'control' (its movie altered: a shuffle of
`reference`'s movie, or noise in its place), 'baseline' (random init), 'null' (random inits
of other seeds standing in as pre-trained). '{movies}' in a value is the experiment's movie
directory (DIR/data/movies), '{recorded}' its recorded movie's.
"""

import dataclasses

# The paper's training protocol: whole-wave batches, its loss.
PAPER_PROTOCOL = {'data.batching': 'waves', 'loss.denominator': 'negatives'}
# Untrained arms: the network depends on config.seed alone; no simulator warm-up is needed.
UNTRAINED = {'train.steps': 0, 'data.warmup_s': 0.0, 'data.calibration_s': 0.1}


def movie(folder: str) -> dict:
  """The overrides of a file-source arm trained on the movie in `folder`."""
  return {'data.source': 'file', 'data.movie': folder + '/movie.npy',
          'data.labels': folder + '/labels.npy'}


@dataclasses.dataclass(frozen=True)
class Arm:
  role: str
  overrides: dict
  reference: str = ''  # a control's wave arm
  describe: str = ''

  @property
  def trained(self) -> bool:
    return self.overrides.get('train.steps') != 0

  @property
  def movies(self) -> tuple[str, ...]:
    """The experiment movies the arm trains on."""
    return tuple(v.split('/')[1] for v in self.overrides.values()
                 if isinstance(v, str) and v.startswith('{movies}/'))[:1]


def control(reference: str, overrides: dict, shuffle: str, describe: str) -> Arm:
  """A control of wave arm `reference` (trained with `overrides`): its movie shuffled."""
  return Arm('control', {**overrides, 'data.shuffle': shuffle}, reference, describe)


LANSDELL = movie('{movies}/lansdell')
PAPER_LANSDELL, PAPER_MOVIE, NOISE, RECORDED = (
    {**movie(m), **PAPER_PROTOCOL} for m in ('{movies}/lansdell', '{movies}/paper',
                                             '{movies}/noise', '{recorded}'))
ARMS = {
    'random_init': Arm('baseline', dict(UNTRAINED), describe='untrained network of the seed'),
    'lansdell': Arm('waves', {'data.source': 'sim', 'data.simulator': 'lansdell'},
                    describe='Lansdell model streamed from the on-device simulator'),
    'godfrey': Arm('waves', {'data.source': 'sim', 'data.simulator': 'godfrey'},
                   describe='Godfrey model streamed from the on-device simulator'),
    'movie_pairs': Arm('waves', dict(LANSDELL), describe="the saved Lansdell movie, rwjax's "
                       'protocol (random pairs, NT-Xent denominator)'),
    'temporal': control('movie_pairs', LANSDELL, 'temporal', 'order shuffled within each wave'),
    'spatial': control('movie_pairs', LANSDELL, 'spatial', 'one fixed pixel permutation'),
    'spatiotemporal': control('movie_pairs', LANSDELL, 'spatiotemporal',
                              'the temporal and spatial controls'),
    'lansdell_movie': Arm('waves', PAPER_LANSDELL, describe="the saved Lansdell movie, "
                          "whole-wave batches, the paper's loss"),
    'temporal_global': control('lansdell_movie', PAPER_LANSDELL, 'temporal_global',
                               "the paper's temporal shuffle (frames permuted globally)"),
    'spatial_per_frame': control('lansdell_movie', PAPER_LANSDELL, 'spatial_per_frame',
                                 "the paper's spatial shuffle (a pixel permutation per frame)"),
    'spatiotemporal_global': control('lansdell_movie', PAPER_LANSDELL, 'spatiotemporal_global',
                                     "the paper's two shuffles"),
    'paper_movie': Arm('waves', PAPER_MOVIE, describe="the paper-like movie (few, long waves), "
                       "the paper's protocol"),
    'paper_temporal_global': control('paper_movie', PAPER_MOVIE, 'temporal_global',
                                     "the paper's temporal shuffle of the paper-like movie"),
    'paper_spatial_per_frame': control('paper_movie', PAPER_MOVIE, 'spatial_per_frame',
                                       "the paper's spatial shuffle of the paper-like movie"),
    'noise': Arm('control', NOISE, 'paper_movie',
                 describe="noise with the paper-like movie's histogram, correlation lengths "
                 'and labels, no waves (rwjax.waves.noise)'),
    'recorded': Arm('waves', RECORDED, describe="stage II MEA recordings, the paper's protocol"),
    'null': Arm('null', dict(UNTRAINED),
                describe='random inits of other seeds standing in as pre-trained'),
}
# claims.waves_arm='auto': the first of these with results.
CLAIMS_ARMS = ('paper_movie', 'lansdell_movie', 'movie_pairs', 'lansdell')
