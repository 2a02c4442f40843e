"""Low-precision numerics of an elementwise activation: bfloat16 and float16 against float64.

Error measure, for each format and for f and its closed-form derivative f':
inputs x are first rounded to the format (that rounding is the format's, not the
activation's); the reference is f(x) computed in float64 on those rounded inputs;
the error at a point is |f_low(x) - f_ref(x)| / max(|f_ref(x)|, floor) with
floor = the format's smallest normal number, expressed in units of the format's
machine epsilon (a correctly rounded result scores <= 0.5). The reported error is
the maximum over the finite points of the grid.

Flags: ``overflow`` where the reference fits in the format but the result is +-inf;
``nan`` where the reference is a number but the result is NaN. Points whose true
value exceeds the format's range are excluded (inf is the right answer there).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

FORMATS = {"bf16": torch.bfloat16, "fp16": torch.float16}
FP16_MAX = 65504.0


def grid() -> torch.Tensor:
    """float64 test points: a dense core, near zero, the tails up to the fp16 edge,
    and x around 11 where exp(x) passes the fp16 maximum."""
    core = torch.linspace(-20, 20, 4001, dtype=torch.float64)
    tiny = torch.logspace(-8, 0, 81, dtype=torch.float64)
    tails = torch.logspace(1, 4, 61, dtype=torch.float64)
    edges = torch.tensor([6e4, FP16_MAX, 0.0], dtype=torch.float64)
    near11 = torch.linspace(10.5, 12.0, 151, dtype=torch.float64)
    positive = torch.cat([tiny, tails, edges, near11])
    return torch.unique(torch.cat([core, positive, -positive]))


@dataclass(frozen=True)
class Numerics:
    format: str  # bf16 | fp16
    forward_error: float  # max relative error in units of the format's epsilon (see module docstring)
    derivative_error: float | None  # None when no closed-form derivative is registered
    flags: tuple[str, ...]  # e.g. ("forward overflow at x=11.1", "derivative nan at x=-65504")
    reason: str = ""  # why it could not be measured, "" otherwise

    @property
    def error(self) -> float:
        return max(e for e in (self.forward_error, self.derivative_error) if e is not None)


def _in(fn: Callable, dtype: torch.dtype) -> Callable:
    """``fn`` with its parameters (PReLU's slope) in ``dtype``, in eval mode (no noise)."""
    return copy.deepcopy(fn).to(dtype).eval() if isinstance(fn, nn.Module) else fn


def _compare(fn: Callable, x: torch.Tensor, dtype: torch.dtype, label: str) -> tuple[float, list[str]]:
    info = torch.finfo(dtype)
    x_low = x.to(dtype)
    with torch.no_grad():
        ref = _in(fn, torch.float64)(x_low.double())
        got = _in(fn, dtype)(x_low).double()
    representable = ref.isfinite() & (ref.abs() <= info.max)
    flags = []
    for name, bad in (("overflow", got.isinf()), ("nan", got.isnan())):
        bad = bad & representable
        if bad.any():
            where = x_low.double()[bad]
            flags.append(f"{label} {name} at {int(bad.sum())} points, first x={where[where.abs().argmin()].item():.4g}")
    ok = representable & got.isfinite()
    rel = (got[ok] - ref[ok]).abs() / ref[ok].abs().clamp(min=info.tiny)
    return (float(rel.max()) / info.eps if ok.any() else math.nan), flags


def numerics(fn: Callable, derivative: Callable | None, fmt: str) -> Numerics:
    """Error of ``fn`` (a module or function of a tensor) and of ``derivative`` in ``fmt``."""
    dtype = FORMATS[fmt]
    x = grid()
    try:
        forward, flags = _compare(fn, x, dtype, "forward")
        d_error = None
        if derivative is not None:
            d_error, d_flags = _compare(derivative, x, dtype, "derivative")
            flags += d_flags
    except (RuntimeError, TypeError) as err:  # e.g. an op with no kernel for this dtype on this device
        return Numerics(fmt, math.nan, None, (), f"{type(err).__name__}: {str(err).splitlines()[0][:200]}")
    return Numerics(fmt, forward, d_error, tuple(flags))


def activation_numerics(name: str) -> dict[str, Numerics]:
    """bf16 and fp16 numerics of an activation by name. Registered ones are checked with
    their closed-form derivative; a formula or import path without one, forward only.
    Not elementwise (maxout): every entry carries the reason and no numbers."""
    from afbench import activations
    from afbench.errors import UnknownNameError

    try:
        spec = activations.info(name)
    except UnknownNameError:  # a formula in x or a module path: no registered derivative
        module = activations.factory(name)(1)
        return {fmt: numerics(module, None, fmt) for fmt in FORMATS}
    if not spec.elementwise:
        why = f"{spec.name} is not elementwise: no scalar function to evaluate on a grid"
        return {fmt: Numerics(fmt, math.nan, None, (), why) for fmt in FORMATS}
    module = activations.create(spec.name, 1)  # one channel: per-channel parameters broadcast over the grid
    return {fmt: numerics(module, spec.derivative, fmt) for fmt in FORMATS}
