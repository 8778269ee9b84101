"""lenet_core: LeNet-5 from scratch in NumPy, with every gradient checked.

Modules: ``functional`` (convolution and pooling: naive loops and the fast unfold engine),
``layers``, ``losses``, ``model`` (``Sequential``, ``LeNet5``, ``.npz`` weights), ``optim``, ``train``,
``data`` (MNIST), ``gradcheck``, ``summary`` (architecture tables), ``fields`` (receptive fields),
``viz`` (the book's figures), ``twin`` (the PyTorch twin), ``attribution`` (Integrated Gradients),
``attribution_methods`` (saliency,
SmoothGrad, occlusion, GradientSHAP), ``attribution_checks`` (sanity checks, deletion/insertion),
``grading`` (the autograder), ``lenet1998`` (LeNet-5 as in 1998: its layers, RBF loss, SDLM,
distortions; twin in ``twin1998``).
"""

from .layers import AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sigmoid, Tanh
from .losses import MSELoss, SoftmaxCrossEntropy
from .model import LeNet5, Sequential, load_weights, save_weights

__version__ = "0.1.0"

__all__ = ["AvgPool2d", "Conv2d", "Flatten", "Linear", "MaxPool2d", "ReLU", "Sigmoid", "Tanh",
           "MSELoss", "SoftmaxCrossEntropy", "LeNet5", "Sequential", "load_weights", "save_weights"]
