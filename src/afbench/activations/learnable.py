"""Learnable activations of the grown zoo: ACON-C, StarReLU and the safe Padé unit.

Channel convention (as nn.PReLU and Maxout): afbench's models hand an activation
(N, C, H, W) after a convolution and (N, F) after a linear layer, so per-channel
parameters live on dim 1. A parameter of one element is shared by the whole layer.
"""

from __future__ import annotations

import torch
from torch import nn

from afbench.activations import kernels
from afbench.activations.learnable_fn import AconCFn, SafePadeFn, StarReLUFn
from afbench.activations.modules import LearnableActivation

Tensor = torch.Tensor

# Safe PAU (5, 4) coefficients fitted to leaky ReLU (slope 0.01) by least squares on
# [-3, 3] (6001 points; max error 0.030, RMS 0.005), as Molina et al. (2020) initialise it.
# Numerator a0..a5, denominator b1..b4 of P(x) / (1 + sum_k |b_k| |x|^k).
# Rounded to float32 so that a float32 module and its float64 copy hold the same function.
PAU_LEAKY_RELU_NUMERATOR = tuple(torch.tensor(
    [0.02979727, 0.61837598, 2.32295373, 3.05098761, 1.48472427, 0.25086733], dtype=torch.float32).tolist())
PAU_LEAKY_RELU_DENOMINATOR = tuple(torch.tensor(
    [1.14180367, 4.39175145, 0.87109137, 0.34697325], dtype=torch.float32).tolist())


def _on_channels(p: Tensor, x: Tensor) -> Tensor:
    """View a (C,) parameter as (1, C, 1, ...) to broadcast over x; a (1,) one as is."""
    if p.numel() == 1:
        return p.reshape(())
    return p.view(1, -1, *([1] * (x.dim() - 2)))


class AconC(LearnableActivation):
    """ACON-C (Ma et al. 2021, "Activate or Not"): (p1 - p2) x sigmoid(beta (p1 - p2) x) + p2 x.

    p1, p2 and beta are learned per channel; p1 = 1, p2 = 0, beta = 1 makes it Swish.
    (The authors' code draws p1, p2 from N(0, 1); afbench starts from Swish as issue 17 asks.)
    """

    registry_name = "acon_c"
    kernel: "kernels.Kernel | None" = None  # bound by activations.create from the table's speed tier

    def __init__(self, num_features: int | None = None, per_channel: bool = True) -> None:
        super().__init__()
        count = num_features if (per_channel and num_features) else 1
        self.p1 = nn.Parameter(torch.ones(count))
        self.p2 = nn.Parameter(torch.zeros(count))
        self.beta = nn.Parameter(torch.ones(count))

    def forward(self, x: Tensor) -> Tensor:
        y = self.kernel(x, self.p1, self.p2, self.beta) if self.kernel is not None else None
        if y is not None:
            return y
        p1, p2, beta = (_on_channels(p, x) for p in (self.p1, self.p2, self.beta))
        if kernels.eager_context():  # differentiable(), torch.func, export: plain ops
            d = p1 - p2
            return d * x * torch.sigmoid(beta * d * x) + p2 * x
        return AconCFn.apply(x, p1, p2, beta)

    def extra_repr(self) -> str:
        return f"channels={self.p1.numel()}"


class StarReLU(LearnableActivation):
    """StarReLU (Yu et al. 2022, MetaFormer baselines): s relu(x)^2 + b, scalars s and b.

    Initialised as the paper's models do: s = 1/sqrt(1.25) = 0.8944, b = -0.5/sqrt(1.25)
    = -0.4472, so that the output has mean 0 and variance 1 for x ~ N(0, 1).
    """

    registry_name = "star_relu"
    kernel: "kernels.Kernel | None" = None

    def __init__(self, scale: float = 0.8944, bias: float = -0.4472) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([float(scale)]))
        self.bias = nn.Parameter(torch.tensor([float(bias)]))

    def forward(self, x: Tensor) -> Tensor:
        y = self.kernel(x, self.scale, self.bias) if self.kernel is not None else None
        if y is not None:
            return y
        if kernels.eager_context():  # differentiable(), torch.func, export: plain ops
            return kernels.star_relu(x, self.scale, self.bias)
        return StarReLUFn.apply(x, self.scale, self.bias)


class PAU(LearnableActivation):
    """Safe Padé activation unit (Molina et al. 2020), degrees (m, n) = (5, 4):

        f(x) = (a0 + a1 x + ... + a5 x^5) / (1 + |b1| |x| + ... + |b4| |x|^4)

    The denominator is at least 1, so f has no poles. Both polynomials are evaluated
    by Horner's rule on whole tensors. Coefficients start at the leaky-ReLU fit and are
    shared by the layer, or one set per channel with ``per_channel=True``.
    """

    registry_name = "pau"
    kernel: "kernels.Kernel | None" = None

    def __init__(self, num_features: int | None = None, per_channel: bool = False) -> None:
        super().__init__()
        count = num_features if (per_channel and num_features) else 1
        numerator = torch.tensor(PAU_LEAKY_RELU_NUMERATOR).repeat(count, 1)  # (count, 6)
        denominator = torch.tensor(PAU_LEAKY_RELU_DENOMINATOR).repeat(count, 1)  # (count, 4)
        self.numerator = nn.Parameter(numerator)
        self.denominator = nn.Parameter(denominator)

    def _coefficients(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        if self.numerator.shape[0] == 1:  # shared: 0-dim coefficients broadcast anywhere
            return list(self.numerator[0]), list(self.denominator[0])
        shape = (1, -1, *([1] * (x.dim() - 2)))
        return ([a.view(shape) for a in self.numerator.unbind(1)],
                [b.view(shape) for b in self.denominator.unbind(1)])

    def forward(self, x: Tensor) -> Tensor:
        y = self.kernel(x, self.numerator, self.denominator) if self.kernel is not None else None
        if y is not None:
            return y
        if kernels.eager_context():  # differentiable(), torch.func, export: plain ops (the in-place Horner
            return kernels.pau(x, self.numerator, self.denominator)  # does not export)
        a, b = self._coefficients(x)
        return SafePadeFn.apply(x, *a, *b)

    def extra_repr(self) -> str:
        return f"degrees=(5, 4), channels={self.numerator.shape[0]}"

