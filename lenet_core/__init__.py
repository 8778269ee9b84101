"""lenet_core: LeNet-5 from scratch in NumPy, with every gradient checked.

The engine: ``functional`` (convolution and pooling: naive loops and the fast unfold engine),
``layers``, ``losses``, ``model`` (``Sequential``, ``LeNet5``, ``.npz`` weights), ``optim``, ``train``,
``data`` (MNIST), ``gradcheck``, ``checkpoint``, ``summary`` (architecture tables), ``records``.
One chapter each: ``filters`` (hand-made kernels, moving average), ``fields`` (receptive fields),
``twin`` (the PyTorch twin), ``seed_paper`` (the seed paper's pipeline).
Packages: ``attribution`` (``ig``: Integrated Gradients; ``methods``: saliency, SmoothGrad,
occlusion, GradientSHAP; ``checks``: sanity checks, deletion/insertion), ``lenet1998`` (LeNet-5 as
in 1998: ``layers``, ``sdlm``, ``distortions``, ``fit``, ``tables``, ``twin``), ``viz`` (the book's
figures, one module per topic). ``grading`` is the autograder.
"""

from .layers import AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sigmoid, Tanh
from .losses import MSELoss, SoftmaxCrossEntropy
from .model import LeNet5, Sequential, load_weights, save_weights

__version__ = "0.1.0"

__all__ = ["AvgPool2d", "Conv2d", "Flatten", "Linear", "MaxPool2d", "ReLU", "Sigmoid", "Tanh",
           "MSELoss", "SoftmaxCrossEntropy", "LeNet5", "Sequential", "load_weights", "save_weights"]
