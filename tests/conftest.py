"""Test set-up: 8 virtual CPU devices for the sharded code, and a compilation cache.

The cache (fresh in every clone: .jax_cache/ is git-ignored) lets tests and their
subprocesses that build the same programs compile them once.
"""

import os

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Must be set before jax is imported anywhere.
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=8')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', os.path.join(_ROOT, '.jax_cache'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')
