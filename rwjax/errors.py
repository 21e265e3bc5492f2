"""One exception type for bad user input, and the CLI wrapper that reports it.

Library code raises `InputError("what is wrong; how to fix it")`. Entry points wrap
their main with `cli_main`, which prints that one line to stderr and exits with code 2:
no traceback, and nothing already saved is touched.
"""

import sys
from typing import Callable


class InputError(ValueError):
  """Bad input from a user: a config value, a file, a shape, a missing dataset."""


def cli_main(main: Callable[[], object]) -> None:
  """Runs `main()`; an `InputError` becomes one `error: ...` line and exit code 2.

  Under absl, library INFO logs (orbax's per-save lines, backend probing) are hidden
  unless --verbosity is given on the command line.
  """
  from absl import flags, logging  # pylint: disable=g-import-not-at-top
  if flags.FLAGS.is_parsed() and not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
  try:
    main()
  except InputError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parser for `app.run(main, flags_parser=parse_flags)`.

  A bad flag value, an unknown `--config.x.y=` key or a config file's own InputError (e.g. an
  unknown preset) becomes one `error: ...` line and exit code 2 (absl would print a usage
  dump, and ml_collections a traceback).
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  try:
    return flags.FLAGS(argv)
  except (flags.Error, ValueError) as e:  # ValueError: a value ml_collections cannot parse
    # ml_collections re-raises a config file's error as one of its type with the traceback
    # in the text: say the innermost InputError's own message.
    said, cause = e, e
    while cause is not None:
      said = cause if isinstance(cause, InputError) else said
      cause = cause.__cause__ or cause.__context__
    print(f'error: {said}', file=sys.stderr)
  except (AttributeError, KeyError) as e:  # ml_collections: an override of a missing key
    import re  # pylint: disable=g-import-not-at-top
    text = str(e).replace('\\', '')  # a KeyError's repr inside an AttributeError's
    found = re.search(r'[Kk]ey "([^"]+)"', text) or re.search(r"'([^'\"]+)'", text)
    key = found.group(1) if found else text.strip('"\'')
    bad = [a.split('=')[0] for a in argv if a.startswith('--config.') and
           key in a.split('=')[0].split('.')[1:]]
    hint = re.search(r'Did you mean "([^"]+)"', text)
    print(f"error: {bad[0] if bad else key} is not a key of the config"
          + (f' (did you mean {hint.group(1)!r}?)' if hint else '')
          + '; see the config file for the keys there are', file=sys.stderr)
  sys.exit(2)
