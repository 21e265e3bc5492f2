"""Config keys declared with their rule: one schema, one check, one error line per key.

  c = ml_collections.ConfigDict()
  rules = {}
  key(c, rules, 'seeds', 3, Int(1))               # beside the key: its type and range
  check(c, rules)                                 # InputError 'config.seeds=0: ...'

A rule says what a good value is (`expect`) and checks one value (`ok`); `bad` gives a value
the rule refuses (the tests set each key to it and read the message back).
"""

import dataclasses
import functools
from typing import Any, Optional, Sequence

import ml_collections

from rwjax.errors import InputError


@dataclasses.dataclass(frozen=True)
class Float:
  lo: Optional[float] = None
  hi: Optional[float] = None
  open_lo: bool = False  # lo itself refused
  open_hi: bool = False  # hi itself refused

  def ok(self, v) -> bool:
    if (not isinstance(v, (int, float)) or isinstance(v, bool) or v != v
        or v in (float('inf'), float('-inf'))):
      return False
    low = self.lo is None or (v > self.lo if self.open_lo else v >= self.lo)
    return low and (self.hi is None or (v < self.hi if self.open_hi else v <= self.hi))

  @property
  def expect(self) -> str:
    if self.lo == 0 and self.open_lo and self.hi is None:
      return 'a positive finite number'
    lo = '' if self.lo is None else f" {'>' if self.open_lo else '>='} {self.lo}"
    hi = '' if self.hi is None else f" {'<' if self.open_hi else '<='} {self.hi}"
    return f'a finite number{lo}{" and" if lo and hi else ""}{hi}'

  @property
  def bad(self):
    return self.lo - 1 if self.lo is not None else 'x'


@dataclasses.dataclass(frozen=True)
class Int(Float):
  """An integer in the range of Float's fields."""

  def ok(self, v) -> bool:
    return isinstance(v, int) and super().ok(v)  # Float.ok refuses bools

  @property
  def expect(self) -> str:
    return super().expect.replace('a finite number', 'an integer').replace(
        'finite number', 'integer')  # 'a positive finite number' -> 'a positive integer'


@dataclasses.dataclass(frozen=True)
class Choice:
  values: tuple

  def ok(self, v) -> bool:
    return isinstance(v, type(self.values[0])) and v in self.values

  @property
  def expect(self) -> str:
    return f'one of {self.values}'

  @property
  def bad(self):
    return '<unknown>' if isinstance(self.values[0], str) else object()


@dataclasses.dataclass(frozen=True)
class Text:
  """Any string (empty allowed unless `nonempty`)."""
  nonempty: bool = False

  def ok(self, v) -> bool:
    return isinstance(v, str) and (bool(v) or not self.nonempty)

  @property
  def expect(self) -> str:
    return 'a non-empty string' if self.nonempty else 'a string'

  @property
  def bad(self):
    return 3


@dataclasses.dataclass(frozen=True)
class Flag:
  def ok(self, v) -> bool:
    return isinstance(v, bool)

  expect = 'True or False'
  bad = 'yes'


@dataclasses.dataclass(frozen=True)
class Either:
  """A value passing rule `a` or rule `b` (e.g. a fill: a number or 'mean')."""
  a: Any
  b: Any

  def ok(self, v) -> bool:
    return self.a.ok(v) or self.b.ok(v)

  @property
  def expect(self) -> str:
    return f'{self.a.expect} or {self.b.expect}'

  bad = ()


@dataclasses.dataclass(frozen=True)
class Seq:
  """A tuple (or list) of items each passing `item`; `size` exact length, `min_len` least."""
  item: Any
  min_len: int = 0
  size: Optional[int] = None
  distinct: bool = False

  def ok(self, v) -> bool:
    return (isinstance(v, (tuple, list)) and len(v) >= self.min_len
            and (self.size is None or len(v) == self.size)
            and not (self.distinct and len(set(v)) < len(v)) and all(map(self.item.ok, v)))

  @property
  def expect(self) -> str:
    n = (f'{self.size} ' if self.size is not None else
         f'at least {self.min_len} ' if self.min_len else '')
    return f"a tuple of {n}{'distinct ' if self.distinct else ''}items, each {self.item.expect}"

  @property
  def bad(self):
    return (self.item.bad,) * max(1, self.min_len, self.size or 0)


@dataclasses.dataclass(frozen=True)
class Names:
  """A set name of `sets`, or names from `known`: a tuple or one comma-separated string."""
  sets: tuple
  known: tuple = ()  # empty: any name (checked where the names are resolved)

  def ok(self, v) -> bool:
    if isinstance(v, str) and v in self.sets:
      return True
    given = tuple(s.strip() for s in v.split(',')) if isinstance(v, str) else v
    return (isinstance(given, (tuple, list)) and bool(given)
            and all(isinstance(x, str) and x for x in given)
            and (not self.known or all(x in self.known for x in given)))

  @property
  def expect(self) -> str:
    return f'a set {self.sets} or a tuple of layer names'

  bad = ()


def put(c, name: str, value) -> None:
  """c.<name> = value (dotted; missing parents are created)."""
  *parents, last = name.split('.')
  node = c
  for p in parents:
    if p not in node:
      node[p] = ml_collections.ConfigDict()
    node = node[p]
  node[last] = value


def key(c: ml_collections.ConfigDict, rules: dict, name: str, value, rule) -> None:
  """Sets c.<name> (dotted, parents created) and declares its rule."""
  put(c, name, value)
  rules[name] = rule


def get(c, name: str):
  """c.<name> (dotted)."""
  return functools.reduce(lambda node, part: node[part], name.split('.'), c)


def leaves(d, prefix: str = '') -> dict:
  """{'a.b': leaf} of nested dicts or ConfigDicts (an empty one is a leaf)."""
  out = {}
  for k, v in d.items():
    if isinstance(v, (ml_collections.ConfigDict, dict)) and v:
      out.update(leaves(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def check(c, rules: dict, prefix: str = 'config.') -> None:
  """InputError for the first key whose value breaks its rule: one line naming the key, the
  value and what it must be."""
  for name, rule in rules.items():
    try:
      value = get(c, name)
    except (KeyError, AttributeError, TypeError):
      raise InputError(f'{prefix}{name} is missing; every entry needs its keys: '
                       f'{", ".join(sorted(rules))}') from None
    if not rule.ok(value):
      shown = tuple(value) if isinstance(value, list) else value  # as the config file says it
      raise InputError(f'{prefix}{name}={shown!r} must be {rule.expect}')


def unknown_keys(c, rules: dict, prefix: str) -> None:
  """InputError for a leaf of c that no rule declares (a misspelt key)."""
  extra = [k for k in leaves(c) if k not in rules and not any(
      k.startswith(r + '.') for r in rules)]
  if extra:
    raise InputError(f'{prefix}{extra[0]} is not a key here; the keys are: '
                     f'{", ".join(sorted(rules))}')


def bad_values(rules: dict) -> list[tuple[str, Any]]:
  """(key, a value its rule refuses) for every key: the validation table's rows."""
  return [(name, rule.bad) for name, rule in rules.items()]


def names(value: Sequence[str] | str) -> tuple[str, ...]:
  """A tuple of names from a tuple or one comma-separated string."""
  return tuple(s.strip() for s in value.split(',') if s.strip()) if isinstance(
      value, str) else tuple(value)
