"""The three architectures of the studies, each a table plus one builder.

Every builder takes an ``ActivationFactory`` and puts one activation in every
hidden place. A factory with ``width_multiplier`` k (maxout) gets k times the width
in the layer before it, and returns the plain width.
"""

from __future__ import annotations

from collections import OrderedDict
from math import prod

from torch import nn

from afbench.activations import ActivationFactory
from afbench.errors import AfbenchError
from afbench.models.layers import ACT_PREFIX, norm_layer

MLP_HIDDEN = (128, 64)  # S2: 784 -> 128 -> 64 -> 10
LENET = (10, 20, 50)  # S1 model A: conv 10, conv 20, fc 50
VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")  # configuration A


def _scaled(width: int, scale: float) -> int:
    return max(1, round(width * scale))


class _Builder:
    """Appends layers to an OrderedDict, numbering the activations act1, act2, ..."""

    def __init__(self, act: ActivationFactory) -> None:
        self.act = act
        self.layers: OrderedDict[str, nn.Module] = OrderedDict()
        self.count = {}

    def add(self, kind: str, module: nn.Module | None) -> None:
        if module is not None:
            self.count[kind] = self.count.get(kind, 0) + 1
            self.layers[f"{kind}{self.count[kind]}"] = module

    def activation(self, width: int) -> None:
        self.add(ACT_PREFIX, self.act(width))

    def build(self) -> nn.Sequential:
        return nn.Sequential(self.layers)


def mlp(act: ActivationFactory, input_shape, num_classes: int, *, norm: str = "none",
        width_scale: float = 1.0, hidden: tuple[int, ...] = MLP_HIDDEN) -> nn.Sequential:
    """S2's fully connected net: flatten -> 128 -> 64 -> classes, any input size."""
    k, b = act.width_multiplier, _Builder(act)
    b.add("flatten", nn.Flatten())
    width_in = prod(input_shape)
    for width in (_scaled(w, width_scale) for w in hidden):
        b.add("fc", nn.Linear(width_in, k * width))
        b.add("norm", norm_layer(norm, k * width, conv=False, model="mlp"))
        b.activation(width)
        width_in = width
    b.add("fc", nn.Linear(width_in, num_classes))
    return b.build()


def lenet(act: ActivationFactory, input_shape, num_classes: int, *, norm: str = "none",
          width_scale: float = 1.0) -> nn.Sequential:
    """S1's model A (pytorch/examples' MNIST net): conv 5x5 -> pool -> act, conv 5x5 ->
    dropout2d -> pool -> act, fc 50 -> act -> dropout 0.5 -> fc. 21,840 parameters on
    1x28x28 with ReLU."""
    channels, height, width = input_shape
    side = min(height, width)
    if (side - 4) // 2 - 4 < 2:
        raise AfbenchError(f"lenet needs images of at least 16x16, got {height}x{width}; use --model mlp")
    k, b = act.width_multiplier, _Builder(act)
    c1, c2, f1 = (_scaled(w, width_scale) for w in LENET)
    b.add("conv", nn.Conv2d(channels, k * c1, 5))  # (k*c1, H-4, W-4)
    b.add("norm", norm_layer(norm, k * c1, conv=True, model="lenet"))
    b.add("pool", nn.MaxPool2d(2))
    b.activation(c1)
    b.add("conv", nn.Conv2d(c1, k * c2, 5))
    b.add("norm", norm_layer(norm, k * c2, conv=True, model="lenet"))
    b.add("dropout", nn.Dropout2d(0.5))
    b.add("pool", nn.MaxPool2d(2))
    b.activation(c2)
    b.add("flatten", nn.Flatten())
    out_h, out_w = ((height - 4) // 2 - 4) // 2, ((width - 4) // 2 - 4) // 2  # 4x4 on 28x28
    b.add("fc", nn.Linear(c2 * out_h * out_w, k * f1))
    b.activation(f1)
    b.add("dropout", nn.Dropout(0.5))
    b.add("fc", nn.Linear(f1, num_classes))
    return b.build()


def vgg11(act: ActivationFactory, input_shape, num_classes: int, *, norm: str = "batch",
          width_scale: float = 1.0, table=VGG11) -> nn.Sequential:
    """S1's model B: VGG-11 with a norm layer after each of its 8 3x3 convolutions,
    then average pooling to 1x1 and one linear layer. 9,231,114 parameters on
    3x32x32, 10 classes, ReLU and BatchNorm."""
    channels, height, width = input_shape
    pools = table.count("M")
    if min(height, width) < 2 ** pools:
        raise AfbenchError(f"vgg11 halves the image {pools} times and needs at least {2 ** pools}x{2 ** pools}, "
                           f"got {height}x{width}")
    k, b = act.width_multiplier, _Builder(act)
    width_in = channels
    for entry in table:
        if entry == "M":
            b.add("pool", nn.MaxPool2d(2))
            continue
        out = _scaled(entry, width_scale)
        b.add("conv", nn.Conv2d(width_in, k * out, 3, padding=1))
        b.add("norm", norm_layer(norm, k * out, conv=True, model="vgg11"))
        b.activation(out)
        width_in = out
    b.add("avgpool", nn.AdaptiveAvgPool2d(1))  # S1's AvgPool2d(1) on the 1x1 map of a 32x32 input
    b.add("flatten", nn.Flatten())
    b.add("fc", nn.Linear(width_in, num_classes))
    return b.build()
