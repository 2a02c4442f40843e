"""ResNet-20 for CIFAR (He et al. 2016, "Deep Residual Learning for Image Recognition",
section 4.2): a 3x3 stem of 16 channels, three stages of 3 basic blocks at 16, 32 and
64 channels (32x32, 16x16, 8x8 on CIFAR), global average pooling, one linear layer.
Option A shortcuts: parameter-free, subsampling with stride 2 and zero-padding the new
channels. 269,722 parameters for 10 classes with BatchNorm.

Every activation is built as ``act(width)`` and named act, act1, act2 (found by
``hidden_activations``). With a width-multiplier activation (maxout, gated units) each
convolution before one produces k times its width; the block's shortcut is then
zero-padded to k times the block's width as well (option A's padding, extended), and the
addition happens on the wide tensor, before the activation as in the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from afbench.activations import ActivationFactory
from afbench.errors import AfbenchError
from afbench.models.layers import norm_layer

RESNET20_STAGES = (16, 32, 64)  # channels per stage; 3 blocks each (n = 3, 6n + 2 = 20 layers)
BLOCKS_PER_STAGE = 3


def _scaled(width: int, scale: float) -> int:
    return max(1, round(width * scale))


def _norm(kind: str, channels: int) -> nn.Module:
    return norm_layer(kind, channels, conv=True, model="resnet20") or nn.Identity()


class ShortcutA(nn.Module):
    """Option A: x[:, :, ::stride, ::stride], zero-padded from ``c_in`` to ``c_out`` channels."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.pad, self.stride = c_out - c_in, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.pad)) if self.pad else x


class BasicBlock(nn.Module):
    """conv3x3 -> norm -> act1 -> conv3x3 -> norm, + shortcut, -> act2."""

    def __init__(self, act: ActivationFactory, c_in: int, c_out: int, stride: int, norm: str) -> None:
        super().__init__()
        k = act.width_multiplier
        self.conv1 = nn.Conv2d(c_in, k * c_out, 3, stride, 1, bias=False)
        self.bn1 = _norm(norm, k * c_out)
        self.act1 = act(c_out)
        self.conv2 = nn.Conv2d(c_out, k * c_out, 3, 1, 1, bias=False)
        self.bn2 = _norm(norm, k * c_out)
        self.shortcut = ShortcutA(c_in, k * c_out, stride)
        self.act2 = act(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        return self.act2(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetCifar(nn.Module):
    """He et al.'s CIFAR ResNet with 6n + 2 layers (n blocks per stage)."""

    def __init__(self, act: ActivationFactory, in_chans: int, num_classes: int, widths=RESNET20_STAGES,
                 blocks: int = BLOCKS_PER_STAGE, norm: str = "batch") -> None:
        super().__init__()
        k = act.width_multiplier
        self.conv = nn.Conv2d(in_chans, k * widths[0], 3, 1, 1, bias=False)
        self.bn = _norm(norm, k * widths[0])
        self.act = act(widths[0])
        stages, c_in = [], widths[0]
        for i, width in enumerate(widths):
            stage = [BasicBlock(act, c_in if j == 0 else width, width, 2 if (i > 0 and j == 0) else 1, norm)
                     for j in range(blocks)]
            stages.append(nn.Sequential(*stage))
            c_in = width
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)  # no nn.Flatten child: not a stackable nn.Sequential, and says so
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.conv(x)))  # (N, 16, 32, 32) on CIFAR
        x = self.layer3(self.layer2(self.layer1(x)))  # (N, 64, 8, 8)
        return self.fc(self.pool(x).flatten(1))  # (N, classes)


def resnet20(act: ActivationFactory, input_shape, num_classes: int, *, norm: str = "batch",
             width_scale: float = 1.0) -> ResNetCifar:
    """ResNet-20 (option A) for (C, H, W) inputs of at least 4x4 (two stride-2 stages)."""
    channels, height, width = input_shape
    if min(height, width) < 4:
        raise AfbenchError(f"resnet20 halves the image twice and needs at least 4x4, got {height}x{width}")
    widths = tuple(_scaled(w, width_scale) for w in RESNET20_STAGES)
    return ResNetCifar(act, channels, num_classes, widths, norm=norm)
