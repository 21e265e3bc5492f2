"""The paper's comparison end to end (arXiv:2312.02791): every arm x seeds, trained and evaluated.

  python -m rwjax.experiment --config=configs/experiment.py:SCALE --workdir=DIR [--config.x.y=v]

SCALE:
  tiny      CPU, a few minutes: 4-wide ResNet-18 on 16x16 frames, digits for every task; checks
            the machinery end to end (tests/test_experiment.py runs it).
  cpu       2 CPU cores, under the hour: the paper's protocol arms, its controls, random init
            and the null arm, 3 seeds, 20 steps of an 8-wide ResNet-18 on 32x32 frames,
            CIFAR-10 and MNIST subsets from image folders (--config.cifar10=PATH
            --config.mnist=PATH; CIFAR-10 stands in for CIFAR-100 wherever the paper used it).
  cpu_wide  the cpu scale at the paper's width (64, the paper's projector): waves
            (lansdell_movie) against random init, 3 seeds, 20 steps; rwjax's probes only
            for the classification claim.
  paper     the paper's sizes (64-wide ResNet-18, its movie of 20,000 frames, 100 epochs of
            its whole-wave batches, its evaluation sizes on the image folders), every arm, 3
            seeds (42, 43, 44); a GPU.
  colab     the paper's network at fewer steps and seeds, for a free Colab GPU.

Arms: rwjax/experiment/arms.py (`--config.arms=a,b` sets the matrix, `--config.only=a,b` runs
a subset; `--config.recordings=FOLDER` of MEA spike files adds the recorded-waves arm). Every
checkpoint is evaluated once with `config.evaluate` (the presets of configs/evaluate.py at the
scale's sizes; '{cifar10}' / '{mnist}' in a source are config.cifar10 / config.mnist). Claims
read report rows by their keys (rwjax/eval/claims.py). Re-running skips finished runs and
resumes an interrupted one. Results: DIR/report.md, DIR/report.html, DIR/results.json.
"""

import ml_collections

from rwjax import defaults
from rwjax.eval import evals
from rwjax.experiment.arms import ARMS

SCALES = ('tiny', 'cpu', 'cpu_wide', 'cpu_paper', 'paper', 'colab')
# The paper's pre-training: 100 epochs of its whole-wave batches, Adam lr 1e-4 (its scripts).
PAPER_LR, PAPER_STEPS = 1e-4, 500
CIFAR10_CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse',
                   'ship', 'truck')
CIFAR10, MNIST = 'folder:{cifar10}', 'folder:{mnist}'


def _evaluate(probe_layers: str, cifar10: str = CIFAR10, mnist: str = MNIST,
              **sizes) -> ml_collections.ConfigDict:
  """rwjax's probes, the paper's probes (+ the logistic probe on the same features at the
  encoder output) and manifolds, at the sizes of a scale (the paper's value beside each)."""
  c = defaults.config_file('evaluate', 'combined')
  c.seeds, c.random_init_arm = 1, False  # the experiment compares its own networks
  # 'adapt' (claim 3's second reading): BatchNorm statistics re-estimated on natural images.
  c.adapt.source, c.adapt.max_examples = cifar10, sizes.get('max_train', 0)
  c.adapt.images = sizes.get('adapt_images', 0)  # 0 = all of them
  p = c.evals.probes
  p.classification.sources = (cifar10, mnist)
  p.classification.max_train = sizes.get('rw_max_train', 0)
  p.classification.max_test = sizes.get('rw_max_test', 0)
  p.exemplar.source = c.evals.capacity.exemplar.source = cifar10
  c.evals.capacity.classes['class_test'].source = cifar10
  q = c.evals.paper_probes
  q.layers = probe_layers  # paper: 'paper_probe_relus' (every ReLU)
  q.probes = ('adam',)
  q.invariance.source = cifar10  # paper: CIFAR-100
  q.invariance.classes = CIFAR10_CLASSES
  q.invariance.per_class = sizes.get('per_class', 600)  # paper: 600
  q.classification.sources = (mnist, cifar10)
  q.classification.max_train = sizes.get('max_train', 0)  # paper: 0 (all)
  q.classification.max_test = sizes.get('max_test', 0)
  # Claim 2's second reading: the converged logistic probe on the same features.
  lg = c.evals.paper_logistic = evals.new('probe')
  lg.update({k: q[k] for k in ('batchnorm', 'features', 'draws')})
  lg.layers, lg.probes = 'pooled', ('logistic',)
  lg.classification = q.classification
  m = c.evals.paper_manifolds
  m.batchnorm = ('running', 'adapt')  # paper: ('running',) (its model.eval())
  name = sizes.get('class_set', 'class_cifar10')
  m.kinds = sizes.get('kinds', ('translate', 'color', name))
  m.exemplar.source, m.exemplar.p = cifar10, sizes.get('exemplar_p', 50)  # paper: 50
  classes = m.classes['class_cifar10']
  del m.classes['class_cifar100'], m.classes['class_cifar10']
  m.classes[name] = classes
  classes.update({'source': cifar10, 'selection': 'first',  # paper: its ranked lists
                  'm': sizes.get('class_m', 100)})  # paper: 100
  m.n_t = sizes.get('n_t', 500)  # paper: 500
  m.project_dims = sizes.get('project_dims', 5000)  # paper: 5000
  if not sizes.get('simulate', True):
    m.measures = tuple(g for g in m.measures if g != 'sim_alpha')
  return c


def _paper_settings(c, *, lr: float, steps: int) -> None:
  """The paper's values of the settings that differ from rwjax's: its movie normalisation
  and projector head, Adam lr and steps; natural images normalised with their dataset's
  statistics, its invariance tasks' transforms drawn anew every epoch."""
  p = c.pretrain
  p.data.movie_norm = 'paper'  # one z-score and min-max over the pooled movie
  p.model.projector_bias_last = False  # its head's last Linear has no bias
  p.optim.lr, p.train.steps = lr, steps
  e = c.evaluate
  for name in ('paper_probes', 'paper_logistic', 'paper_manifolds'):
    e.evals[name].normalize = 'dataset'
  e.adapt.normalize = 'dataset'
  e.evals.paper_probes.invariance.redraw = 'epoch'


def get_config(scale: str = 'tiny') -> ml_collections.ConfigDict:
  if scale not in SCALES:
    from rwjax.errors import InputError  # pylint: disable=g-import-not-at-top
    raise InputError(f'unknown scale {scale!r}; use one of {SCALES} '
                     '(--config=configs/experiment.py:SCALE)')
  c = ml_collections.ConfigDict()
  c.scale = scale
  c.seeds = 2  # pre-training seeds per arm (the paper: 3, seeds 42, 43, 44)
  c.first_seed = 0
  c.arms = ','.join(ARMS)  # the matrix (recorded: only with config.recordings)
  c.only = ''  # 'a,b': run only these arms of the matrix (the report covers what exists)
  # Write the report from the runs DIR holds (e.g. results brought back from other machines,
  # launch/offline_gpu.sh); train and evaluate nothing, read no image.
  c.report_only = False
  c.recordings = ''  # folder of MEA spike files (.h5): adds the recorded-waves arm
  c.cifar10 = 'data/cifar10'  # image folders (split/label/file) for the cpu / paper scales
  c.mnist = 'data/mnist'
  c.budget = ''  # the training budget of a reduced scale, stated as a trade (the report)
  # Evaluation points: fractions of config.pretrain.train.steps (step 0 is the random-init
  # network of the same seed).
  c.eval_steps = (0.0, 0.1, 0.3, 1.0)
  # Keep compiled programs in DIR/jax_cache (a local DIR; unless JAX_COMPILATION_CACHE_DIR is
  # set): on CPU compilation is a large part of a short run, and most runs share programs.
  c.compilation_cache = True
  c.null_seed_offset = 1000  # the null arm's networks: random inits of seeds offset by this
  # The recorded-waves arm: stage II recordings (age <= max_age_days), each converted with
  # `python -m rwjax.waves convert`, then the first max_frames / n frames of each, joined.
  c.recorded = ml_collections.ConfigDict({'max_age_days': 9, 'max_frames': 20_000})
  # The saved movies of the file-source arms (rwjax/experiment/arms.py names them): written by
  # rwjax.waves.simulate.write_movie (`python -m rwjax.waves simulate`; params: the model's
  # Params changed), or noise like another (`python -m rwjax.waves noise`). The paper: 20,000
  # frames of 32x32, few long waves (~300 frames per wave, ~10 per 3,000-frame batch).
  c.movies = ml_collections.ConfigDict({
      # rwjax's movie: the Lansdell model's defaults, 0.1 s frames (~18 frames per wave).
      'lansdell': {'model': 'lansdell', 'size': 64, 'seconds': 1000.0, 'batch': 2,
                   'warmup': 300.0, 'seed': 0, 'min_size': 50, 'params': {}},
      # The paper-like movie (docs/paper_movie.md): the model fitted to a P6 recording's
      # diffusion on 4 mm, filmed every 5 ms, waves of >= 1,000 pixel-frames.
      'paper': {'model': 'lansdell', 'size': 64, 'seconds': 100.0, 'batch': 1,
                'warmup': 300.0, 'seed': 0, 'min_size': 1000,
                'params': {'frame_dt': 0.005, 'spont_frames': 20, 'extent_mm': 4.0,
                           'diff': 0.0022, 'spont_prob': 1.6e-4}},
      # The noise control: the paper-like movie's histogram, correlation lengths and labels.
      'noise': {'like': 'paper', 'seed': 0, 'refine': 2}})
  # The pre-training every arm starts from (the paper's values); an arm overrides a few keys.
  c.pretrain = defaults.pretrain_config()
  c.pretrain.train.log_every = 10
  # Which report rows each claim reads (rwjax/eval/claims.py): eval/task/layer/measure
  # [/batchnorm], layer * = every layer; several comma-separated.
  c.claims = ml_collections.ConfigDict()
  c.claims.waves_arm = 'auto'  # the first with results of lansdell_movie, movie_pairs, lansdell
  invariance = lambda t: f'paper_probes/invariance_{t}/pooled/adam_best'
  c.claims.translation = invariance('translate')
  c.claims.rotation = invariance('rotate')
  c.claims.color = invariance('color')
  c.claims.classification = ('paper_probes/cifar10/pooled/adam_best,'
                              'paper_probes/mnist/pooled/adam_best')
  c.claims.classification_logistic = ('paper_logistic/cifar10/pooled/logistic,'
                                      'paper_logistic/mnist/pooled/logistic')
  # Claim 3 under the paper's running statistics and under statistics re-estimated on natural
  # images ('adapt'): BatchNorm alone can move the geometry.
  c.claims.capacity = ','.join(f'paper_manifolds/translate/*/alpha/{mode}'
                               for mode in ('running', 'adapt'))

  if scale == 'tiny':
    c.eval_steps = (0.0, 0.5, 1.0)
    p = c.pretrain
    p.model.width, p.model.projector, p.model.dtype = 4, (16, 8), 'float32'
    p.data.sim_size, p.data.input_size = 32, 16
    p.data.retinas_per_device, p.data.buffer_frames = 2, 12
    p.data.warmup_s, p.data.calibration_s = 3.0, 2.0
    p.data.sim_params.lansdell.spont_prob = 0.01  # frequent waves: every buffer has pairs
    p.train.batch_pairs, p.train.steps = 16, 6
    p.train.log_every, p.train.checkpoint_every = 3, 3
    # The wave finder needs real waves: at 64 cells, default parameters, seed 0, 100 s of
    # warm-up, 15 and 18 waves per retina in 2 x 30 s (37% of frames in waves).
    c.movies.lansdell.update({'size': 64, 'seconds': 30.0, 'batch': 2, 'warmup': 100.0})
    c.recorded.max_frames = 400
    e = c.evaluate = _evaluate('pooled,stem_relu,layer4_block0_relu1', 'digits', 'digits',
                               max_train=300, max_test=200, per_class=30,
                               kinds=('translate', 'class_digits'), class_set='class_digits',
                               exemplar_p=5, class_m=10, n_t=50, project_dims=64,
                               simulate=False, adapt_images=100)
    e.batch_size, e.batchnorm_batch = 256, 32
    pr, cap = e.evals.probes, e.evals.capacity
    pr.classification.sources = ('digits',)
    pr.classification.update({'max_train': 300, 'max_test': 200, 'shifts': (4,)})
    pr.layers = 'stem,layer2,layer4,pooled'
    pr.logistic.update({'steps': 50, 'l2_grid': (1e-4, 1e-2)})
    pr.exemplar.update({'images': 10, 'n_train': 4, 'n_test': 2})
    cap.kinds, cap.layers = ('translate', 'class_test'), 'stem,layer2,layer4,pooled'
    cap.exemplar.update({'p': 5, 'm': 10})
    cap.classes['class_test'].update({'p': 5, 'm': 10, 'max_examples': 200})
    cap.n_t, cap.project_dims = 50, 64
    q = e.evals.paper_probes
    q.invariance.update({'classes': tuple(str(i) for i in range(10)),
                         'transforms': ('translate', 'none')})
    q.classification.update({'sources': ('digits',), 'fit': 'resize'})
    e.evals.paper_logistic.classification = q.classification
    m = e.evals.paper_manifolds
    m.layers = 'stem_relu,layer2_block1_out,layer4_block1_out'
    m.exemplar.m = 10
    m.classes['class_digits'].update({'p': 5})
    c.claims.classification = 'paper_probes/digits/pooled/adam_best'
    c.claims.classification_logistic = 'paper_logistic/digits/pooled/logistic'
    _paper_settings(c, lr=p.optim.lr, steps=p.train.steps)
    c.movies.noise.like = 'lansdell'  # the tiny matrix's movie
  elif scale in ('cpu', 'cpu_wide'):
    # Evaluation, not training, is most of a run on 2 cores at these sizes: the paper's
    # evaluation at reduced sizes, at two points (step 0, random_init's, and the end).
    c.seeds = 3
    c.eval_steps = (0.0, 1.0)
    p = c.pretrain
    p.model.width, p.model.projector, p.model.dtype = 8, (64, 32), 'float32'
    p.data.retinas_per_device, p.data.buffer_frames = 8, 16
    p.data.calibration_s = 30.0
    p.train.batch_pairs, p.train.steps = 64, 20
    p.train.log_every, p.train.checkpoint_every = 5, 10
    c.arms = ('random_init,lansdell_movie,temporal_global,spatial_per_frame,'
              'spatiotemporal_global,null')
    c.movies.lansdell.update({'seconds': 500.0, 'batch': 2})  # 10,000 frames of 32x32
    c.recorded.max_frames = 10_000
    e = c.evaluate = _evaluate('paper_probe', max_train=5000, max_test=1000, per_class=600,
                               kinds=('translate', 'class_cifar10'), exemplar_p=20,
                               class_m=50, n_t=100, project_dims=1024, simulate=False,
                               rw_max_train=2000, rw_max_test=500, adapt_images=1000)
    pr, cap = e.evals.probes, e.evals.capacity
    pr.classification.shifts = (4, 8)
    pr.exemplar.update({'images': 20, 'n_train': 10, 'n_test': 5})
    cap.kinds, cap.layers = ('translate', 'class_test'), 'stages'
    cap.exemplar.update({'p': 10, 'm': 20})
    cap.classes['class_test'].update({'p': 10, 'm': 20, 'max_examples': 500})
    cap.n_t, cap.project_dims = 100, 1024
    if scale == 'cpu_wide':
      # The paper's width, where the paper's probe of translated images is above chance
      # (bench/paper_task_width.py). A whole-wave step takes ~36 s on 2 cores, so only the
      # comparison claims 1-3 and 5 are run: waves against random init, rwjax's probes at the
      # encoder output only.
      p.model.width, p.model.projector = 64, defaults.pretrain_config().model.projector
      c.arms = 'random_init,lansdell_movie'
      pr.layers, pr.exemplar.transforms, pr.classification.shifts = 'pooled', (), ()
      del e.evals.capacity
  elif scale == 'cpu_paper':
    # The paper's settings at its width on 2 CPU cores: the paper-like movie against rwjax's
    # movie, two shuffles of it and noise, 3 seeds, evaluated at three points with what the
    # claims read. The budget: the paper's lr x steps in fewer steps (c.budget).
    c.seeds = 3
    c.arms = ('random_init,paper_movie,lansdell_movie,paper_temporal_global,'
              'paper_spatial_per_frame,noise')
    c.eval_steps = (0.0, 0.5, 1.0)
    p = c.pretrain
    p.model.width, p.model.dtype = 64, 'float32'
    steps = 24
    lr = PAPER_LR * PAPER_STEPS / steps
    c.budget = (f'{steps} whole-wave steps (about {steps / 5:.0f} epochs of the paper-like '
                f'movie) at Adam lr {lr:.3g}: the paper\'s lr x steps ({PAPER_LR:g} x '
                f'{PAPER_STEPS} = {PAPER_LR * PAPER_STEPS:g}) in {steps / PAPER_STEPS:.0%} of '
                'its steps, for a 3-seed matrix of 6 arms in ~10 hours on 2 CPU cores')
    p.train.log_every, p.train.checkpoint_every = 2, steps // 2
    e = c.evaluate = _evaluate('pooled', max_train=2500, max_test=500, per_class=300,
                               kinds=('translate',), exemplar_p=50, n_t=200,
                               project_dims=2048, simulate=False, adapt_images=500)
    del e.evals.probes, e.evals.capacity  # only what the claims read
    e.evals.paper_manifolds.measures = ('alpha', 'radius', 'dimension', 'center_corr')
    _paper_settings(c, lr=lr, steps=steps)
  else:  # paper, colab
    c.seeds, c.first_seed = 3, 42  # the paper's seeds
    c.movies.lansdell.update({'seconds': 1000.0, 'batch': 2})  # 20,000 frames (the paper's)
    # One step count for every arm: the paper's 100 epochs of its whole-wave batches (the
    # 16,000 training frames of a 20,000-frame movie make ~5 batches of > 3,000 frames per
    # epoch: 500 steps); the random-pairs arms get 500 steps of 512 pairs.
    c.pretrain.train.checkpoint_every = 50
    c.evaluate = _evaluate('paper_probe')  # the paper's sizes
    _paper_settings(c, lr=PAPER_LR, steps=PAPER_STEPS)
    if scale == 'colab':  # a free Colab GPU (T4, 15 GB): fewer steps and seeds
      c.seeds = 2
      c.arms = ('random_init,lansdell,movie_pairs,temporal,spatial,lansdell_movie,'
                'temporal_global,spatial_per_frame,recorded,null')
      c.pretrain.train.steps = 250  # 50 epochs of the paper's batches
      c.budget = "250 steps at the paper's lr 1e-4: half its training"
      c.evaluate.evals.capacity.layers = 'stages'
  return c
