"""Jit-compiled retinal-wave simulators and the registry that names them.

Each simulator module exposes Params, State, init, advance, warmup, THRESHOLD and
pixel_mm (see rwjax/waves/lansdell.py). Pick one by name with `get_model`.
"""

from types import ModuleType

from rwjax.errors import InputError
from rwjax.waves import godfrey, lansdell

MODELS: dict[str, ModuleType] = {'lansdell': lansdell, 'godfrey': godfrey}


def get_model(name: str) -> ModuleType:
  """The simulator module called `name` ('lansdell' is the default model)."""
  if name not in MODELS:
    raise InputError(f'unknown wave model {name!r}; choose one of {sorted(MODELS)}')
  return MODELS[name]
