"""Plotting helpers for the chapters of *LeNet-5 from Scratch*: every figure, none of the computation.

One module per topic; this package re-exports every public name, so a chapter writes
``from lenet_core import viz`` and ``viz.plot_history(...)``:

- :mod:`~lenet_core.viz.common`: the page width (:data:`COLUMN_INCHES`), images, matrices, histograms;
- :mod:`~lenet_core.viz.digits`: digits and data sets (chapter 1);
- :mod:`~lenet_core.viz.kernels`: kernels and convolution (chapter 2);
- :mod:`~lenet_core.viz.pooling`: pooling windows (chapter 3);
- :mod:`~lenet_core.viz.graphs`: computation graphs (chapter 4);
- :mod:`~lenet_core.viz.training`: losses, histories, mistakes, filters, feature maps, two engines
  (chapters 6 and 8);
- :mod:`~lenet_core.viz.architecture`: parameters per layer, connection tables (chapters 5 and 11);
- :mod:`~lenet_core.viz.fields`: receptive fields (chapter 6);
- :mod:`~lenet_core.viz.attribution`: attribution maps, the path, convergence, sanity checks,
  deletion/insertion curves (chapters 9 and 10).

The notebooks end each plot cell with ``plt.show()``; the long plotting code lives here so that
the chapters stay short and the helpers can be unit-tested (``tests/test_viz.py``). The
computation a figure shows lives in the computing modules (for example
:mod:`lenet_core.filters`).
"""
from . import architecture, attribution, common, digits, fields, graphs, kernels, pooling, training
from .architecture import *  # noqa: F401,F403
from .attribution import *  # noqa: F401,F403
from .common import *  # noqa: F401,F403
from .common import COLUMN_INCHES
from .digits import *  # noqa: F401,F403
from .fields import *  # noqa: F401,F403
from .graphs import *  # noqa: F401,F403
from .kernels import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .training import *  # noqa: F401,F403

__all__ = [name for module in (common, digits, kernels, pooling, graphs, training, architecture, fields,
                               attribution) for name in module.__all__]
