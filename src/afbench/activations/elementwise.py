"""Closed-form derivatives f'(x) of the zoo's fixed elementwise activations (issue 17).

These are the registry's ``derivative`` entries, written plainly from the formulas;
the modules themselves run the fused pairs of fast.py, and the tests compare the two.

Stability at |x| = 1e4 (float32 and float64): exp only ever sees clamped arguments,
and every product of a large x with a vanishing factor has the factor underflow to
exactly 0 rather than meeting an inf (no inf * 0).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _neg_part_expm1(x: Tensor) -> Tensor:
    """x for x >= 0, e^x - 1 for x < 0, without a mask: relu(x) + expm1(min(x, 0))."""
    return x.clamp(min=0).add_(torch.expm1(x.clamp(max=0)))


# elish (Basirat and Roth 2018): a(x) sigmoid(x), a = x or e^x - 1; a'(x) = e^min(x, 0).
def d_elish(x: Tensor) -> Tensor:
    s = torch.sigmoid(x)
    a = _neg_part_expm1(x)
    return torch.exp(x.clamp(max=0)).mul_(s).add_(a.mul_(s).mul_(1 - s))


# hard_elish: a(x) h(x), h = clip((x + 1) / 2, 0, 1), h' = 1/2 on (-1, 1).
def d_hard_elish(x: Tensor) -> Tensor:
    h = ((x + 1) / 2).clamp_(0, 1)
    inside = ((x > -1) & (x < 1)).to(x.dtype).mul_(0.5)
    return torch.exp(x.clamp(max=0)).mul_(h).add_(_neg_part_expm1(x).mul_(inside))


# sqnl (Wuraola and Patel 2018): c - c|c|/4 with c = clip(x, -2, 2); f' = 1 - |c|/2,
# which is 0 at |x| >= 2, so no mask is needed.
def d_sqnl(x: Tensor) -> Tensor:
    return 1 - x.clamp(-2, 2).abs() / 2


# isru / isrlu (Carlile et al. 2017), alpha = 1.
def d_isru(x: Tensor) -> Tensor:
    return torch.rsqrt(1 + x * x).pow_(3)


def d_isrlu(x: Tensor) -> Tensor:
    n = x.clamp(max=0)
    return torch.rsqrt(1 + n * n).pow_(3)


def d_bent_identity(x: Tensor) -> Tensor:
    return x / (2 * torch.sqrt(x * x + 1)) + 1


def d_gaussian(x: Tensor) -> Tensor:
    return -2 * x * torch.exp(-x * x)


def d_arctan(x: Tensor) -> Tensor:
    return 1 / (1 + x * x)


# lisht (Roy et al. 2019): x tanh(x).
def d_lisht(x: Tensor) -> Tensor:
    t = torch.tanh(x)
    return x * (1 - t * t) + t


# tanhexp (Liu and Di 2020): x tanh(e^x). tanh(e^x) is exactly 1 from x ~ 3 on (float64),
# so e^x is clamped at x = 20: no overflow, and x e^x (1 - tanh^2) stays 0 * finite.
def d_tanhexp(x: Tensor) -> Tensor:
    e = torch.exp(x.clamp(max=20))
    t = torch.tanh(e)
    return t + x * e * (1 - t * t)


# smish (Wang et al. 2022): x tanh(ln(1 + sigmoid(x))); ln(1 + s) is in (0, ln 2).
def d_smish(x: Tensor) -> Tensor:
    s = torch.sigmoid(x)
    t = torch.tanh(torch.log1p(s))
    return t + x * (1 - t * t) * s * (1 - s) / (1 + s)


# serf (Nag and Bhattacharyya 2021): x erf(softplus(x)); F.softplus is stable both ways.
def d_serf(x: Tensor) -> Tensor:
    sp = F.softplus(x)
    return torch.erf(sp) + x * _TWO_OVER_SQRT_PI * torch.exp(-sp * sp) * torch.sigmoid(x)


# logish (Zhu et al. 2021): x ln(1 + sigmoid(x)).
def d_logish(x: Tensor) -> Tensor:
    s = torch.sigmoid(x)
    return torch.log1p(s) + x * s * (1 - s) / (1 + s)


# squared_relu (So et al. 2021, Primer).
def d_squared_relu(x: Tensor) -> Tensor:
    return x.clamp(min=0) * 2


# shifted_softplus (Schuett et al. 2017, SchNet): softplus(x) - ln 2, so f(0) = 0.
def d_shifted_softplus(x: Tensor) -> Tensor:
    # F.softplus returns x itself above 20, whose slope is exactly 1.
    return torch.where(x > 20, torch.ones_like(x), torch.sigmoid(x))
