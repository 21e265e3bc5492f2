"""rwjax: SimCLR on retinal waves, in JAX (arXiv:2312.02791)."""

__version__ = "0.1.0"
