"""tests/waves: its helper module mea_files (synthetic MEA spike files) importable by name;
`repo_module` loads a file of the repository (bench/, configs/) as a module."""

import importlib.util
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


@pytest.fixture(scope='session')
def repo_module():
  def load(relpath):
    path = os.path.join(HERE, '..', '..', relpath)
    spec = importlib.util.spec_from_file_location(os.path.basename(relpath)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
  return load
