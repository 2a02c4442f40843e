"""Hand-written C++ loops (native.cpp) for the kernels Inductor's loops serve badly.

- ACON-C's backward pass sums three parameter gradients per channel. For a sum over rows,
  Inductor's loop walks down each column, a cache line per row; fused with the input's
  gradient, Inductor stores every per-element term. Here one pass over the rows computes the
  input's gradient and adds the three sums into per-channel accumulators, and the forward pass
  keeps nothing but x (the backward pass recomputes sigmoid: no extra tensor to write, read and
  keep for backward).
- GEGLU's backward pass writes both halves of one gradient. Inductor writes them through a
  concatenation: two loops, each reading the input and computing the shared terms again. Here
  one loop writes both, and the forward pass keeps nothing but x.
- 2x2 max pooling on channels-last CPU tensors (models.pool): torch's loop keeps an int64 index per
  output, zeroes the whole input gradient and then scatters into it; at LeNet's 10 channels its
  pass over the first pool's 128x10x24x24 tensor and the gradient took a fifth of a training step.
  Here the winner is one byte and the backward pass writes each input position once. The results
  are torch's, bit for bit (tests/test_pool.py).
- Serf's, TanhExp's, LiSHT's and Tanhshrink's (f, f') passes (see kernels.Slope) are long
  chains of dependent operations (exp, log1p, expm1, erf). The same math ran faster here
  than in Inductor's loops (whose clamps, for one, take three instructions each to carry NaN
  through), and native.cpp's exp_fast is cheaper than kernels.exp. These four measured
  closest to issue 17's budget as Inductor kernels; their ratios now are in
  bench/activations-table.txt (1 thread) and bench/activations-table-2threads.txt.

The library is built once per machine with the C++ compiler torch.compile uses ($CXX, g++, c++
or clang++; under a second) and kept in afbench's cache directory, under a key of the source,
the compiler and the CPU's flags: -march=native code must not run on another CPU. ctypes calls
it. With torch set to T threads, the loops split their rows into T blocks under OpenMP, linked to
libgomp.so.1, the runtime torch has already loaded: the same threads, not T more beside torch's
(a Python thread pool measured slower at 2 threads than at 1, competing with torch's spinning
OpenMP workers). When the build fails, afbench warns once and runs the eager versions.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Callable

import torch

Tensor = torch.Tensor
SOURCE = Path(__file__).with_name("native.cpp")
# log(1 + u) / u on [0, 1] as a polynomial in 2u - 1: scripts/fit_polynomials.py (relative error 3.0e-8).
# The one copy: kernels.py uses it, and the build passes it to native.cpp.
LOG1P = (0.8109302194, -0.1442633327, 0.03315227118, -0.008463930424, 0.002289615994, -0.0006321337301,
         0.0001810391381, -6.698730432e-05, 2.04399681e-05)
# e^r = 1 + r + r^2 Q(r) on |r| <= ln 2 / 2, Q's coefficients: scripts/fit_polynomials.py (1.05e-7)
EXP = (0.4999923207, 0.1666711455, 0.04189007274, 0.00831249972)
OPENMP = "-fopenmp"  # dropped when the compiler lacks it: the loops then run on one thread
FLAGS = ("-O3", "-march=native", "-ffp-contract=fast", "-fPIC", "-shared", "-std=c++17", "-Wno-unknown-pragmas",
         *(f"-DAFBENCH_{name}=" + ",".join(f"{c!r}f" for c in coefficients)  # float literals for native.cpp
           for name, coefficients in (("LOG1P", LOG1P), ("EXP", EXP))))
ELEMENTWISE = ("serf", "tanhexp", "lisht", "tanhshrink")  # (f, f') passes, run through kernels.Slope
NAMES = (*ELEMENTWISE, "acon_c", "geglu", "max_pool2x2")  # every activation (and layer) that runs here
_SIGNATURES = {  # name: (pointer arguments, int64 arguments)
    "acon_c_forward": (5, 4), "acon_c_backward": (7, 4), "geglu_forward": (2, 3), "geglu_backward": (3, 3),
    **{f"{name}_forward": (3, 2) for name in ELEMENTWISE},
    "max_pool2x2_forward": (3, 4), "max_pool2x2_backward": (3, 4)}
_state: dict = {"error": None}
_BUILDING = threading.Lock()


def compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")


def _cpu_flags() -> str:
    """The CPU's feature flags (x86 and Arm Linux), else the processor's name."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _compiler_version(cxx: str) -> str:
    try:
        return subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _library_path(cxx: str) -> Path:
    from afbench.data.cache import cache_dir

    key = hashlib.sha256(b"\0".join([SOURCE.read_bytes(), cxx.encode(), _compiler_version(cxx).encode(),
                                     " ".join(FLAGS).encode(), _cpu_flags().encode()])).hexdigest()[:20]
    return cache_dir() / "kernels" / f"native-{key}.so"


def _build(cxx: str, target: Path) -> None:
    """Compile into a temporary file and rename it into place: a crash or a second process
    building at the same time never leaves a half-written library under the final name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        for flags in ((*FLAGS, OPENMP), FLAGS):
            done = subprocess.run([cxx, *flags, str(SOURCE), "-o", tmp], capture_output=True, text=True, timeout=300)
            if done.returncode == 0:
                break
        else:
            raise RuntimeError(f"{cxx} failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
        os.chmod(tmp, 0o755)  # mkstemp makes it 0600: other users of a shared cache could not load it
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.cache
def library() -> ctypes.CDLL | None:
    """The built library, or None (no compiler, or the build failed: warned once)."""
    with _BUILDING:  # two threads' first calls: one builds, the other waits for it
        return _load()


def _load() -> ctypes.CDLL | None:
    cxx = compiler()
    if cxx is None:
        _state["error"] = "no C++ compiler"
        return None
    try:
        path = _library_path(cxx)
        if not path.exists():
            _build(cxx, path)
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:  # a damaged file in the cache (a full disk, a copy cut short): build it again
            _build(cxx, path)
            lib = ctypes.CDLL(str(path))
        for name, (pointers, sizes) in _SIGNATURES.items():
            getattr(lib, name).argtypes = [ctypes.c_void_p] * pointers + [ctypes.c_int64] * sizes
            getattr(lib, name).restype = None
        return lib
    except Exception as err:  # a compiler that fails, a cache directory we cannot write
        _state["error"] = f"{type(err).__name__}: {err}"
        warnings.warn(f"afbench's native kernels ({', '.join(NAMES)}) are off for this process ({_state['error']}); "
                      "their eager versions (torch's pooling) run instead (slower, same results to float32 rounding)",
                      RuntimeWarning, stacklevel=5)
        return None


def status() -> str:
    return "on" if _state["error"] is None else f"off ({_state['error']})"


def refuse_double_backward(name: str) -> None:
    """afbench's fast activations (kernels, fused pairs) keep no graph of f'(x): a backward
    pass that builds one (create_graph=True: a gradient penalty, double backward) would get a
    wrong second derivative, so it is refused with the fix."""
    if torch.is_grad_enabled():
        raise RuntimeError(f"afbench's fast {name} gives first derivatives only, and this backward pass asks "
                           "for a graph (a gradient penalty, double backward): compute that loss under "
                           "`with afbench.differentiable():`, where every activation runs as plain torch ops "
                           "with exact second derivatives")


# ---- rows split between threads (in native.cpp, under OpenMP) ------------------------------------------

def _blocks(rows: int) -> int:
    """How many blocks (threads) a pass splits its rows into: torch's thread count, at most one
    block per row. Computed once per pass, so a pass's blocks and its sums' blocks agree."""
    return max(1, min(torch.get_num_threads(), rows))


# ---- ACON-C ---------------------------------------------------------------------------------------------

def _per_channel(p: Tensor, channels: int) -> Tensor:
    return p.detach().to(torch.float32).expand(channels).contiguous()


class _AconC(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, p1: Tensor, p2: Tensor, beta: Tensor) -> Tensor:
        rows, channels = x.shape[0], x.shape[1]
        inner = x[0, 0].numel()
        params = [_per_channel(p, channels) for p in (p1, p2, beta)]
        y = torch.empty_like(x)
        library().acon_c_forward(x.data_ptr(), y.data_ptr(), *(p.data_ptr() for p in params), rows, channels, inner,
                                 _blocks(rows))
        ctx.save_for_backward(x, p1, p2, beta)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):
        refuse_double_backward("acon_c")
        x, *params = ctx.saved_tensors
        rows, channels = x.shape[0], x.shape[1]
        inner = x[0, 0].numel()
        grad = grad.contiguous()
        expanded = [_per_channel(p, channels) for p in params]
        gx = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        blocks = _blocks(rows)
        sums = torch.zeros(blocks, 3, channels, dtype=torch.float64)  # one set of sums per block
        library().acon_c_backward(grad.data_ptr(), x.data_ptr(), *(p.data_ptr() for p in expanded),
                                  None if gx is None else gx.data_ptr(), sums.data_ptr(), rows, channels, inner, blocks)
        total = sums.sum(0)
        # a parameter with one value for every channel gets the sum over channels
        return gx, *((total[i].sum() if p.numel() == 1 else total[i]).reshape(p.shape).to(p.dtype)
                     for i, p in enumerate(params))


def acon_c(x: Tensor, p1: Tensor, p2: Tensor, beta: Tensor) -> Tensor | None:
    """ACON-C on a contiguous float32 (N, C, ...) tensor, float32 parameters of C or 1 values;
    None for what it does not take (the caller runs the eager version, which raises any error
    and promotes dtypes as torch does)."""
    params = (p1, p2, beta)
    if (library() is None or not x.is_contiguous() or any(p.dtype != torch.float32 for p in params)
            or any(p.numel() not in (1, x.shape[1]) for p in params)):
        return None
    return _AconC.apply(x, p1, p2, beta)


# ---- GEGLU ----------------------------------------------------------------------------------------------

class _Geglu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return _geglu_value(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        refuse_double_backward("geglu")
        (x,) = ctx.saved_tensors
        rows, half = x.shape[0], x[0].numel() // 2
        grad = grad.contiguous()
        gx = torch.empty_like(x)
        library().geglu_backward(grad.data_ptr(), x.data_ptr(), gx.data_ptr(), rows, half, _blocks(rows))
        return gx


def geglu(x: Tensor) -> Tensor | None:
    """gelu(a) * b for the halves a, b of a contiguous float32 (N, 2C, ...) tensor on dim 1."""
    if library() is None or not x.is_contiguous() or x.shape[1] % 2:
        return None
    return _Geglu.apply(x) if torch.is_grad_enabled() and x.requires_grad else _geglu_value(x)


def _geglu_value(x: Tensor) -> Tensor:
    rows, half = x.shape[0], x[0].numel() // 2
    y = x.new_empty((rows, x.shape[1] // 2, *x.shape[2:]))
    library().geglu_forward(x.data_ptr(), y.data_ptr(), rows, half, _blocks(rows))
    return y


# ---- elementwise (f, f') loops --------------------------------------------------------------------------

def _elementwise(name: str, x: Tensor, with_slope: bool):
    """f(x), and f'(x) with it, for a flat contiguous float32 x; the elements split between threads."""
    y = torch.empty_like(x)
    slope = torch.empty_like(x) if with_slope else None
    getattr(library(), f"{name}_forward")(x.data_ptr(), y.data_ptr(), None if slope is None else slope.data_ptr(),
                                          x.numel(), _blocks(x.numel()))
    return (y, slope) if with_slope else y


def slope_pass(name: str) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    return functools.partial(_elementwise, name, with_slope=True)


def value_pass(name: str) -> Callable[[Tensor], Tensor]:
    return functools.partial(_elementwise, name, with_slope=False)


def available() -> bool:
    return library() is not None


# ---- 2x2 max pooling on channels-last tensors (models.pool) ----------------------------------------------

class _MaxPool2x2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        y, code = _max_pool2x2(x, keep_winners=True)
        ctx.save_for_backward(code)
        ctx.input_shape = x.shape
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):
        (code,) = ctx.saved_tensors
        if torch.is_grad_enabled():  # a graph of the gradient is asked for: differentiable torch ops
            return _max_pool2x2_gradient(grad, code, ctx.input_shape)
        n, c, h, w = ctx.input_shape
        grad = grad.contiguous(memory_format=torch.channels_last)
        gx = torch.empty(ctx.input_shape, dtype=grad.dtype, memory_format=torch.channels_last)
        rows = n * (h // 2)
        library().max_pool2x2_backward(grad.data_ptr(), code.data_ptr(), gx.data_ptr(), rows, w, c, _blocks(rows))
        return gx


def _max_pool2x2(x: Tensor, keep_winners: bool) -> tuple[Tensor, Tensor | None]:
    """The pooled tensor and, when kept, each output's winner in its window (row * 2 + column)."""
    n, c, h, w = x.shape
    y = torch.empty((n, c, h // 2, w // 2), dtype=x.dtype, memory_format=torch.channels_last)
    code = torch.empty(y.shape, dtype=torch.uint8, memory_format=torch.channels_last) if keep_winners else None
    rows = n * (h // 2)
    library().max_pool2x2_forward(x.data_ptr(), y.data_ptr(), None if code is None else code.data_ptr(), rows, w, c,
                                  _blocks(rows))
    return y, code


def _max_pool2x2_gradient(grad: Tensor, code: Tensor, input_shape) -> Tensor:
    """The backward loop's result from differentiable torch ops: each output's gradient at its
    window's winner (0 + g, as torch's scatter into zeros), zero elsewhere."""
    n, c, h, w = input_shape
    position = torch.tensor([[0, 1], [2, 3]], dtype=torch.uint8).view(1, 1, 2, 1, 2, 1)
    winners = code.permute(0, 2, 3, 1)[:, :, None, :, None, :] == position  # (n, h/2, 2, w/2, 2, c)
    spread = torch.where(winners, grad.permute(0, 2, 3, 1)[:, :, None, :, None, :] + 0.0, grad.new_zeros(()))
    return spread.reshape(n, h, w, c).permute(0, 3, 1, 2)


def max_pool2x2(x: Tensor) -> Tensor | None:
    """max_pool2d(x, 2) of a channels-last float32 (N, C, H, W) tensor with even H and W; None
    for what it does not take (the caller runs torch's)."""
    if (library() is None or x.dtype != torch.float32 or x.dim() != 4 or x.numel() == 0 or x.shape[2] % 2
            or x.shape[3] % 2 or not x.is_contiguous(memory_format=torch.channels_last)):
        return None
    if torch.is_grad_enabled() and x.requires_grad:
        return _MaxPool2x2.apply(x)
    return _max_pool2x2(x, keep_winners=False)[0]
