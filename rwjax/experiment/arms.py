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


def movie(name: str) -> dict:
  """The overrides of a file-source arm trained on the experiment's movie `name`."""
  return {'data.source': 'file', 'data.movie': '{movies}/' + name + '/movie.npy',
          'data.labels': '{movies}/' + name + '/labels.npy'}


RECORDED = {'data.source': 'file', 'data.movie': '{recorded}/movie.npy',
            'data.labels': '{recorded}/labels.npy'}


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


LANSDELL, PAPER_MOVIE = movie('lansdell'), movie('paper')
ARMS = {
    'random_init': Arm('baseline', dict(UNTRAINED), describe='untrained network of the seed'),
    'lansdell': Arm('waves', {'data.source': 'sim', 'data.simulator': 'lansdell'},
                    describe='Lansdell model streamed from the on-device simulator'),
    'godfrey': Arm('waves', {'data.source': 'sim', 'data.simulator': 'godfrey'},
                   describe='Godfrey model streamed from the on-device simulator'),
    'movie_pairs': Arm('waves', dict(LANSDELL), describe="the saved Lansdell movie, rwjax's "
                       'protocol (random pairs, NT-Xent denominator)'),
    'temporal': Arm('control', {**LANSDELL, 'data.shuffle': 'temporal'}, 'movie_pairs',
                    describe='order shuffled within each wave'),
    'spatial': Arm('control', {**LANSDELL, 'data.shuffle': 'spatial'}, 'movie_pairs',
                   describe='one fixed pixel permutation'),
    'spatiotemporal': Arm('control', {**LANSDELL, 'data.shuffle': 'spatiotemporal'},
                          'movie_pairs', describe='the temporal and spatial controls'),
    'lansdell_movie': Arm('waves', {**LANSDELL, **PAPER_PROTOCOL}, describe='the saved '
                          "Lansdell movie, whole-wave batches, the paper's loss"),
    'temporal_global': Arm('control', {**LANSDELL, **PAPER_PROTOCOL,
                                       'data.shuffle': 'temporal_global'}, 'lansdell_movie',
                           describe="the paper's temporal shuffle (frames permuted "
                           'globally)'),
    'spatial_per_frame': Arm('control', {**LANSDELL, **PAPER_PROTOCOL,
                                         'data.shuffle': 'spatial_per_frame'},
                             'lansdell_movie', describe="the paper's spatial shuffle (a "
                             'pixel permutation per frame)'),
    'spatiotemporal_global': Arm('control', {**LANSDELL, **PAPER_PROTOCOL,
                                             'data.shuffle': 'spatiotemporal_global'},
                                 'lansdell_movie', describe="the paper's two shuffles"),
    'paper_movie': Arm('waves', {**PAPER_MOVIE, **PAPER_PROTOCOL}, describe='the paper-like '
                       "movie (few, long waves), the paper's protocol"),
    'paper_temporal_global': Arm('control', {**PAPER_MOVIE, **PAPER_PROTOCOL,
                                             'data.shuffle': 'temporal_global'},
                                 'paper_movie', describe="the paper's temporal shuffle of "
                                 'the paper-like movie'),
    'paper_spatial_per_frame': Arm('control', {**PAPER_MOVIE, **PAPER_PROTOCOL,
                                               'data.shuffle': 'spatial_per_frame'},
                                   'paper_movie', describe="the paper's spatial shuffle of "
                                   'the paper-like movie'),
    'noise': Arm('control', {**movie('noise'), **PAPER_PROTOCOL}, 'paper_movie',
                 describe="noise with the paper-like movie's histogram, correlation lengths "
                 'and labels, no waves (rwjax.waves.noise)'),
    'recorded': Arm('waves', {**RECORDED, **PAPER_PROTOCOL},
                    describe="stage II MEA recordings, the paper's protocol"),
    'null': Arm('null', dict(UNTRAINED),
                describe='random inits of other seeds standing in as pre-trained'),
}
# claims.waves_arm='auto': the first of these with results.
CLAIMS_ARMS = ('paper_movie', 'lansdell_movie', 'movie_pairs', 'lansdell')
