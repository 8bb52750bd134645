"""Neural-network layers: kernel MLP, LieConv, masked batch norm, bottleneck block, pooling, LieResNet."""

from .blocks import BottleneckBlock, GlobalPool, PointwiseNormAct
from .conv import LieConv
from .kernels import KernelMLP
from .norm import MaskBatchNorm
from .resnet import LieResNet

__all__ = ["KernelMLP", "LieConv", "MaskBatchNorm", "BottleneckBlock", "GlobalPool", "PointwiseNormAct", "LieResNet"]
