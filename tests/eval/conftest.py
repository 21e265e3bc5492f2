"""Pre-training workdirs as the trainer leaves them, and a context for the evals."""

import functools
import os

import jax
import numpy as np
import pytest

from rwjax import checkpoint
from rwjax import defaults
from rwjax import models
from rwjax.data import sources, to_network_input
from rwjax.eval import evals


def _write_workdir(workdir: str, config, *, step: int, seed: int) -> str:
  """config.json and the network initialised from PRNGKey(seed), saved as step `step`."""
  os.makedirs(workdir, exist_ok=True)
  checkpoint.write_config(workdir, config, n_devices=1)
  model = models.create_model(**config.model)
  size = config.data.input_size
  variables = jax.jit(lambda k: models.init_variables(model, k, size))(jax.random.PRNGKey(seed))
  mngr = checkpoint.manager(workdir)
  checkpoint.save(mngr, step, {'step': np.int32(step), **variables})
  mngr.wait_until_finished()
  mngr.close()
  return workdir


def pretrain_config(width: int = 4):
  """A 4-wide cifar-stem network on 8x8 inputs."""
  config = defaults.smoke_pretrain_config()
  config.model.stem, config.model.width, config.model.projector = 'cifar', width, (8, 4)
  config.data.input_size = 8
  return config


@pytest.fixture(scope='module')
def workdirs(tmp_path_factory):
  """Three pre-training runs root/seed{42,43,44} saved at step 7: PRNGKey(seed)'s networks."""
  root = tmp_path_factory.mktemp('runs')
  return [_write_workdir(str(root / f'seed{s}'), pretrain_config(), step=7, seed=s)
          for s in (42, 43, 44)]


@functools.lru_cache(None)
def _load_digits(spec, split, max_examples=0, fit='resize'):
  images, labels, names = sources.load_images(spec, split, max_examples=max_examples or None)
  return np.asarray(to_network_input(images, 8, 1, fit)), labels, names


@pytest.fixture
def eval_context():
  """context(pre_config=None): an evals.Context for 8 x 8 grey inputs of a (8, 4) projector
  whose networks must not run (inputs are built and checked before any network runs)."""
  never = lambda arm, seed: pytest.fail('no network may run while the inputs are built')
  return lambda pre=None: evals.Context(
      model=None, projector=(8, 4), size=8, channels=1,
      pre_config=pre or defaults.smoke_pretrain_config(), load=_load_digits,
      variables_of=never, batch_size=64, stats=lambda spec: (np.zeros(1), np.ones(1)))


@pytest.fixture(scope='module')
def wide_workdir(tmp_path_factory):
  """A pre-training run of another architecture (8 wide)."""
  return _write_workdir(str(tmp_path_factory.mktemp('wide')), pretrain_config(8), step=0,
                        seed=1)


@pytest.fixture
def shift():
  """shift(image f[H, W, C], dy, dx, fill=0.0): the NumPy reference of a whole-pixel shift,
  out[y, x] = image[y - dy, x - dx] where that exists, else fill."""
  def shifted(image, dy, dx, fill=0.0):
    h, w = image.shape[:2]
    out = np.full_like(image, fill)
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = (
        image[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)])
    return out
  return shifted


@pytest.fixture
def found_shift(shift):
  """found_shift(moved, image, k, fill=0.0, atol=0.0): the (dy, dx) in [-k, k]^2 with
  shift(image, dy, dx, fill) == moved (to atol), else None."""
  return lambda moved, image, k, fill=0.0, atol=0.0: next(
      ((dy, dx) for dy in range(-k, k + 1) for dx in range(-k, k + 1)
       if np.allclose(shift(image, dy, dx, fill), moved, rtol=0, atol=atol)), None)
