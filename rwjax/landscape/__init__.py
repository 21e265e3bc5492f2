"""Loss-landscape analysis: critical-point finders and gradient-flat diagnostics.

Frye et al., "Critical point-finding methods reveal gradient-flat regions of deep network
losses" (Neural Computation 2021, arXiv:2003.10397). Every routine works on
`loss_fn(theta: f[D]) -> f[]` (`hvp.flatten_loss` adapts a pytree loss); the binary is
`python -m rwjax.landscape --config=configs/landscape_linear_ae.py --workdir=DIR`.

The methods need float64 and nothing here switches it on at import: call them inside
`with jax.enable_x64(True):` (only the binary's main enables it globally). The modules, the
methods and their background: docs/landscape.md.
"""
