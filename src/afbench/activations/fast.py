"""Fused forward/backward pairs for the zoo's elementwise activations (speed).

Each pair is ``fwd(x) -> (y, saved)`` and ``bwd(grad, *saved) -> dx``: the forward
pass keeps the intermediates the derivative needs (a sigmoid, a tanh) so the backward
pass does not recompute transcendental functions, and both work in place on tensors
they allocated themselves. On CPU every pass over a 1M-element tensor costs about as
much as a whole ReLU kernel, so the number of passes is what these minimise.

The pairs give first derivatives only (their saved intermediates carry no graph): a
backward pass that builds a graph is refused, and under ``kernels.differentiable()``
(and torch.func, tracing, export) each activation runs ``Pair.plain``, the same
function in plain torch ops, whose derivatives of every order autograd takes exactly.

The registry's closed-form derivatives (derivatives.py) are a second, plain
implementation: tests compare the two, and both against finite differences.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from afbench.activations import kernels, native

Tensor = torch.Tensor
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
LN2 = math.log(2.0)


class Pair(NamedTuple):
    fwd: Callable[..., tuple]
    bwd: Callable[..., Tensor]
    plain: Callable[[Tensor], Tensor]  # f in plain torch ops: every derivative exact, torch.func-ready


class _FusedFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, name: str, pair: Pair) -> Tensor:
        y, saved = pair.fwd(x)
        ctx.save_for_backward(*saved)
        ctx.name, ctx.pair = name, pair
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):
        native.refuse_double_backward(ctx.name)  # the saved intermediates carry no graph of f'
        return ctx.pair.bwd(grad, *ctx.saved_tensors), None, None


class Fused(nn.Module):
    """An elementwise activation run through its fused pair (and, where the activation
    table lists it at speed "compiled" or "native", through ``kernel`` on large CPU tensors)."""

    kernel: "kernels.Kernel | None" = None  # bound by activations.create from the table's speed tier

    def __init__(self, name: str, pair: Pair) -> None:
        super().__init__()
        self.name, self.pair = name, pair

    def forward(self, x: Tensor) -> Tensor:
        y = self.kernel(x) if self.kernel is not None else None  # one pass for large CPU tensors
        if y is not None:
            return y
        if kernels.eager_context():  # differentiable(), torch.func, export: plain ops
            return self.pair.plain(x)
        if torch.is_grad_enabled() and x.requires_grad:
            return _FusedFn.apply(x, self.name, self.pair)
        return self.pair.fwd(x)[0]

    def extra_repr(self) -> str:
        return self.name


def _a(x: Tensor) -> Tensor:
    """x for x >= 0, e^x - 1 for x < 0: expm1(m) + x - m with m = min(x, 0)."""
    m = x.clamp(max=0)
    return torch.expm1(m).add_(x).sub_(m)


def _elish_fwd(x):
    s, a = torch.sigmoid(x), _a(x)
    y = a * s
    return y, (s, a, y)


def _elish_bwd(grad, s, a, y):
    # f' = a' s + a s (1 - s) = s (min(a, 0) + 1) + y - y s, since a' = e^min(x,0) = min(a, 0) + 1
    d = a.clamp(max=0).add_(1).mul_(s).add_(y)
    return d.sub_(y * s).mul_(grad)


def _hard_elish_fwd(x):
    h, a = x.add(1).mul_(0.5).clamp_(0, 1), _a(x)
    return a * h, (h, a)


def _hard_elish_bwd(grad, h, a):
    inside = ((h > 0) & (h < 1)).to(h.dtype).mul_(0.5)  # h' = 1/2 on (-1, 1)
    return a.clamp(max=0).add_(1).mul_(h).addcmul_(a, inside).mul_(grad)


def _sqnl_fwd(x):
    c = x.clamp(-2, 2)
    ac = c.abs()
    return torch.addcmul(c, c, ac, value=-0.25), (ac,)


def _sqnl_bwd(grad, ac):
    return ac.mul(-0.5).add_(1).mul_(grad)


def _isru_fwd(x):
    r = (x * x).add_(1).rsqrt_()
    return x * r, (r,)


def _isrlu_fwd(x):
    n = x.clamp(max=0)
    r = n.mul_(n).add_(1).rsqrt_()
    return x * r, (r,)


def _isru_bwd(grad, r):
    return (r * r).mul_(r).mul_(grad)


def _bent_fwd(x):
    r = (x * x).add_(1).sqrt_()
    return torch.add(x, r, alpha=0.5).sub_(0.5), (x, r)


def _bent_bwd(grad, x, r):
    return (x / r).mul_(0.5).add_(1).mul_(grad)


def _gaussian_fwd(x):
    e = (x * x).neg_().exp_()
    return e, (x, e)


def _gaussian_bwd(grad, x, e):
    return (x * e).mul_(-2).mul_(grad)


def _arctan_fwd(x):
    return torch.atan(x), (x,)


def _arctan_bwd(grad, x):
    return grad / (x * x).add_(1)


def _lisht_fwd(x):
    t = torch.tanh(x)
    y = x * t
    return y, (x, t, y)


def _lisht_bwd(grad, x, t, y):
    return (x + t).sub_(y * t).mul_(grad)  # t + x (1 - t^2)


def _tanhexp_fwd(x):
    e = x.clamp(max=20).exp_()  # tanh(e^x) = 1 exactly well before x = 20: no overflow
    t = torch.tanh(e)
    return x * t, (x, e, t)


def _tanhexp_bwd(grad, x, e, t):
    w = (t * t).neg_().add_(1).mul_(e).mul_(x)  # x e^x (1 - tanh^2(e^x))
    return w.add_(t).mul_(grad)


def _smish_fwd(x):
    # tanh(ln(1 + s)) = u / (u + 2) with u = (1 + s)^2 - 1 = s (s + 2): no log, no tanh.
    s = torch.sigmoid(x)
    u = (s + 2).mul_(s)  # not v - 2: in bf16 that cancels for small s
    v = u + 2
    t = u.div_(v)
    return x * t, (x, s, v, t)


def _smish_bwd(grad, x, s, v, t):
    # dt/dx = 4 (1 + s) s (1 - s) / (u + 2)^2
    w = (1 - s).mul_(s).mul_(s + 1).mul_(4).div_(v).div_(v)
    return w.mul_(x).add_(t).mul_(grad)


def _serf_fwd(x):
    sp = F.softplus(x)
    er = torch.erf(sp)
    return x * er, (x, sp, er)


def _serf_bwd(grad, x, sp, er):
    w = (sp * sp).neg_().exp_().mul_(torch.sigmoid(x)).mul_(x)
    return w.mul_(_TWO_OVER_SQRT_PI).add_(er).mul_(grad)


def _logish_fwd(x):
    s = torch.sigmoid(x)
    ln = torch.log1p(s)
    return x * ln, (x, s, ln)


def _logish_bwd(grad, x, s, ln):
    return (1 - s).mul_(s).div_(s + 1).mul_(x).add_(ln).mul_(grad)


def _squared_relu_fwd(x):
    r = x.clamp(min=0)
    return r * r, (r,)


def _squared_relu_bwd(grad, r):
    return r.mul(2).mul_(grad)


def _shifted_softplus_fwd(x):
    return F.softplus(x).sub_(LN2), (x,)


def _shifted_softplus_bwd(grad, x):
    return torch.ops.aten.softplus_backward(grad, x, 1.0, 20.0)


def _logsigmoid_fwd(x):
    return F.logsigmoid(x), (x,)


def _logsigmoid_bwd(grad, x):
    return torch.sigmoid(-x).mul_(grad)


def _tanhshrink_fwd(x):
    t = torch.tanh(x)
    return x - t, (t,)


def _tanhshrink_bwd(grad, t):
    return (t * t).mul_(grad)


# ---- the same functions in plain torch ops (Pair.plain) -----------------------------------------------

def _plain_a(x: Tensor) -> Tensor:
    return torch.where(x >= 0, x, torch.expm1(x.clamp(max=0)))


def _plain_sqnl(x: Tensor) -> Tensor:
    c = x.clamp(-2, 2)
    return c - c * c.abs() / 4


PLAIN: dict[str, Callable[[Tensor], Tensor]] = {
    "elish": lambda x: _plain_a(x) * torch.sigmoid(x),
    "hard_elish": lambda x: _plain_a(x) * ((x + 1) / 2).clamp(0, 1),
    "sqnl": _plain_sqnl,
    "isru": lambda x: x * torch.rsqrt(1 + x * x),
    "isrlu": lambda x: x * torch.rsqrt(1 + x.clamp(max=0) ** 2),
    "bent_identity": lambda x: (torch.sqrt(x * x + 1) - 1) / 2 + x,
    "gaussian": lambda x: torch.exp(-x * x),
    "arctan": torch.atan,
    "lisht": lambda x: x * torch.tanh(x),
    "tanhexp": lambda x: x * torch.tanh(torch.exp(x.clamp(max=20))),
    "smish": lambda x: x * torch.tanh(torch.log1p(torch.sigmoid(x))),
    "serf": lambda x: x * torch.erf(F.softplus(x)),
    "logish": lambda x: x * torch.log1p(torch.sigmoid(x)),
    "squared_relu": lambda x: F.relu(x) ** 2,
    "shifted_softplus": lambda x: F.softplus(x) - LN2,
    "tanhshrink": lambda x: x - torch.tanh(x),
    "logsigmoid": F.logsigmoid,
}

_FUSED = {
    "elish": (_elish_fwd, _elish_bwd), "hard_elish": (_hard_elish_fwd, _hard_elish_bwd),
    "sqnl": (_sqnl_fwd, _sqnl_bwd), "isru": (_isru_fwd, _isru_bwd), "isrlu": (_isrlu_fwd, _isru_bwd),
    "bent_identity": (_bent_fwd, _bent_bwd), "gaussian": (_gaussian_fwd, _gaussian_bwd),
    "arctan": (_arctan_fwd, _arctan_bwd), "lisht": (_lisht_fwd, _lisht_bwd),
    "tanhexp": (_tanhexp_fwd, _tanhexp_bwd), "smish": (_smish_fwd, _smish_bwd),
    "serf": (_serf_fwd, _serf_bwd), "logish": (_logish_fwd, _logish_bwd),
    "squared_relu": (_squared_relu_fwd, _squared_relu_bwd),
    "shifted_softplus": (_shifted_softplus_fwd, _shifted_softplus_bwd),
    "tanhshrink": (_tanhshrink_fwd, _tanhshrink_bwd), "logsigmoid": (_logsigmoid_fwd, _logsigmoid_bwd),
}
PAIRS: dict[str, Pair] = {name: Pair(fwd, bwd, PLAIN[name]) for name, (fwd, bwd) in _FUSED.items()}


class RReLU(nn.RReLU):
    """RReLU (Xu et al. 2015): in training, slope ~ U(lower, upper) per element for x < 0,
    drawn by afbench's counter-based generator (kernels.uniform_hash) from one seed taken
    from torch's generator. torch's own RReLU draws one number at a time (7x ReLU's whole
    forward+backward on a 1M-element tensor); this draw fuses into the compiled kernel on
    large CPU tensors and runs eagerly elsewhere, with the same slopes for the same seed.
    In evaluation: torch's, the mean slope."""

    kernel: "kernels.Kernel | None" = None  # bound by activations.create from the table's speed tier

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return super().forward(x)
        seed = torch.randint(-(1 << 31), (1 << 31) - 1, (), dtype=torch.int32)
        y = self.kernel(x, seed, self.lower, self.upper) if self.kernel is not None else None
        return y if y is not None else kernels.rrelu_eager(x, seed, self.lower, self.upper)


def module(name: str) -> Callable[..., nn.Module]:
    """A registry factory (num_features ignored) for the fused activation ``name``."""
    pair = PAIRS[name]
    return lambda num_features=None: Fused(name, pair)
