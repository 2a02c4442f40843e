"""Custom autograd Functions behind the learnable activations (learnable.py).

A plain autograd graph of ACON-C or a Padé unit runs one backward kernel per node and
keeps every intermediate; these compute the input gradient and the parameter
gradients from a few saved tensors, in place where the tensor is their own. Those carry
no graph of the gradient: a backward pass that asks for one is refused, and under
``kernels.differentiable()`` the modules run plain torch ops instead (learnable.py).
Parameters arrive as views that broadcast over x: 0-dim (shared by the layer) or
(1, C, 1, ...) (per channel on dim 1); their gradients are summed back to that shape.
"""

from __future__ import annotations

import torch

from afbench.activations.native import refuse_double_backward

Tensor = torch.Tensor


def _reduce(t: Tensor, like: Tensor) -> Tensor:
    """Sum t over every dimension that ``like`` broadcasts along."""
    return t.sum_to_size(like.shape)


class StarReLUFn(torch.autograd.Function):
    """s relu(x)^2 + b: d/dx = 2 s relu(x), d/ds = relu(x)^2, d/db = 1."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: Tensor, bias: Tensor) -> Tensor:
        r = x.clamp(min=0)
        ctx.save_for_backward(r, scale, bias)
        return torch.addcmul(bias, r * scale, r)

    @staticmethod
    def backward(ctx, grad: Tensor):
        refuse_double_backward("star_relu")
        r, scale, bias = ctx.saved_tensors
        gr = grad * r
        gx = gr * (2 * scale)
        return gx, _reduce(gr.mul_(r), scale), _reduce(grad, bias)


class AconCFn(torch.autograd.Function):
    """d x sigmoid(beta d x) + p2 x with d = p1 - p2. With z = beta d x, s = sigmoid(z) and
    g = s (1 + z (1 - s)): dy/dx = d g + p2, dy/dp1 = x g, dy/dp2 = x - x g,
    dy/dbeta = (d x)^2 s (1 - s)."""

    @staticmethod
    def forward(ctx, x: Tensor, p1: Tensor, p2: Tensor, beta: Tensor) -> Tensor:
        d = p1 - p2
        z = (x * d).mul_(beta)
        s = torch.sigmoid(z)
        ctx.save_for_backward(x, p1, p2, beta, z, s)
        return (x * d).mul_(s).addcmul_(x, p2)

    @staticmethod
    def backward(ctx, grad: Tensor):
        refuse_double_backward("acon_c")
        x, p1, p2, beta, z, s = ctx.saved_tensors
        d = p1 - p2
        ss = (1 - s).mul_(s)  # s (1 - s)
        g = torch.addcmul(s, z, ss)  # s + z s (1 - s)
        gx = torch.addcmul(p2, g, d).mul_(grad)
        gxx = grad * x
        gp1 = _reduce(gxx * g, p1)
        gp2 = _reduce(gxx, p2) - gp1
        dx = x * d
        gbeta = _reduce(dx.mul_(dx).mul_(ss).mul_(grad), beta)
        return gx, gp1, gp2, gbeta


class SafePadeFn(torch.autograd.Function):
    """P(x) / Q(x), P = sum_j a_j x^j (j <= 5), Q = 1 + sum_k |b_k| |x|^k (k = 1..4).

    ``a`` and ``b`` are lists of 6 and 4 broadcastable coefficients. dy/dx = (P' - y Q') / Q
    with Q' = sign(x) sum_k k |b_k| |x|^(k-1); dy/da_j = x^j / Q; dy/db_k = -sign(b_k) y |x|^k / Q.
    """

    @staticmethod
    def forward(ctx, x: Tensor, *coefficients: Tensor) -> Tensor:
        a, b = coefficients[:6], [c.abs() for c in coefficients[6:]]
        p = torch.addcmul(a[4], x, a[5])
        for coefficient in (a[3], a[2], a[1], a[0]):  # Horner, in place
            torch.addcmul(coefficient, p, x, out=p)
        ax = x.abs()
        q = torch.addcmul(b[2], ax, b[3])
        for coefficient in (b[1], b[0]):
            torch.addcmul(coefficient, q, ax, out=q)
        q.mul_(ax).add_(1)
        y = p.div_(q)
        ctx.save_for_backward(x, q, y, *coefficients)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):
        refuse_double_backward("pau")
        x, q, y, *coefficients = ctx.saved_tensors
        a, signed_b = coefficients[:6], coefficients[6:]
        b = [c.abs() for c in signed_b]
        gq = grad / q
        dp = torch.addcmul(4 * a[4], x, 5 * a[5])  # P'
        for j in (3, 2, 1):
            torch.addcmul(j * a[j], dp, x, out=dp)
        ax = x.abs()
        dq = torch.addcmul(3 * b[2], ax, 4 * b[3])  # Q' / sign(x)
        for k in (2, 1):
            torch.addcmul(k * b[k - 1], dq, ax, out=dq)
        gx = dp.sub_(dq.mul_(torch.sign(x)).mul_(y)).mul_(gq)
        grads_a, w = [_reduce(gq, a[0])], gq
        for j in range(1, 6):
            w = w * x if j == 1 else w.mul_(x)
            grads_a.append(_reduce(w, a[j]))
        grads_b, v = [], gq * y
        for k in range(4):
            v.mul_(ax)
            grads_b.append(_reduce(v, signed_b[k]).neg_().mul_(torch.sign(signed_b[k])))
        return (gx, *grads_a, *grads_b)

