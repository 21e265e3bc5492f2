"""Natural images for evaluation: sources, the shared preprocessing, invariance tasks."""

from rwjax.data.preprocess import to_network_input
from rwjax.data.sources import load_images
from rwjax.data.tasks import (ColorJitter, ExemplarTask, color_jitter, exemplar_task, rotate,
                              translate)

__all__ = ['ColorJitter', 'ExemplarTask', 'color_jitter', 'exemplar_task', 'load_images',
           'rotate', 'to_network_input', 'translate']
