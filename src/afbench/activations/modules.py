"""Activation layers that torch.nn does not ship, written with tensor ops only.

The combined activations (S4) use custom autograd Functions built from clamp,
maximum and in-place arithmetic: on CPU, boolean-mask kernels (torch.where,
masked_fill) cost about 8x a plain arithmetic pass, and a plain ``where`` graph
also keeps several intermediate tensors. That keeps forward+backward within 3x of
the built-in ReLU (measured by bench/activations.py).
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

from afbench.activations import kernels
from afbench.activations.native import refuse_double_backward

LN2 = math.log(2.0)


class _ReluSoftsignFn(torch.autograd.Function):
    """x for x > 0, x / (1 + |x|) for x <= 0, written as x / d with d = 1 + relu(-x).

    d is 1 for x > 0, so one division covers both sides, and f'(x) = 1 / d^2 on both.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        d = x.clamp(max=0).neg_().add_(1)  # (same shape as x); in place: no extra buffers
        ctx.save_for_backward(d)
        return x / d

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        refuse_double_backward("relu_softsign")  # d carries no graph of f'
        (d,) = ctx.saved_tensors
        return grad.div(d).div_(d)


class _ReluSoftplusFn(torch.autograd.Function):
    """x for x > 0, ln(1 + e^x) - ln 2 for x <= 0 (continuous at 0).

    Forward: max(x, softplus(min(x, 0)) - ln 2). For x > 0 the second term is 0 < x;
    for x <= 0 it is softplus(-x) - ln 2 >= 0 above x, so max picks the right side.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        # exp of a non-positive number cannot overflow. log(1 + e) rather than log1p(e):
        # e is in (0, 1], where both agree to rounding, and log is 2x faster on CPU.
        left = x.clamp(max=0).exp_().add_(1).log_().sub_(LN2)
        return torch.maximum(x, left, out=left)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # saves the input only: torch.func can run it
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        slope = relu_softplus_grad(x)  # of the saved input: with create_graph, a graph of f' too
        return slope * grad if torch.is_grad_enabled() else slope.mul_(grad)


def relu_softsign(x: torch.Tensor) -> torch.Tensor:
    return _ReluSoftsignFn.apply(x)


def relu_softplus(x: torch.Tensor) -> torch.Tensor:
    return _ReluSoftplusFn.apply(x)


def relu_softsign_grad(x: torch.Tensor) -> torch.Tensor:
    """1 for x > 0, 1 / (1 + |x|)^2 for x <= 0: both one-sided slopes at 0 are 1."""
    return x.clamp(max=0).neg_().add_(1).pow_(-2)


def relu_softplus_grad(x: torch.Tensor) -> torch.Tensor:
    """1 for x > 0, sigmoid(x) for x <= 0 (so 0.5 just left of 0).

    Computed as sigmoid(x + BIG * relu(x)): unchanged for x <= 0, saturated to 1 for
    x > 0 (exactly so for x > 40 / BIG). Boolean masks (torch.where) cost about
    8x an arithmetic pass on CPU, so this avoids them.
    """
    big = torch.finfo(x.dtype).max if x.dtype.is_floating_point else 1e30
    return x.clamp(min=0).mul_(big).add_(x).sigmoid_()


class _BinaryStepFn(torch.autograd.Function):
    """Heaviside step; its true gradient (zero almost everywhere) is what flows back."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return (x > 0).to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # nothing to save: torch.func can run it
        pass

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(grad)


class ReluSoftsign(nn.Module):
    """S4's relu-softsign: identity for x > 0, softsign for x <= 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if kernels.eager_context():  # differentiable(), torch.func: plain ops
            return x / (1 + F.relu(-x))
        return relu_softsign(x)


class ReluSoftplus(nn.Module):
    """S4's relu-softplus: identity for x > 0, softplus(x) - ln 2 for x <= 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if kernels.eager_context():  # differentiable(), torch.func: plain ops (the backward works in place)
            return torch.where(x > 0, x, F.softplus(x.clamp(max=0)) - LN2)
        return relu_softplus(x)


class BinaryStep(nn.Module):
    """1 if x > 0 else 0. Trains nothing: every gradient through it is zero."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _BinaryStepFn.apply(x)


class LearnableActivation(nn.Module):
    """Marker base class: an activation whose parameters are learned shape parameters.

    ``activations.no_decay_parameters`` and ``learnable_parameters`` find every
    subclass, so a new learnable activation needs no list updated elsewhere.
    ``registry_name`` is its name in the registry (for learned-curve plots).
    """

    registry_name = ""


class SwishBeta(LearnableActivation):
    """x * sigmoid(beta * x) with a learned beta (Ramachandran et al. 2017)."""

    registry_name = "swish_beta"

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = nn.Parameter(torch.tensor(float(beta)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.beta * x)


class NoisyReLU(nn.Module):
    """Noisy rectified linear unit of Nair & Hinton (2010), "Rectified Linear Units
    Improve Restricted Boltzmann Machines", section 2.1.

    While training: max(0, x + n) with n ~ N(0, sigmoid(x)), i.e. the noise
    *variance* is sigmoid(x) as in the paper. In eval mode: plain max(0, x), the
    noise-free mean-field approximation the paper uses at test time.
    The noise is treated as a constant in the backward pass.

    Speed: drawing 1M normals costs about 4x a whole ReLU forward+backward on CPU,
    so standard normals come from a bank of 2x the input size, redrawn every
    ``refresh_every`` calls and read at a random offset each call. Every sample is
    still N(0, 1); samples of nearby calls may repeat at shifted positions.
    """

    def __init__(self, refresh_every: int = 16) -> None:
        super().__init__()
        self.refresh_every = refresh_every
        self._bank: torch.Tensor | None = None
        self._calls = 0

    def _standard_normal(self, like: torch.Tensor) -> torch.Tensor:
        n = like.numel()
        bank = self._bank
        stale = self._calls % self.refresh_every == 0
        if stale or bank is None or bank.numel() < 2 * n or bank.device != like.device or bank.dtype != like.dtype:
            bank = self._bank = torch.randn(2 * n, device=like.device, dtype=like.dtype)
        self._calls += 1
        start = int(torch.randint(0, bank.numel() - n + 1, (1,)))
        return bank[start:start + n].view_as(like)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return F.relu(x)
        return _NoisyReluFn.apply(x, self._standard_normal(x))


class _NoisyReluFn(torch.autograd.Function):
    """relu(x + sqrt(sigmoid(x)) * z) for given standard normals z; d/dx = 1[out > 0]."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x).sqrt_().mul_(z).add_(x).relu_()  # one buffer, filled in place

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # saves the output only: torch.func can run it
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (out,) = ctx.saved_tensors
        return torch.ops.aten.threshold_backward(grad, out, 0), None


class Maxout(nn.Module):
    """Maxout over k linear pieces (Goodfellow et al. 2013).

    Takes (N, k*C, ...) and returns (N, C, ...): the max over each group of k
    consecutive channels. The layer before it must therefore produce k times the
    width; afbench's models do that when they see ``width_multiplier == k``.
    """

    def __init__(self, k: int = 2) -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"maxout needs k >= 1 pieces, got k={k}")
        self.k = int(k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, width = x.shape[0], x.shape[1]
        if width % self.k:
            raise ValueError(
                f"maxout with k={self.k} needs an input width divisible by {self.k}, got {width}: "
                "build the layer before it with k times the width"
            )
        return x.view(n, width // self.k, self.k, *x.shape[2:]).amax(dim=2)

    def extra_repr(self) -> str:
        return f"k={self.k}"


class Lambda(nn.Module):
    """Wraps a function of one tensor as a module (custom activations)."""

    def __init__(self, fn, name: str) -> None:
        super().__init__()
        self.fn = fn
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name
