"""Closed-form derivatives f'(x) of the registered elementwise activations: the
``derivative`` column of the one activation table (registry.py), in one file.

They are written plainly from the formulas; the modules themselves run torch's own
functions or the fused pairs of fast.py (and kernels.py, native.py for speed), and the
tests compare each module's autograd gradient with the derivative here and with finite
differences.

Stability at |x| = 1e4 (float32 and float64): exp only ever sees clamped arguments,
and every product of a large x with a vanishing factor has the factor underflow to
exactly 0 rather than meeting an inf (no inf * 0).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from afbench.activations.learnable import PAU_LEAKY_RELU_DENOMINATOR, PAU_LEAKY_RELU_NUMERATOR

Tensor = torch.Tensor
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
# SELU's fixed point constants (Klambauer et al. 2017), as torch.nn.SELU uses them.
SELU_LAMBDA = 1.0507009873554805
SELU_ALPHA = 1.6732632423543772
RRELU_LOWER, RRELU_UPPER = 1 / 8, 1 / 3  # Xu et al. 2015; the eval slope is their mean, 11/48


# ---- masks --------------------------------------------------------------------------------------------

def ones_where_positive(x: Tensor) -> Tensor:
    return (x > 0).to(x.dtype)


def band(x: Tensor, lo: float, hi: float, inside: float = 1.0) -> Tensor:
    """``inside`` where lo < x < hi, else 0."""
    return ((x > lo) & (x < hi)).to(x.dtype) * inside


def outside(x: Tensor, lam: float) -> Tensor:
    """1 where |x| > lam, else 0 (the shrink functions' slope)."""
    return (x.abs() > lam).to(x.dtype)


def slopes(x: Tensor, negative: float, positive: float = 1.0) -> Tensor:
    """``positive`` for x > 0, ``negative`` elsewhere (leaky ReLU, PReLU, RReLU in eval)."""
    return torch.where(x > 0, torch.full_like(x, positive), torch.full_like(x, negative))


# ---- torch's own activations --------------------------------------------------------------------------

def d_sigmoid(x: Tensor) -> Tensor:
    s = torch.sigmoid(x)
    return s * (1 - s)


def d_tanh(x: Tensor) -> Tensor:
    return 1 - torch.tanh(x) ** 2


def d_elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    return torch.where(x > 0, torch.ones_like(x), alpha * torch.exp(x.clamp(max=0)))


def d_selu(x: Tensor) -> Tensor:
    return SELU_LAMBDA * torch.where(x > 0, torch.ones_like(x), SELU_ALPHA * torch.exp(x.clamp(max=0)))


def d_gelu(x: Tensor) -> Tensor:
    cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2.0)))
    pdf = torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return cdf + x * pdf


def d_gelu_tanh(x: Tensor) -> Tensor:
    u = _SQRT_2_OVER_PI * (x + 0.044715 * x**3)
    t = torch.tanh(u)
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)


def d_silu(x: Tensor) -> Tensor:
    s = torch.sigmoid(x)
    return s * (1 + x * (1 - s))


def d_mish(x: Tensor) -> Tensor:
    t = torch.tanh(F.softplus(x))
    return t + x * (1 - t * t) * torch.sigmoid(x)


def d_softsign(x: Tensor) -> Tensor:
    return (1 + x.abs()).pow(-2)


def d_hard_swish(x: Tensor) -> Tensor:
    middle = torch.where((x > -3) & (x < 3), (2 * x + 3) / 6, torch.zeros_like(x))
    return torch.where(x >= 3, torch.ones_like(x), middle)


def d_rrelu_eval(x: Tensor) -> Tensor:
    return slopes(x, (RRELU_LOWER + RRELU_UPPER) / 2)


def d_star_relu(x: Tensor) -> Tensor:
    """At StarReLU's initialisation, s = 0.8944."""
    return 2 * 0.8944 * x.clamp(min=0)


# ---- afbench's own modules ----------------------------------------------------------------------------

def d_relu_softplus(x: Tensor) -> Tensor:
    return torch.where(x > 0, torch.ones_like(x), torch.sigmoid(x))


def d_relu_softsign(x: Tensor) -> Tensor:
    return torch.where(x > 0, torch.ones_like(x), (1 - x).pow(-2))


# ---- the grown zoo (issue 17) ---------------------------------------------------------------------------


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


def d_pau(x: Tensor) -> Tensor:
    """f'(x) of the safe PAU at its leaky-ReLU initialisation: (P' Q - P Q') / Q^2."""
    a, b = PAU_LEAKY_RELU_NUMERATOR, PAU_LEAKY_RELU_DENOMINATOR
    ax = x.abs()
    p = sum(c * x**j for j, c in enumerate(a))
    dp = sum(j * c * x ** (j - 1) for j, c in enumerate(a) if j)
    q = 1 + sum(abs(c) * ax ** (k + 1) for k, c in enumerate(b))
    dq = torch.sign(x) * sum((k + 1) * abs(c) * ax**k for k, c in enumerate(b))
    return (dp * q - p * dq) / (q * q)
