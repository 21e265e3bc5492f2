"""rwjax.distributed: the cluster from the environment, and its bad-input errors."""

import pytest

from rwjax import distributed
from rwjax.errors import InputError

FULL = dict(JAX_COORDINATOR_ADDRESS='10.0.0.2:1234', JAX_NUM_PROCESSES='4', JAX_PROCESS_ID='3')


def test_cluster_from_env():
  assert distributed.cluster_from_env({}) == {}  # JAX detects the cluster
  assert distributed.cluster_from_env(FULL) == dict(
      coordinator_address='10.0.0.2:1234', num_processes=4, process_id=3)


@pytest.mark.parametrize('env, message', [
    (dict(JAX_NUM_PROCESSES='2'), 'JAX_COORDINATOR_ADDRESS, JAX_PROCESS_ID not'),
    ({**FULL, 'JAX_PROCESS_ID': '4'}, 'bad cluster variables'),
    ({**FULL, 'JAX_NUM_PROCESSES': 'two'}, 'bad cluster variables'),
    ({**FULL, 'JAX_COORDINATOR_ADDRESS': 'host'}, 'bad cluster variables'),
])
def test_incomplete_or_malformed_cluster_is_refused(env, message):
  with pytest.raises(InputError, match=message):
    distributed.cluster_from_env(env)

