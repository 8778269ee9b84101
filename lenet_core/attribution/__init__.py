"""Attributions for the scratch LeNet-5 (chapters 9 and 10); the figures are in :mod:`lenet_core.viz`.

- :mod:`~lenet_core.attribution.ig`: Integrated Gradients, its quadrature rules, the baselines, and
  the same ``F`` for captum (chapter 9);
- :mod:`~lenet_core.attribution.methods`: saliency, gradient x input, SmoothGrad, occlusion,
  GradientSHAP / expected gradients (chapter 10);
- :mod:`~lenet_core.attribution.checks`: sanity checks (cascading randomisation, Spearman, SSIM) and
  deletion/insertion curves (chapter 10).

Every public name of the three modules is re-exported here: ``from lenet_core.attribution import
integrated_gradients, saliency, deletion_insertion``.
"""
from . import checks, ig, methods
from .checks import *  # noqa: F401,F403
from .ig import *  # noqa: F401,F403
from .ig import IMAGE_SHAPE, NUM_CLASSES  # noqa: F401
from .methods import *  # noqa: F401,F403

__all__ = [*ig.__all__, "IMAGE_SHAPE", "NUM_CLASSES", *methods.__all__, *checks.__all__]
