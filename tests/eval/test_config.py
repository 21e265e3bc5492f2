"""Bad evaluation configs: one InputError naming the real key, for every key of the schema
(rwjax.schema.bad_values) and for the checks across keys, on a valid preset; the inputs the
evals check when they are built, before any network runs."""

import re

import ml_collections
from ml_collections.config_flags import config_path
import pytest

from rwjax import defaults
from rwjax import evaluate
from rwjax import schema as S
from rwjax.errors import InputError
from rwjax.eval import evals

PRESET = 'paper_digits'  # every eval type, class sets, BatchNorm modes


def _set(config, dotted: str, value) -> None:
  *parents, last = dotted.split('.')
  node = S.get(config, '.'.join(parents)) if parents else config
  with node.ignore_type():
    node[last] = value


def _names_real_keys(config, message: str) -> None:
  """Every config.<dotted key> the message names is a key of the config (S.get raises)."""
  named = re.findall(r'\bconfig\.([A-Za-z_][\w.]*)', message)
  assert named, message
  for dotted in named:
    S.get(config, dotted.rstrip('.'))


_ROWS = ([('', k, v) for k, v in S.bad_values(defaults.evaluate_rules())]
         + [('evals.paper_probes.', k, v) for k, v in S.bad_values(evals.probe_config()[1])]
         + [('evals.paper_manifolds.', k, v)
            for k, v in S.bad_values(evals.manifolds_config()[1])]
         + [('evals.paper_manifolds.classes.class_digits.', k, v)
            for k, v in S.bad_values(evals.class_set_rules())])


@pytest.mark.parametrize('prefix, key, bad', _ROWS, ids=[p + k for p, k, _ in _ROWS])
def test_every_key_refuses_a_bad_value_in_one_line_naming_it(prefix, key, bad):
  config = defaults.config_file('evaluate', PRESET)
  evaluate.validate_evals(config)  # the preset is valid
  _set(config, prefix + key, bad)
  with pytest.raises(InputError) as e:
    evaluate.validate_evals(config)
  assert f'config.{prefix}{key}=' in str(e.value) and '\n' not in str(e.value)
  _names_real_keys(config, str(e.value))


_ACROSS = [
    ('no evals', lambda c: _set(c, 'evals', ml_collections.ConfigDict()), 'config.evals is empty'),
    ('unknown kind', lambda c: _set(c, 'evals.paper_manifolds.kinds', ('translate', 'shear')),
     r"config.evals.paper_manifolds.kinds=.*\['shear'\] is no kind.*classes \('class_digits',\)"),
    ('adapt without source', lambda c: c.update({'adapt': {'source': ''}, 'evals': {
        'probes': {'batchnorm': ('running', 'adapt')}}}), 'config.adapt.source is empty'),
    ('frames min > max', lambda c: _set(c, 'evals.paper_manifolds.waves.frames', (60, 50)),
     r'config.evals.paper_manifolds.waves.frames=\(60, 50\) must be \(min, max\)'),
    ('no task', lambda c: c.evals.paper_probes.update({'classification': {'sources': ()},
                                                       'invariance': {'transforms': ()}}),
     'config.evals.paper_probes.*no task'),
    ('hue > 0.5', lambda c: _set(c, 'evals.paper_probes.invariance.jitter', (0.5, 0.5, 0.5, 0.6)),
     r'config.evals.paper_probes.invariance.jitter=.*hue'),
    ('unknown layer', lambda c: _set(c, 'evals.probes.layers', 'layer1,layer9'),
     r"config.evals.probes.layers='layer1,layer9': name a set"),
    ('no workdir', lambda c: None, 'set one of config.workdir .* and config.workdirs'),
    ('two workdir keys', lambda c: c.update({'workdir': 'a', 'workdirs': 'b,c'}),
     'set one of config.workdir'),
    ('seeds != workdirs', lambda c: c.update({'workdirs': 'a,b', 'out': 'o'}),
     r'config.seeds=3 must equal the number of pre-training workdirs \(2\)'),
    ('workdir twice', lambda c: c.update({'workdirs': 'a,b,a', 'out': 'o'}), 'more than once'),
    ('glob matches nothing', lambda c: c.update({'workdirs': '/no/such/rwjax/seed*'}),
     'config.workdirs: .* matches no directory'),
    ('several without out', lambda c: c.update({'workdirs': 'a,b,c'}), 'config.out is not set'),
]


@pytest.mark.parametrize('change, message', [a[1:] for a in _ACROSS],
                         ids=[a[0] for a in _ACROSS])
def test_checks_across_keys(change, message):
  config = defaults.config_file('evaluate', PRESET)
  change(config)
  with pytest.raises(InputError, match=message) as e:
    evaluate.validate(config)
  _names_real_keys(config, str(e.value))


@pytest.mark.parametrize('preset', ['rwjax', 'paper', 'combined'])
def test_every_key_of_a_preset_can_be_set_on_the_command_line(preset):
  """--config.KEY=VALUE, as the binary's docstring says (ml_collections parses KEY as a
  Python expression: a key that is a Python keyword cannot be named)."""
  def leaves(node, path=()):
    for k, v in node.items():
      yield from (leaves(v, path + (k,)) if isinstance(v, ml_collections.ConfigDict)
                  else [path + (k,)])
  config = defaults.config_file('evaluate', preset)
  unreachable = []
  for key in leaves(config):
    try:
      assert config_path.split('.'.join(key)) == key
    except (ValueError, AssertionError):
      unreachable.append('.'.join(key))
  assert not unreachable, unreachable


@pytest.mark.parametrize('where, drop', [
    ('evals.paper_probes.logistc', None), ('evals.paper_manifolds.waves.cont', None),
    ('evals.paper_manifolds.classes.class_digits.pp', None),
    # A class set or an eval written by hand without one of its keys (e.g. a class set as a
    # dict, as configs/evaluate.py writes them): one line naming the key, not a KeyError.
    ('evals.paper_manifolds.classes.class_digits', 'split'), ('evals.paper_probes', 'draws')])
def test_a_misspelt_or_missing_key_is_one_input_error_naming_it(where, drop):
  config = defaults.config_file('evaluate', PRESET)
  if drop:
    del S.get(config, where)[drop]
    message = rf'config.{where}.{drop}'
  else:
    _set(config, where, 1)
    message = rf'config.{re.escape(where)} is not a key here; the keys are: .*(draws|source)'
  with pytest.raises(InputError, match=message):
    evaluate.validate_evals(config)


_BUILT = [
    ('probes', 'exemplar.images', 501,
     'config.evals.probes.exemplar.images=501 exceeds the 500 images of digits'),
    ('probes', 'exemplar.n_train', 80, r'config.evals.probes.exemplar.n_train.*distinct shifts'),
    ('paper_probes', 'invariance.classes', ('0', '1', 'eleven'),
     r"config.evals.paper_probes.invariance.classes: unknown class name\(s\) \['eleven'\]"),
    ('paper_probes', 'invariance.per_class', 500,
     r"config.evals.paper_probes.invariance.classes: class '0' has \d+ images.*per_class=500"),
    ('paper_manifolds', 'exemplar.p', 501,
     'config.evals.paper_manifolds.exemplar.p=501 exceeds the 500 images of digits'),
    ('paper_manifolds', 'classes.class_digits.p', 11,
     'config.evals.paper_manifolds.classes.class_digits.p=11 exceeds the 10 classes'),
    ('paper_manifolds', 'classes.class_digits.selection', 'ranked',
     'config.evals.paper_manifolds.classes.class_digits.ranked is empty'),
    ('paper_manifolds', 'classes.class_digits.m', 60,
     r'config.evals.paper_manifolds.classes.class_digits: class \d has \d+ test images, a '
     'manifold needs m=60'),
    ('capacity', 'classes.class_test.m', 60,
     r'config.evals.capacity.classes.class_test: 5 class manifolds of m=60 images need 5 classes'),
]


@pytest.mark.parametrize('name, key, value, message', _BUILT,
                         ids=[f'{n}.{k}' for n, k, _, _ in _BUILT])
def test_inputs_are_checked_before_any_network_runs(name, key, value, message, eval_context):
  config = defaults.config_file('evaluate', PRESET)
  _set(config.evals[name], key, value)
  evaluate.validate_evals(config)
  with pytest.raises(InputError, match=message) as e:
    ev = evals.build(name, config.evals[name], eval_context())
    ev.inputs(0)
  _names_real_keys(config, str(e.value))
