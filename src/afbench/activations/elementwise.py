"""Fixed elementwise activations of the grown zoo (issue 17): f and its closed form f'.

Each activation is a pair of functions of a tensor, ``f`` and ``df``, run through one
custom autograd Function: the forward pass saves only x, and the backward pass is
``df(x) * grad``. A plain autograd graph of a composite such as x * tanh(softplus(x))
keeps every intermediate tensor and runs a backward kernel per node; this keeps one
saved tensor and about as many kernels as the formula has operations.

Stability at |x| = 1e4 (float32 and float64): exp only ever sees clamped arguments,
and every product of a large x with a vanishing factor has the factor underflow to
exactly 0 rather than meeting an inf (no inf * 0).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn
import torch.nn.functional as F

Tensor = torch.Tensor
Fn = Callable[[Tensor], Tensor]
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


class _ClosedFormFn(torch.autograd.Function):
    """y = f(x); dy/dx = df(x), computed from the saved x in the backward pass."""

    @staticmethod
    def forward(ctx, x: Tensor, f: Fn, df: Fn) -> Tensor:
        ctx.save_for_backward(x)
        ctx.df = df
        return f(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        return ctx.df(x).mul_(grad), None, None


class Elementwise(nn.Module):
    """An activation given as f and its closed-form derivative df."""

    def __init__(self, name: str, f: Fn, df: Fn) -> None:
        super().__init__()
        self.name, self.f, self.df = name, f, df

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return _ClosedFormFn.apply(x, self.f, self.df)
        return self.f(x)

    def extra_repr(self) -> str:
        return self.name


def _neg_part_expm1(x: Tensor) -> Tensor:
    """x for x >= 0, e^x - 1 for x < 0, without a mask: relu(x) + expm1(min(x, 0))."""
    return x.clamp(min=0).add_(torch.expm1(x.clamp(max=0)))


# elish (Basirat and Roth 2018): a(x) sigmoid(x), a = x or e^x - 1; a'(x) = e^min(x, 0).
def elish(x: Tensor) -> Tensor:
    return _neg_part_expm1(x).mul_(torch.sigmoid(x))


def d_elish(x: Tensor) -> Tensor:
    s = torch.sigmoid(x)
    a = _neg_part_expm1(x)
    return torch.exp(x.clamp(max=0)).mul_(s).add_(a.mul_(s).mul_(1 - s))


# hard_elish: a(x) h(x), h = clip((x + 1) / 2, 0, 1), h' = 1/2 on (-1, 1).
def hard_elish(x: Tensor) -> Tensor:
    return _neg_part_expm1(x).mul_(((x + 1) / 2).clamp_(0, 1))


def d_hard_elish(x: Tensor) -> Tensor:
    h = ((x + 1) / 2).clamp_(0, 1)
    inside = ((x > -1) & (x < 1)).to(x.dtype).mul_(0.5)
    return torch.exp(x.clamp(max=0)).mul_(h).add_(_neg_part_expm1(x).mul_(inside))


# sqnl (Wuraola and Patel 2018): c - c|c|/4 with c = clip(x, -2, 2); f' = 1 - |c|/2,
# which is 0 at |x| >= 2, so no mask is needed.
def sqnl(x: Tensor) -> Tensor:
    c = x.clamp(-2, 2)
    return c - c * c.abs() / 4


def d_sqnl(x: Tensor) -> Tensor:
    return 1 - x.clamp(-2, 2).abs() / 2


# isru / isrlu (Carlile et al. 2017), alpha = 1.
def isru(x: Tensor) -> Tensor:
    return x * torch.rsqrt(1 + x * x)


def d_isru(x: Tensor) -> Tensor:
    return torch.rsqrt(1 + x * x).pow_(3)


def isrlu(x: Tensor) -> Tensor:
    n = x.clamp(max=0)
    return x * torch.rsqrt(1 + n * n)


def d_isrlu(x: Tensor) -> Tensor:
    n = x.clamp(max=0)
    return torch.rsqrt(1 + n * n).pow_(3)


def bent_identity(x: Tensor) -> Tensor:
    return (torch.sqrt(x * x + 1) - 1) / 2 + x


def d_bent_identity(x: Tensor) -> Tensor:
    return x / (2 * torch.sqrt(x * x + 1)) + 1


def gaussian(x: Tensor) -> Tensor:
    return torch.exp(-x * x)


def d_gaussian(x: Tensor) -> Tensor:
    return -2 * x * torch.exp(-x * x)


def d_arctan(x: Tensor) -> Tensor:
    return 1 / (1 + x * x)


# lisht (Roy et al. 2019): x tanh(x).
def lisht(x: Tensor) -> Tensor:
    return x * torch.tanh(x)


def d_lisht(x: Tensor) -> Tensor:
    t = torch.tanh(x)
    return x * (1 - t * t) + t


# tanhexp (Liu and Di 2020): x tanh(e^x). tanh(e^x) is exactly 1 from x ~ 3 on (float64),
# so e^x is clamped at x = 20: no overflow, and x e^x (1 - tanh^2) stays 0 * finite.
def tanhexp(x: Tensor) -> Tensor:
    return x * torch.tanh(torch.exp(x.clamp(max=20)))


def d_tanhexp(x: Tensor) -> Tensor:
    e = torch.exp(x.clamp(max=20))
    t = torch.tanh(e)
    return t + x * e * (1 - t * t)


# smish (Wang et al. 2022): x tanh(ln(1 + sigmoid(x))); ln(1 + s) is in (0, ln 2).
def smish(x: Tensor) -> Tensor:
    return x * torch.tanh(torch.log1p(torch.sigmoid(x)))


def d_smish(x: Tensor) -> Tensor:
    s = torch.sigmoid(x)
    t = torch.tanh(torch.log1p(s))
    return t + x * (1 - t * t) * s * (1 - s) / (1 + s)


# serf (Nag and Bhattacharyya 2021): x erf(softplus(x)); F.softplus is stable both ways.
def serf(x: Tensor) -> Tensor:
    return x * torch.erf(F.softplus(x))


def d_serf(x: Tensor) -> Tensor:
    sp = F.softplus(x)
    return torch.erf(sp) + x * _TWO_OVER_SQRT_PI * torch.exp(-sp * sp) * torch.sigmoid(x)


# logish (Zhu et al. 2021): x ln(1 + sigmoid(x)).
def logish(x: Tensor) -> Tensor:
    return x * torch.log1p(torch.sigmoid(x))


def d_logish(x: Tensor) -> Tensor:
    s = torch.sigmoid(x)
    return torch.log1p(s) + x * s * (1 - s) / (1 + s)


# squared_relu (So et al. 2021, Primer).
def squared_relu(x: Tensor) -> Tensor:
    r = x.clamp(min=0)
    return r * r


def d_squared_relu(x: Tensor) -> Tensor:
    return x.clamp(min=0) * 2


# shifted_softplus (Schuett et al. 2017, SchNet): softplus(x) - ln 2, so f(0) = 0.
def shifted_softplus(x: Tensor) -> Tensor:
    return F.softplus(x) - math.log(2.0)


def d_shifted_softplus(x: Tensor) -> Tensor:
    # F.softplus returns x itself above 20, whose slope is exactly 1.
    return torch.where(x > 20, torch.ones_like(x), torch.sigmoid(x))


def module(name: str, f: Fn, df: Fn) -> Callable[..., nn.Module]:
    """A registry factory (num_features ignored) for the pair (f, df)."""
    return lambda num_features=None: Elementwise(name, f, df)
