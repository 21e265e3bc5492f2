"""Test set-up: 8 virtual CPU devices for the sharded code, float32 by default."""

import os

# Must be set before jax is imported anywhere.
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=8')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
