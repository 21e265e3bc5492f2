"""Pre-training workdirs as the trainer leaves them, for the evaluator's tests."""

import os

import jax
import numpy as np
import pytest

from rwjax import checkpoint
from rwjax import defaults
from rwjax import models


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


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  """A 4-wide cifar-stem network on 8x8 inputs, saved at step 7."""
  config = defaults.smoke_pretrain_config()
  config.model.stem, config.model.width, config.model.projector = 'cifar', 4, (8, 4)
  config.data.input_size = 8
  return _write_workdir(str(tmp_path_factory.mktemp('pretrain')), config, step=7, seed=42)
