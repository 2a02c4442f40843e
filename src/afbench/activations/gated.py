"""Gated linear units (Shazeer 2020, "GLU Variants Improve Transformer").

The paper's FFN variants compute act(xW) * (xV). afbench's models build the layer
before a gated activation with twice the width (``width_multiplier = 2``), so its
output holds xW and xV side by side on dim 1 (features after a linear layer,
channels after a convolution; the Maxout convention):

    input (N, 2C, ...) = [a | b], a = xW (first C), b = xV (last C)
    output (N, C, ...) = act(a) * b      # the FIRST half goes through act

Note: torch.nn.functional.glu gates the other way round (first half * sigmoid(second)),
so ``Gated("glu")(x) == F.glu(torch.cat([b, a], 1), 1)``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
import torch.nn.functional as F

from afbench.activations import kernels

Tensor = torch.Tensor

GATES: dict[str, Callable[[Tensor], Tensor]] = {
    "glu": torch.sigmoid,  # Dauphin et al. 2017: sigmoid(xW) * xV
    "reglu": F.relu,  # relu(xW) * xV
    "geglu": F.gelu,  # gelu(xW) * xV (erf form)
    "swiglu": F.silu,  # swish_1(xW) * xV
}


class Gated(nn.Module):
    """act(first half) * second half, halves taken on dim 1."""

    kernel: "kernels.Kernel | None" = None  # bound by activations.create (geglu: a native loop)

    def __init__(self, gate: str) -> None:
        super().__init__()
        if gate not in GATES:
            raise ValueError(f"unknown gate '{gate}': choose one of {', '.join(GATES)}")
        self.gate = gate
        self.act = GATES[gate]

    def forward(self, x: Tensor) -> Tensor:
        width = x.shape[1]
        if width % 2:
            raise ValueError(f"{self.gate} needs an even input width on dim 1, got {width}: "
                             "build the layer before it with twice the width")
        y = self.kernel(x) if self.kernel is not None else None  # one pass for large CPU tensors
        if y is not None:
            return y
        a, b = x.chunk(2, dim=1)  # (N, C, ...) each
        return self.act(a) * b

    def extra_repr(self) -> str:
        return self.gate
