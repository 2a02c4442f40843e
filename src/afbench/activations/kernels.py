"""Compiled CPU kernels for the zoo's costlier activations (issue 17's speed budget).

On a CPU an activation costs passes over memory and vector transcendental functions.
The eager versions (fast.py, learnable_fn.py) are already few in-place passes, yet each
torch call still reads and writes the whole tensor. Here torch.compile (Inductor) turns
each function below into one C++ loop, built once with the machine's compiler and kept
in torch's on-disk cache, so a second process loads it instead of compiling.

Two shapes of kernel:
- ``Slope``: an elementwise activation written as ``x -> (f(x), f'(x))``, computed in one
  pass. Training keeps f'(x) (one tensor, as ReLU keeps its output) and the backward
  pass is one multiplication; inference compiles f alone.
- ``Differentiated``: a function of the input and the activation's parameters,
  differentiated and fused by AOTAutograd, parameter gradients' sums included (StarReLU,
  PAU: torch ops only, no inline exp, whose bit manipulation has no derivative).
Serf, TanhExp, LiSHT, Tanhshrink, ACON-C and GEGLU run hand-written C++ loops instead (native.py
says why).

The math avoids the vector functions that ATen calls out of line (Sleef's exp, tanh,
log1p: around a call every vector register is spilled) and Inductor's expm1, which is
not accurate near 0: exp written out (Cody and Waite's reduction, a Taylor polynomial and
the exponent's bits), expm1 through it and a short series, log1p on [0, 1] by a
fitted polynomial, arctan by Cephes' range reduction, polynomials by Estrin's scheme. The
tests hold each kernel's float32 error to that of torch's own eager functions, against
float64 references.

They give first derivatives only: a backward pass that builds a graph (double backward,
gradient penalties) is refused with the fix, ``differentiable()``, under which every
activation runs as plain torch ops.

When: float32 CPU tensors with at least ``MIN_ELEMENTS`` elements (the approximations
are float32-grade: float64 runs the eager versions). Below that a compiled call's fixed
cost (guards, autograd wrappers: about 0.1 ms a call) eats its gain: alone a kernel wins
from about 50,000 elements, but inside LeNet on MNIST (activations of 110k and 33k
elements) `afbench cost` measured ACON-C's and StarReLU's steps slower with Inductor's
kernels than without. The native loops (native.NAMES) have no guards to check and
run from ``NATIVE_MIN_ELEMENTS`` on, where they already beat the eager versions:
`python bench/activations.py --size 33000` (1 thread, forward and backward) gave ACON-C
0.44 ms against 0.63 ms eager, serf 0.30 against 0.48, GEGLU 0.25 against 0.26.
The eager versions also run while tracing, exporting to ONNX, compiling a whole
model (the outer compile fuses them itself), inside torch.func transforms and forward-mode AD, and under a
torch function or dispatch mode (afbench's swap check, the FLOP counter).
``AFBENCH_KERNELS=off`` turns the kernels off; without a C++ compiler, or when a
compilation fails, afbench warns once and runs the eager versions.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import types
import warnings
from typing import Callable

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import _get_current_dispatch_mode

from afbench.activations import native

Tensor = torch.Tensor
MIN_ELEMENTS = 1 << 18  # 262,144: see the module's docstring
NATIVE_MIN_ELEMENTS = 1 << 15  # 32,768: for the native loops, whose calls cost far less
_DTYPES = (torch.float32,)  # the approximations below are float32-grade; float64 runs the eager versions
RECOMPILE_LIMIT = 64  # graphs per kernel (Dynamo's default is 8)
_LN2 = math.log(2.0)
_LOG2E = 1.0 / math.log(2.0)
_LN2_HI, _LN2_LO = 0.693145751953125, 1.428606765330187045e-06  # ln 2 = HI + LO, HI with 16 bits
_GOLDEN, _MURMUR1, _MURMUR2 = (v - (1 << 32) for v in (0x9E3779B1, 0x85EBCA6B, 0xC2B2AE35))  # as int32
# broken: the first compilation failure, if any (kernels stay off for the process); warned: bad switch values
_state = {"broken": None, "warned": set()}


# ---- math: torch ops that Inductor fuses into one loop -------------------------------------------------

def exp(y: Tensor) -> Tensor:
    """e^y for float32 y <= 88 (0 below -88), written out so that it compiles inline: ATen's
    vector exp is a call into Sleef, and around a call every vector register is spilled,
    which makes it costlier than this. Cody and Waite's reduction y = n ln 2 + r,
    |r| <= ln 2 / 2, e^r by its Taylor series to r^7 (truncation < 6e-9), 2^n built in the
    exponent bits. Relative error about 1 ulp. Other dtypes: torch.exp."""
    if y.dtype != torch.float32:
        return torch.exp(y)
    return _exp_within_range(y.clamp(-88.0, 88.0))


def exp_nonpositive(y: Tensor) -> Tensor:
    """exp for y <= 0 (-|x|, -x^2): one clamp fewer, which the kernels' long chains feel."""
    if y.dtype != torch.float32:
        return torch.exp(y)
    return _exp_within_range(y.clamp(min=-88.0))


def _exp_within_range(y: Tensor) -> Tensor:
    # y >= -88: n = -127 gives exponent bits 0, the result 0, not a denormal
    n = torch.round(y * _LOG2E)
    r = (y - n * _LN2_HI) - n * _LN2_LO
    r2 = r * r
    p = (1 + r) + r2 * ((1 / 2 + r * (1 / 6)) + r2 * ((1 / 24 + r * (1 / 120)) + r2 * (1 / 720 + r * (1 / 5040))))
    return p * ((n.to(torch.int32) + 127) << 23).view(torch.float32)


def sigmoid_with(x: Tensor, u: Tensor) -> Tensor:
    """sigmoid(x) given u = e^-|x|, with no overflow either side."""
    return torch.where(x >= 0, 1.0, u) / (1 + u)


def exp_expm1(y: Tensor) -> tuple[Tensor, Tensor]:
    """e^y and e^y - 1 for y <= 0, the latter by its Taylor series to y^8 for |y| <= 1/2
    (relative error < 2e-8) and as e^y - 1 beyond, where nothing cancels. Inductor's vector expm1 is not
    accurate near 0 (20% off at 1e-7), so the kernels use this instead."""
    u = exp_nonpositive(y)
    y2 = y * y
    y4 = y2 * y2
    series = y + y2 * (1 / 2 + y * (1 / 6)) + y4 * ((1 / 24 + y * (1 / 120)) + y2 * (1 / 720 + y * (1 / 5040))
                                                   + y4 * (1 / 40320))
    return u, torch.where(y.abs() <= 0.5, series, u - 1)


def log1p_unit(u: Tensor) -> Tensor:
    """log(1 + u) for u in [0, 1] as u P(2u - 1), P of degree 8 summed by Estrin's scheme: no
    division (2 atanh(u / (2 + u)) needs one) and a short dependency chain, which is what a
    vector loop needs (the kernels' time follows their longest chain)."""
    t = 2 * u - 1
    t2 = t * t
    t4 = t2 * t2
    c = native.LOG1P  # scripts/fit_polynomials.py
    return u * (((c[0] + c[1] * t) + t2 * (c[2] + c[3] * t))
                + t4 * (((c[4] + c[5] * t) + t2 * (c[6] + c[7] * t)) + t4 * c[8]))


def uniform_hash(like: Tensor, seed: Tensor) -> Tensor:
    """Uniform [0, 1) numbers, one per element of ``like``, from a counter-based generator:
    murmur3's 32-bit finaliser of (index * golden ratio + seed), top 24 bits, as a float32
    rand does. No state and no serial loop, so it fuses into the kernel that uses it;
    ``seed`` (an int32 0-dim tensor) comes from torch's generator, so torch.manual_seed
    makes it reproducible."""
    index = torch.arange(like.numel(), dtype=torch.int32, device=like.device).view(like.shape)
    h = index * _GOLDEN + seed
    h = h ^ ((h >> 16) & 0xFFFF)  # logical shifts on int32: arithmetic shift, then mask
    h = h * _MURMUR1
    h = h ^ ((h >> 13) & 0x7FFFF)
    h = h * _MURMUR2
    h = h ^ ((h >> 16) & 0xFFFF)
    return ((h >> 8) & 0xFFFFFF).to(like.dtype) * (1.0 / (1 << 24))


def atan(x: Tensor) -> Tensor:
    """arctan(x), Cephes' atanf: reduce |x| to [0, tan(pi/8)] by pi/2 - atan(1/|x|) and
    pi/4 + atan((|x| - 1) / (|x| + 1)), then an odd polynomial."""
    a = x.abs()
    big, mid = a > 2.414213562373095, a > 0.4142135623730950
    r = torch.where(big, -1 / a, torch.where(mid, (a - 1) / (a + 1), a))
    base = torch.where(big, math.pi / 2, torch.where(mid, math.pi / 4, 0.0))
    z = r * r
    poly = (((8.05374449538e-2 * z - 1.38776856032e-1) * z + 1.99777106478e-1) * z - 3.33329491539e-1) * z
    return torch.copysign(base + r + r * poly, x)


def _sigmoid_and_softplus(x: Tensor) -> tuple[Tensor, Tensor]:
    """sigmoid(x) and ln(1 + e^x) from one u = e^-|x|."""
    u = exp_nonpositive(-x.abs())
    return sigmoid_with(x, u), x.clamp(min=0) + log1p_unit(u)


# ---- elementwise activations as (f(x), f'(x)) --------------------------------------------------------

def logsigmoid(x):
    u = exp_nonpositive(-x.abs())
    return x.clamp(max=0) - log1p_unit(u), torch.where(x >= 0, u, 1.0) / (1 + u)  # f' = sigmoid(-x)


def elish(x):
    u, m = exp_expm1(-x.abs())  # e^x and e^x - 1 for x < 0
    positive = x >= 0
    s = torch.where(positive, 1.0, u) / (1 + u)  # sigmoid(x)
    a = torch.where(positive, x, m)
    slope = torch.where(positive, s * (1 + x * (1 - s)), s * (u + m * (1 - s)))
    return a * s, slope


def hard_elish(x):
    h = ((x + 1) * 0.5).clamp(0, 1)
    u, m = exp_expm1(x.clamp(max=0))
    positive = x >= 0
    a, da = torch.where(positive, x, m), torch.where(positive, 1.0, u)
    dh = torch.where((x > -1) & (x < 1), 0.5, 0.0)
    return a * h, da * h + a * dh


def arctan(x):
    return atan(x), 1 / (1 + x * x)


def smish(x):
    # tanh(ln(1 + s)) = u / (u + 2), u = s (s + 2): no log, no tanh
    s = sigmoid_with(x, exp_nonpositive(-x.abs()))
    u = s * (s + 2)
    v = u + 2
    t = u / v
    return x * t, t + x * 4 * (1 + s) * s * (1 - s) / (v * v)


def rrelu(x, seed, lower, upper):
    """Training-mode RReLU: slope ~ U(lower, upper) per element for x < 0."""
    a = lower + (upper - lower) * uniform_hash(x, seed)
    positive = x >= 0
    return torch.where(positive, x, x * a), torch.where(positive, 1.0, a)


def logish(x):
    s = sigmoid_with(x, exp_nonpositive(-x.abs()))
    ln = log1p_unit(s)
    return x * ln, ln + x * s * (1 - s) / (1 + s)


def shifted_softplus(x):
    # softplus(x) - ln 2 cancels near 0: there its series x/2 + x^2/8 - x^4/192 + x^6/2880 - 17 x^8/645120
    s, sp = _sigmoid_and_softplus(x)
    z = x * x
    series = x * 0.5 + z * (1 / 8 - z * (1 / 192 - z * (1 / 2880 - z * (17 / 645120))))
    return torch.where(x.abs() < 0.5, series, sp - _LN2), s


SLOPES: dict[str, Callable[[Tensor], tuple[Tensor, Tensor]]] = {
    f.__name__: f for f in (logsigmoid, elish, hard_elish, arctan, smish, logish,
                            shifted_softplus, rrelu)}


# ---- activations with parameters, differentiated by AOTAutograd -------------------------------------------

def _channels(x: Tensor) -> Tensor:
    """(N, C, ...) viewed as (N, C, L): one graph for every rank."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def _per_channel(p: Tensor) -> Tensor:
    return p.view(1, -1, 1)


def star_relu(x, scale, bias):
    r = x.clamp(min=0)
    return scale * r * r + bias


def pau(x, numerator, denominator):
    """Safe PAU (5, 4); coefficients (count, 6) and (count, 4), count 1 or C."""
    x3 = _channels(x)
    a = [_per_channel(numerator[:, j]) for j in range(6)]
    b = [_per_channel(denominator[:, k]).abs() for k in range(4)]
    p = a[5]
    for coefficient in (a[4], a[3], a[2], a[1], a[0]):  # Horner
        p = p * x3 + coefficient
    ax = x3.abs()
    q = b[3]
    for coefficient in (b[2], b[1], b[0]):
        q = q * ax + coefficient
    return (p / (1 + q * ax)).view(x.shape)


DIFFERENTIATED: dict[str, Callable[..., Tensor]] = {f.__name__: f for f in (star_relu, pau)}


# ---- when and how they run ---------------------------------------------------------------------------

@functools.cache
def _compiler_found() -> bool:
    return native.compiler() is not None


_compiler_found()  # once, at import: Dynamo (--compile) cannot trace shutil.which (native.compiler)


_SWITCH = {"auto": True, "on": True, "1": True, "yes": True, "true": True,
           "off": False, "0": False, "no": False, "false": False}


def _switched_on() -> bool:
    """AFBENCH_KERNELS: auto/on (the default) or off; any other value warns once and counts as auto."""
    value = os.environ.get("AFBENCH_KERNELS", "auto").strip().lower()
    if value not in _SWITCH and value not in _state["warned"]:
        _state["warned"].add(value)
        warnings.warn(f"AFBENCH_KERNELS={value!r} is not auto, on or off: the kernels stay on. Set "
                      "AFBENCH_KERNELS=off to run the eager versions", RuntimeWarning, stacklevel=4)
    return _SWITCH.get(value, True)


def enabled() -> bool:
    """Kernels may run in this process: not switched off, not broken, a C++ compiler present."""
    return _switched_on() and _state["broken"] is None and _compiler_found()


def status() -> str:
    """'on', or 'off' and why: the provenance of every run records it."""
    if not _switched_on():
        return "off (AFBENCH_KERNELS)"
    if not _compiler_found():
        return "off (no C++ compiler)"
    if _state["broken"] is not None:
        return f"off ({_state['broken']})"
    return "on" if native.status() == "on" else f"on; native loops ({', '.join(native.NAMES)}) {native.status()}"


class differentiable(TorchFunctionMode):
    """Every activation inside runs as plain torch ops, with exact derivatives of every
    order: the kernels and the fused forward/backward pairs (fast.py, learnable_fn.py,
    modules.py) give first derivatives only. Wrap a loss that differentiates through the
    activations (a gradient penalty, a PDE residual) in ``with differentiable():``."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


def eager_context() -> bool:
    """Tracing, exporting, a torch.func transform, forward-mode AD (the kernels carry no
    tangents), or under a mode that must see every torch call (``differentiable``
    among them). The activations then run their plain torch ops."""
    return (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export()
            or torch._C._is_torch_function_mode_enabled() or _get_current_dispatch_mode() is not None
            or torch._C._functorch.peek_interpreter_stack() is not None
            or torch.autograd.forward_ad._current_level >= 0)


def usable(x: Tensor, minimum: int = MIN_ELEMENTS) -> bool:
    """Whether a kernel should run on ``x`` (see the module's docstring). Checked first:
    an outer torch.compile, which traces the eager version and fuses it itself."""
    return (not torch.compiler.is_compiling() and x.numel() >= minimum and x.device.type == "cpu"
            and x.dtype in _DTYPES and x.dim() >= 2 and enabled() and not eager_context())


def _signature(args) -> tuple:
    """What Dynamo's guards tell apart between calls of one kernel: grad mode, and each
    tensor's dtype, rank, requires_grad and which sizes are 0 or 1 (dynamic shapes
    specialise those). A call with a signature not seen before may compile."""
    return (torch.is_grad_enabled(), *((a.dtype, a.requires_grad, tuple(n < 2 for n in a.shape))
                                       if isinstance(a, Tensor) else type(a) for a in args))


class _Compiled:
    """torch.compile of ``fn`` (dynamic shapes, one graph). Compiles with one compile thread
    (a sweep's worker must not start a pool of compiler processes), lets the C++ compiler
    fuse multiply-adds, and allows more graphs than Dynamo's default 8 (dtypes x ranks x grad
    modes x batch-1 specialisations). Those settings are patched in only around calls that
    may compile: patching costs about 60 us a call, half of a compiled call's own overhead.

    When a call fails, ``fn`` runs eagerly on the same arguments: if that fails too, the
    input was wrong and its error is raised as the eager version would; if it works, the
    compiler was at fault, the kernels go off for this process with one warning, and the
    eager result is returned."""

    def __init__(self, fn: Callable, fused_multiply_add: bool = True) -> None:
        self.fn, self.compiled, self.seen, self.fma = fn, None, set(), fused_multiply_add

    def __call__(self, *args):
        if self.compiled is None:
            self.compiled = torch.compile(self.fn, dynamic=True, fullgraph=True)
        signature = _signature(args)
        try:
            if signature in self.seen:
                return self.compiled(*args)
            with _compile_settings(self.fma):
                out = self.compiled(*args)
            self.seen.add(signature)
            return out
        except Exception as err:
            out = self.fn(*args)  # raises the user's error when the input is at fault
            _state["broken"] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            warnings.warn(f"afbench's compiled activation kernels are off for this process: compiling "
                          f"{getattr(self.fn, '__name__', self.fn)} failed ({_state['broken']}); the eager "
                          "versions run instead (slower; results equal to float32 rounding). "
                          "AFBENCH_KERNELS=off silences this.", RuntimeWarning, stacklevel=3)
            return out


@contextlib.contextmanager
def _compile_settings(fused_multiply_add: bool):
    """One compile thread; multiply-adds fused by the C++ compiler (fewer instructions, one
    rounding instead of two); module constants (ln 2, log2 e) compiled in as constants,
    not read from a tensor."""
    import torch._dynamo.config as dynamo
    import torch._inductor.config as inductor

    settings = {"compile_threads": 1,
                "cpp.enable_floating_point_contract_flag": "fast" if fused_multiply_add else "off"}
    with inductor.patch(settings), dynamo.patch(recompile_limit=RECOMPILE_LIMIT, specialize_float=True):
        yield


class _SlopeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, kernel: "Slope", *args) -> Tensor:
        y, slope = kernel.train(x, *args)
        ctx.save_for_backward(slope)
        ctx.name, ctx.extra = kernel.name, 1 + len(args)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):
        native.refuse_double_backward(ctx.name)
        (slope,) = ctx.saved_tensors
        return grad * slope, *([None] * ctx.extra)


class Slope:
    """An elementwise activation's (f, f') pass (``train``) and f pass (``value``), on a flat
    tensor. Calling it gives f(x), or None for a layout it does not take or when its passes
    are unavailable (the caller then runs its eager version)."""

    def __init__(self, name: str, train: Callable, value: Callable, available: Callable[[], bool] = lambda: True):
        self.name, self.train, self.value, self.available = name, train, value, available

    @classmethod
    def compiled(cls, fn: Callable[[Tensor], tuple[Tensor, Tensor]], fused_multiply_add: bool = True) -> "Slope":
        """Both passes compiled by Inductor from ``fn``: x -> (f(x), f'(x))."""
        return cls(fn.__name__, _Compiled(fn, fused_multiply_add), _Compiled(_value_of(fn), fused_multiply_add))

    @classmethod
    def native(cls, name: str) -> "Slope":
        """Both passes from native.cpp (see native.py)."""
        return cls(name, native.slope_pass(name), native.value_pass(name), native.available)

    def __call__(self, x: Tensor, *args) -> Tensor | None:
        flat, restore = _flat(x)
        if flat is None or not self.available():
            return None
        if torch.is_grad_enabled() and x.requires_grad:
            return restore(_SlopeFn.apply(flat, self, *args))
        return restore(self.value(flat, *args))


def _flat(x: Tensor):
    """x as a 1-D view and the function that gives a result x's shape and layout back: every
    elementwise kernel then compiles one graph per dtype and grad mode, whatever the model.
    (None, None) for layouts other than contiguous and channels-last (the eager version runs)."""
    if x.is_contiguous():
        return x.view(-1), lambda y: y.view(x.shape)
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        nhwc = x.permute(0, 2, 3, 1)
        return nhwc.reshape(-1), lambda y: y.view(nhwc.shape).permute(0, 3, 1, 2)
    return None, None


def _value_of(fn: Callable) -> Callable:
    def value(x: Tensor, *args) -> Tensor:
        return fn(x, *args)[0]  # Inductor drops the unused f'

    # Dynamo caches compiled graphs per code object: each activation's value function needs
    # its own, or they would share one cache and its recompile limit.
    code = value.__code__.replace(co_name=f"{fn.__name__}_value")
    return types.FunctionType(code, value.__globals__, code.co_name, None, value.__closure__)


def rrelu_eager(x: Tensor, seed: Tensor, lower: float, upper: float) -> Tensor:
    """RReLU with the kernel's draw, run eagerly (any device, dtype, size or layout): the same
    seed gives the same slopes either way, and torch's generator advances alike."""
    flat, restore = _flat(x)
    if flat is None:
        flat, restore = x.contiguous().view(-1), (lambda y: y.view(x.shape))
    return restore(rrelu(flat, seed, lower, upper)[0])


# The kernels of each speed tier (ActivationSpec.speed): "compiled" ones from Inductor,
# "native" ones hand-written (native.cpp). The activation table says which tier an
# activation runs at; ``kernel`` binds that once, when its module is built.
COMPILED: dict[str, Callable[..., Tensor | None]] = {
    # RReLU's slopes must equal its eager draw's bit for bit: no fused multiply-add there
    **{name: Slope.compiled(fn, fused_multiply_add=name != "rrelu") for name, fn in SLOPES.items()},
    **{name: _Compiled(fn) for name, fn in DIFFERENTIATED.items()},
}
NATIVE: dict[str, Callable[..., Tensor | None]] = {
    **{name: Slope.native(name) for name in native.ELEMENTWISE},  # hand-written loops: see native.py
    "acon_c": native.acon_c,
    "geglu": native.geglu,
}
_TIERS = {"compiled": (COMPILED, MIN_ELEMENTS), "native": (NATIVE, NATIVE_MIN_ELEMENTS)}
SPEEDS = ("torch", "eager", "fused", *_TIERS)  # see ActivationSpec.speed


class Kernel:
    """Activation ``name``'s kernel at speed tier ``tier``, bound to its module once: calling
    it gives the activation of ``x`` through the kernel, or None where the kernel does not
    apply (small, non-float32 or non-CPU tensors, tracing, ...: the eager version runs).
    Copies and pickles of a module share the one kernel of the process they land in."""

    def __init__(self, name: str, tier: str) -> None:
        table, self.minimum = _TIERS[tier]
        self.name, self.tier, self.fn = name, tier, table[name]

    def __call__(self, x: Tensor, *params) -> Tensor | None:
        return self.fn(x, *params) if usable(x, self.minimum) else None

    def __reduce__(self):
        return kernel, (self.name, self.tier)

    def __deepcopy__(self, memo) -> "Kernel":
        return self

    def __repr__(self) -> str:
        return f"Kernel({self.name!r}, {self.tier!r})"


@functools.cache
def kernel(name: str, tier: str) -> Kernel | None:
    """The kernel that runs activation ``name`` at speed ``tier``; None for the tiers
    without one (torch, eager, fused). A tier that has no kernel for ``name`` is an error
    in the activation table."""
    if tier not in SPEEDS:
        raise ValueError(f"activation '{name}': unknown speed tier '{tier}', choose one of {', '.join(SPEEDS)}")
    if tier not in _TIERS:
        return None
    if name not in _TIERS[tier][0]:
        raise ValueError(f"activation '{name}' is listed at speed '{tier}', which has no kernel for it "
                         f"(it has: {', '.join(sorted(_TIERS[tier][0]))})")
    return Kernel(name, tier)
