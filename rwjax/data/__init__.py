"""Natural images for evaluation: sources and the one network-input function."""

from rwjax.data.preprocess import to_network_input
from rwjax.data.sources import load_images

__all__ = ['load_images', 'to_network_input']
