"""What the activation table (registry.py) knows about one activation: a row."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

Tensor = torch.Tensor


@dataclass(frozen=True)
class ActivationSpec:
    """One registered activation and what is known about it."""

    name: str
    factory: Callable[..., nn.Module]  # (num_features, **params) -> module
    derivative: Callable[[Tensor], Tensor] | None  # closed form f'(x); None if not elementwise
    formula: str
    output_range: str
    zero_centred: bool
    monotonic: bool
    smooth: bool  # differentiable everywhere (C1)
    saturates: str  # where |f'(x)| -> 0: "none", "left", "right" or "both"
    reference: str
    aliases: tuple[str, ...] = ()
    learnable: tuple[str, ...] = ()  # names of learned parameters
    defaults: dict = field(default_factory=dict)  # the fixed parameters and their values
    trainable: bool = True  # False when no useful gradient flows through it
    width_multiplier: int = 1  # maxout: the layer before must be k times wider
    kind: str = "hidden"  # "hidden" or "output"
    note: str = ""
    # What runs it, slowest to fastest: "torch" (torch's own module), "eager" (afbench's
    # module in plain torch ops), "fused" (fast.py's fused forward/backward pair), "compiled"
    # (that, plus an Inductor kernel for large float32 CPU tensors), "native" (that, plus a
    # hand-written C++ loop); kernels.kernel binds the last two when the module is built.
    speed: str = "torch"

    @property
    def elementwise(self) -> bool:
        return self.derivative is not None
