"""2x2 max pooling through afbench's channels-last CPU loop (activations.native).

Where a model trains on the CPU in channels-last format (engine.step.on_device), its
``nn.MaxPool2d(2)`` layers become ``MaxPool2x2``: the same module, state and results, bit
for bit in value and gradient, ties and NaN included, only faster. torch's kernel spent a
fifth of a LeNet training step on the first pool at one thread; the byte-sized winners and
a backward pass that writes each input position once take that down several times
(``python bench/speed.py`` times the step). Anything the loop does not take (CUDA, odd
sizes, other dtypes, tracing or compiling, AFBENCH_KERNELS=off) runs torch's own.
"""

from __future__ import annotations

import torch
from torch import nn

from afbench.activations import kernels, native


class MaxPool2x2(nn.MaxPool2d):
    """``nn.MaxPool2d(2)`` whose forward runs the native loop where it applies."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if kernels.usable(x, 0):
            y = native.max_pool2x2(x)
            if y is not None:
                return y
        return super().forward(x)


def _is(value, expected: int) -> bool:
    """An nn.MaxPool2d setting, given as one number or a pair, equal to ``expected``."""
    return value in (expected, (expected, expected))


def _two_by_two(pool: nn.MaxPool2d) -> bool:
    return (_is(pool.kernel_size, 2) and _is(pool.stride, 2) and _is(pool.padding, 0) and _is(pool.dilation, 1)
            and not pool.ceil_mode and not pool.return_indices)


def use_native_pools(model: nn.Module) -> nn.Module:
    """Turn every plain 2x2, stride-2 ``nn.MaxPool2d`` of ``model`` into a ``MaxPool2x2`` in place.
    The class is swapped on the module itself, so every reference to it (a pool used twice, a
    user's model holding it in a list) gets the same layer."""
    for module in model.modules():
        if type(module) is nn.MaxPool2d and _two_by_two(module):
            module.__class__ = MaxPool2x2
    return model
