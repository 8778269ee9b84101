"""LeNet-5 as LeCun, Bottou, Bengio and Haffner built it in 1998, with its training (chapter 11).

"Gradient-based learning applied to document recognition", Proc. IEEE 86(11), 1998.

- :mod:`~lenet_core.lenet1998.layers`: the scaled tanh, S2/S4 subsampling, C3's partial
  convolution, the RBF output and loss, the paper's initialisation and input scaling, and the
  model builders :func:`LeNet5_1998` and :func:`MLP`;
- :mod:`~lenet_core.lenet1998.sdlm`: stochastic diagonal Levenberg-Marquardt and the Gauss-Newton
  estimate of the diagonal Hessian (Appendix C);
- :mod:`~lenet_core.lenet1998.distortions`: random planar affine distortions (Section III-C);
- :mod:`~lenet_core.lenet1998.fit`: the trainer :func:`fit_1998` and :func:`evaluate_1998`;
- :mod:`~lenet_core.lenet1998.tables`: Table I (:data:`C3_TABLE`) and the paper's parameter and
  connection counts;
- :mod:`~lenet_core.lenet1998.twin`: the PyTorch twin (needs torch; import it from there).

Every public name except the twin's is re-exported here: ``from lenet_core.lenet1998 import
LeNet5_1998, fit_1998, C3_TABLE``.
"""
from . import distortions, fit, layers, sdlm, tables
from .distortions import *  # noqa: F401,F403
from .fit import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .sdlm import *  # noqa: F401,F403
from .tables import *  # noqa: F401,F403

__all__ = [*layers.__all__, *sdlm.__all__, *distortions.__all__, *fit.__all__, *tables.__all__]
