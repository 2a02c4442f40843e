"""A small Vision Transformer for 32x32 images (Dosovitskiy et al. 2021, pre-norm blocks).

Chosen for a 2-core CPU (ours, not a paper's): patch 4 (64 patches of 4x4, plus a class
token: 65 tokens), width 128, depth 6, 4 heads of 32, MLP ratio 2 (hidden width 256),
learned position embeddings, LayerNorm, classification from the class token. 811,146
parameters for 10 classes on 3x32x32 with GELU, its native activation.

The feed-forward block takes any activation, built as ``act(hidden)``: with a width
multiplier k (maxout, gated units) the first linear layer produces k times the hidden
width. The activation sees (tokens, features): per-feature activations (PReLU) and
width-grouping ones act on the feature dimension. ``width_scale`` scales the hidden width
only (as llm.c and OLMo shrink the SwiGLU hidden width to 2/3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from afbench.activations import ActivationFactory
from afbench.errors import AfbenchError

PATCH, DIM, DEPTH, HEADS, MLP_RATIO = 4, 128, 6, 4, 2


class FeedForward(nn.Module):
    """fc1 (dim -> k * hidden) -> act -> fc2 (hidden -> dim)."""

    def __init__(self, act: ActivationFactory, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, act.width_multiplier * hidden)
        self.act = act(hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, _ = x.shape  # (N, T, dim)
        h = self.act(self.fc1(x).flatten(0, 1))  # (N*T, hidden): features on dim 1
        return self.fc2(h.view(n, t, -1))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # (N, H, T, d/H)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, t, d))


class Block(nn.Module):
    def __init__(self, act: ActivationFactory, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FeedForward(act, dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, act: ActivationFactory, input_shape, num_classes: int, patch: int = PATCH, dim: int = DIM,
                 depth: int = DEPTH, heads: int = HEADS, hidden: int = MLP_RATIO * DIM) -> None:
        super().__init__()
        channels, height, width = input_shape
        tokens = (height // patch) * (width // patch)
        self.patch_embed = nn.Conv2d(channels, dim, patch, patch)  # (N, dim, H/p, W/p)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*(Block(act, dim, heads, hidden) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (N, T, dim)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


def vit(act: ActivationFactory, input_shape, num_classes: int, *, norm: str = "layer",
        width_scale: float = 1.0) -> ViT:
    """The small ViT above, for images whose sides are multiples of 4 (at least 4x4)."""
    _, height, width = input_shape
    if height % PATCH or width % PATCH:
        raise AfbenchError(f"vit cuts {PATCH}x{PATCH} patches and needs sides divisible by {PATCH}, "
                           f"got {height}x{width}: use --image-size or another model")
    if norm != "layer":
        raise AfbenchError(f"vit uses LayerNorm only, got --norm {norm}: leave --norm unset for it")
    return ViT(act, input_shape, num_classes, hidden=max(1, round(MLP_RATIO * DIM * width_scale)))
