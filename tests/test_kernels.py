"""The compiled activation kernels (activations/kernels.py, native.py) against independent references.

Compiling costs seconds per Inductor kernel on 2 cores, so the default run compiles one
(RReLU's, an (f, f') pass with its random draw) and `pytest -m slow` compiles every one; the
native library (serf, tanhexp, ACON-C, GEGLU) builds in about a second and is tested in the default run.
"""

import math
import os
import shutil

import numpy as np
import pytest
import torch
from scipy import special, stats

from afbench import activations
from afbench.activations import kernels, native
from afbench.models.pool import MaxPool2x2

pytestmark = pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")),
                                reason="torch.compile on a CPU needs a C++ compiler")

ROWS, COLS = 256, 1024  # 262,144 elements: above kernels.MIN_ELEMENTS, so the kernels run
assert ROWS * COLS >= kernels.MIN_ELEMENTS

# Independent float64 references (numpy/scipy), written from the papers' formulas.
def _softplus(x):
    return np.logaddexp(0.0, x)


def _sigmoid(x):
    return special.expit(x)


REFERENCES = {
    "tanhshrink": lambda x: x - np.tanh(x),
    "logsigmoid": lambda x: -np.logaddexp(0.0, -x),
    "elish": lambda x: np.where(x >= 0, x, np.expm1(np.minimum(x, 0))) * _sigmoid(x),
    "hard_elish": lambda x: np.where(x >= 0, x, np.expm1(np.minimum(x, 0))) * np.clip((x + 1) / 2, 0, 1),
    "arctan": np.arctan,
    "lisht": lambda x: x * np.tanh(x),
    "tanhexp": lambda x: x * np.tanh(np.exp(np.minimum(x, 50))),
    "smish": lambda x: x * np.tanh(np.log1p(_sigmoid(x))),
    "serf": lambda x: x * special.erf(_softplus(x)),
    "logish": lambda x: x * np.log1p(_sigmoid(x)),
    "shifted_softplus": lambda x: _softplus(x) - math.log(2),
}


def _ran(y: torch.Tensor) -> set[str]:
    """The autograd nodes just behind y: which version of an activation produced it."""
    node = y.grad_fn
    return {type(node).__name__} | {type(n).__name__ for n, _ in node.next_functions if n is not None}


def _derivative(f, x, h=1e-6):
    return (f(x + h) - f(x - h)) / (2 * h)


def _input(dtype=torch.float64, scale=4.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(ROWS, COLS, generator=g, dtype=dtype) * scale
    x[0, :8] = torch.tensor([0.0, -0.0, 1e-6, -1e-6, 30.0, -30.0, 1e4, -1e4], dtype=dtype)
    x[1] = torch.linspace(-20, 20, COLS, dtype=dtype)  # the tails, where expm1 and cancellations bite
    x[2] = torch.linspace(-0.05, 0.05, COLS, dtype=dtype)
    return x


@pytest.mark.slow
@pytest.mark.parametrize("name", list(REFERENCES))
def test_an_elementwise_kernel_matches_the_formula_and_its_derivative(name):
    """float32, as accurate as torch's own eager functions, against float64 references."""
    x = _input(dtype=torch.float32).requires_grad_(True)
    module = activations.create(name)
    y = module(x)
    assert "_SlopeFnBackward" in _ran(y) and torch.isfinite(y).all()  # the kernel ran
    y.sum().backward()
    xd = x.detach().double().numpy()
    np.testing.assert_allclose(y.detach().double().numpy(), REFERENCES[name](xd), rtol=3e-6, atol=1e-7)
    np.testing.assert_allclose(x.grad.double().numpy(), _derivative(REFERENCES[name], xd), rtol=1e-5, atol=1e-6)
    x64 = _input().requires_grad_(True)  # float64: the eager version, to float64 precision
    y64 = module(x64)
    assert "_SlopeFnBackward" not in _ran(y64)
    np.testing.assert_allclose(y64.detach().numpy(), REFERENCES[name](x64.detach().numpy()), rtol=1e-12,
                               atol=1e-15)


def test_the_helpers_agree_with_scipy_within_float32_ulps():
    u = torch.linspace(0, 1, 100_001, dtype=torch.float64)
    np.testing.assert_allclose(kernels.log1p_unit(u).numpy(), np.log1p(u.numpy()), rtol=3e-7)
    x = torch.linspace(-50, 50, 100_001, dtype=torch.float64)
    y = torch.cat([-torch.logspace(-12, 2, 10_000, dtype=torch.float64), torch.logspace(-12, 1, 10_000,
                                                                                        dtype=torch.float64)])
    u, m = kernels.exp_expm1(y)
    np.testing.assert_allclose(m.numpy(), np.expm1(y.numpy()), rtol=3e-8)
    np.testing.assert_allclose(u.numpy(), np.exp(y.numpy()), rtol=1e-15)  # float64: torch.exp itself
    y32 = torch.linspace(-87.3, 88, 1_000_001, dtype=torch.float32)  # the kernels' own exp, float32
    np.testing.assert_allclose(kernels.exp(y32).double().numpy(), np.exp(y32.double().numpy()), rtol=2.5e-7)
    deep = torch.linspace(-88, -87.3, 1001, dtype=torch.float32)  # denormal results: 0 or within FLT_MIN
    assert np.max(np.abs(kernels.exp(deep).double().numpy() - np.exp(deep.double().numpy()))) < 1.2e-38
    tails = kernels.exp(torch.tensor([-1e4, -100.0, -88.5, float("nan")]))
    assert tails[:3].tolist() == [0.0, 0.0, 0.0] and tails[3].isnan()
    np.testing.assert_allclose(kernels.atan(x).numpy(), np.arctan(x.numpy()), rtol=2e-7)


def test_rrelu_training_draws_uniform_slopes_reproducibly_and_evaluates_at_the_mean():
    module = activations.create("rrelu").train()
    x = -torch.rand(ROWS, COLS, dtype=torch.float32) - 0.1  # all negative: every element draws a slope
    torch.manual_seed(7)
    y = module(x.requires_grad_(True))
    y.sum().backward()
    slopes = (y / x).detach().double().numpy().ravel()
    assert np.allclose(x.grad.double().numpy().ravel(), slopes, rtol=1e-6)  # the gradient is the drawn slope
    assert slopes.min() >= 1 / 8 - 1e-7 and slopes.max() <= 1 / 3 + 1e-7
    assert stats.kstest(slopes, stats.uniform(1 / 8, 1 / 3 - 1 / 8).cdf).pvalue > 1e-3
    assert abs(np.corrcoef(slopes[:-1], slopes[1:])[0, 1]) < 0.02  # neighbours independent
    torch.manual_seed(7)
    again = module(x.detach())
    assert torch.equal(again, y.detach())  # torch.manual_seed reproduces the draw
    assert not torch.equal(module(x.detach()), y.detach())  # and the next call draws anew
    module.eval()
    np.testing.assert_allclose(module(x.detach()).numpy(), (x.detach() * 11 / 48).numpy(), rtol=1e-6)


def _acon_reference(x, p1, p2, beta):  # the paper's formula, per channel on dim 1
    d = (p1 - p2)[None, :]
    return d * x * special.expit(beta[None, :] * d * x) + p2[None, :] * x


def test_acon_c_kernel_gives_the_input_and_parameter_gradients_of_the_formula():
    x = _input(dtype=torch.float32, scale=2.0)
    module = activations.create("acon_c", num_features=COLS)
    with torch.no_grad():
        module.p1.copy_(torch.linspace(0.5, 1.5, COLS))
        module.p2.copy_(torch.linspace(-0.3, 0.2, COLS))
        module.beta.copy_(torch.linspace(0.5, 2.0, COLS))
    x.requires_grad_(True)
    y = module(x)
    assert type(y.grad_fn).__name__ == "_AconCBackward"  # the native kernel ran
    weights = torch.randn(ROWS, COLS)
    (y * weights).sum().backward()
    # float64 reference: the paper's formula in plain torch ops, differentiated by autograd
    xd = x.detach().double().requires_grad_(True)
    p1, p2, beta = (p.detach().double().requires_grad_(True) for p in (module.p1, module.p2, module.beta))
    d = p1 - p2
    reference = d * xd * torch.sigmoid(beta * d * xd) + p2 * xd
    np.testing.assert_allclose(y.detach().double().numpy(), reference.detach().numpy(), rtol=1e-5, atol=1e-6)
    (reference * weights.double()).sum().backward()
    for got, want in ((x.grad, xd.grad), (module.p1.grad, p1.grad), (module.p2.grad, p2.grad),
                      (module.beta.grad, beta.grad)):
        np.testing.assert_allclose(got.double().numpy(), want.numpy(), rtol=1e-4, atol=1e-3)


def test_acon_c_kernel_with_one_shared_parameter_set_sums_its_gradients_over_every_channel():
    x = _input(dtype=torch.float32, scale=2.0).requires_grad_(True)
    module = activations.create("acon_c")  # no channel count: one p1, p2, beta for the layer
    with torch.no_grad():
        module.p1.fill_(1.2), module.p2.fill_(-0.1), module.beta.fill_(0.7)
    y = module(x)
    assert type(y.grad_fn).__name__ == "_AconCBackward"  # the native kernel ran
    y.pow(2).sum().backward()
    xd = x.detach().double().numpy()
    s = special.expit(0.7 * 1.3 * xd)
    reference = 1.3 * xd * s - 0.1 * xd
    g = s * (1 + 0.7 * 1.3 * xd * (1 - s))  # d(d x sigmoid(beta d x)) / d(d x)
    upstream = 2 * reference
    np.testing.assert_allclose(module.p1.grad.item(), np.sum(upstream * xd * g), rtol=1e-4)
    np.testing.assert_allclose(module.p2.grad.item(), np.sum(upstream * xd * (1 - g)), rtol=1e-4)
    np.testing.assert_allclose(module.beta.grad.item(), np.sum(upstream * (1.3 * xd) ** 2 * s * (1 - s)), rtol=1e-4)


def test_a_failed_compilation_falls_back_to_the_eager_version_with_one_warning(monkeypatch):
    monkeypatch.setitem(kernels._state, "broken", None)

    def no_compiler(fn, **options):  # what a machine whose compiler fails gives
        def call(*args):
            raise RuntimeError("InvalidCxxCompiler: no working C++ compiler found")
        return call

    monkeypatch.setattr(torch, "compile", no_compiler)
    doubled = kernels._Compiled(lambda x: x * 2)
    with pytest.warns(RuntimeWarning, match="kernels are off for this process"):
        assert torch.equal(doubled(torch.ones(ROWS, COLS)), torch.full((ROWS, COLS), 2.0))  # the eager result
    assert not kernels.enabled() and not kernels.usable(torch.zeros(ROWS, COLS))
    assert kernels.status().startswith("off (")
    y = activations.create("serf")(torch.zeros(ROWS, COLS, requires_grad=True))
    assert "_FusedFnBackward" in _ran(y) and "_SlopeFnBackward" not in _ran(y)


def test_small_tensors_modes_and_the_switch_run_the_eager_versions(monkeypatch):
    module = activations.create("serf")
    assert not kernels.usable(torch.zeros(4, 4))  # below MIN_ELEMENTS
    assert not kernels.usable(torch.zeros(ROWS, COLS, dtype=torch.bfloat16))
    assert not kernels.usable(torch.zeros(ROWS, COLS, dtype=torch.float64))  # float32-grade approximations
    assert kernels.usable(torch.zeros(ROWS, COLS))
    seen = []
    torch.func.grad(lambda t: (seen.append(kernels.usable(t)), t.sum())[1])(torch.zeros(ROWS, COLS))
    assert seen == [False]  # inside a torch.func transform
    from torch.overrides import TorchFunctionMode

    class Watch(TorchFunctionMode):  # what afbench's swap check does
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    big = torch.zeros(ROWS, COLS)
    with Watch():
        assert not kernels.usable(big)
    assert kernels.status() == "on"
    monkeypatch.setenv("AFBENCH_KERNELS", "off")
    assert not kernels.usable(torch.zeros(ROWS, COLS)) and kernels.status() == "off (AFBENCH_KERNELS)"
    y = module(torch.zeros(ROWS, COLS, requires_grad=True))
    assert "_FusedFnBackward" in _ran(y) and "_SlopeFnBackward" not in _ran(y)
    monkeypatch.setenv("AFBENCH_KERNELS", "maybe")  # a typo: said once, with the fix; the kernels stay on
    with pytest.warns(RuntimeWarning, match="AFBENCH_KERNELS='maybe' is not auto, on or off.*=off"):
        assert kernels.status() == "on"


def test_channels_last_and_strided_inputs_keep_their_layout_and_values():
    module = activations.create("rrelu").eval()
    trained = activations.create("rrelu").train()
    x = torch.randn(16, 32, 16, 32).to(memory_format=torch.channels_last)  # 262,144 elements
    torch.testing.assert_close(module(x), torch.where(x >= 0, x, x * 11 / 48))  # eval: torch's own
    torch.manual_seed(0)
    drawn = trained(x)
    assert drawn.is_contiguous(memory_format=torch.channels_last)
    slopes = (drawn / x)[x < 0]
    assert slopes.min() >= 1 / 8 - 1e-6 and slopes.max() <= 1 / 3 + 1e-6 and slopes.std() > 0.05
    strided = torch.randn(ROWS, 2 * COLS)[:, ::2]  # neither layout: the eager version, same formula
    assert torch.equal(trained(strided.abs()), strided.abs())


def test_rrelu_draws_the_same_slopes_with_or_without_the_kernel():
    module = activations.create("rrelu").train()
    x = torch.randn(ROWS, COLS)
    outputs, after = [], []
    for mode in ("auto", "off"):
        os.environ["AFBENCH_KERNELS"] = mode
        try:
            torch.manual_seed(3)
            outputs.append(module(x))
            after.append(torch.rand(1))  # torch's generator advanced alike
        finally:
            os.environ.pop("AFBENCH_KERNELS")
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    assert torch.equal(after[0], after[1])


def test_double_backward_through_a_kernel_is_refused_with_the_fix():
    x = torch.randn(ROWS, COLS, requires_grad=True)
    with pytest.raises(RuntimeError, match="first derivatives only.*afbench.differentiable"):
        torch.autograd.grad(activations.create("rrelu")(x).sum(), x, create_graph=True)
    (grad,) = torch.autograd.grad(activations.create("rrelu")(x[:2]).sum(), x, create_graph=True)  # eager
    assert grad.shape == x.shape


def test_a_wrong_input_raises_its_error_and_leaves_the_kernels_on():
    pau = activations.create("pau", num_features=16, per_channel=True)
    with pytest.raises(RuntimeError):
        pau(torch.randn(ROWS, 32, 32))  # 32 channels, 16 coefficient sets
    assert kernels.status() == "on"


def test_geglu_kernel_matches_the_erf_formula_and_its_gradients():
    x = _input(dtype=torch.float32, scale=3.0)
    x = torch.cat([x, torch.randn(ROWS, COLS)], dim=1).requires_grad_(True)  # gate a, value b
    y = activations.create("geglu")(x)
    assert type(y.grad_fn).__name__ == "_GegluBackward"  # the native kernel ran
    weights = torch.randn(ROWS, COLS)
    (y * weights).sum().backward()
    a, b = (h.detach().double().numpy() for h in x.chunk(2, dim=1))
    phi = special.ndtr(a)  # Phi(a), scipy's normal CDF
    # float32 gelu is 1 - erf in the negative tail (as torch's own): absolute, not relative, precision there
    np.testing.assert_allclose(y.detach().double().numpy(), a * phi * b, rtol=5e-6, atol=5e-6)
    w = weights.double().numpy()
    want = np.concatenate([w * b * (phi + a * np.exp(-a * a / 2) / math.sqrt(2 * math.pi)), w * a * phi], axis=1)
    np.testing.assert_allclose(x.grad.double().numpy(), want, rtol=1e-4, atol=1e-5)


def _acon_float64(x, p1, p2, beta, weights):
    """The paper's formula in float64 torch ops on dim 1, differentiated by autograd: output and
    the gradients of (output * weights).sum() for x, p1, p2, beta."""
    xd = x.detach().double().requires_grad_(True)
    params = [p.detach().double().requires_grad_(True) for p in (p1, p2, beta)]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    a, b, e = (p.view(shape) if p.numel() > 1 else p for p in params)
    y = (a - b) * xd * torch.sigmoid(e * (a - b) * xd) + b * xd
    (y * weights.double()).sum().backward()
    return y.detach(), [xd.grad, *(p.grad for p in params)]


@pytest.mark.parametrize("threads", [1, 2])
def test_acon_c_native_kernel_on_feature_maps_with_a_ragged_tail_and_split_rows(threads):
    """(N, C, H, W) with H W = 65 (not a multiple of the 8 lanes), rows split between threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = (torch.randn(64, 64, 5, 13, generator=torch.Generator().manual_seed(1)) * 2).requires_grad_(True)
        module = activations.create("acon_c", num_features=64)
        with torch.no_grad():
            module.p1.copy_(torch.linspace(0.5, 1.5, 64)), module.p2.copy_(torch.linspace(-0.3, 0.2, 64))
            module.beta.copy_(torch.linspace(0.5, 2.0, 64))
        y = module(x)
        assert type(y.grad_fn).__name__ == "_AconCBackward"
        weights = torch.randn(x.shape)
        (y * weights).sum().backward()
    finally:
        torch.set_num_threads(previous)
    want, grads = _acon_float64(x, module.p1, module.p2, module.beta, weights)
    np.testing.assert_allclose(y.detach().double().numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    for got, ref in zip((x.grad, module.p1.grad, module.p2.grad, module.beta.grad), grads):
        np.testing.assert_allclose(got.double().numpy(), ref.numpy(), rtol=1e-4, atol=1e-3)


def test_acon_c_native_kernel_splits_rows_between_threads_without_changing_the_output():
    x = torch.randn(ROWS + 3, COLS - 5)  # a channel count that leaves a ragged tail of lanes
    module = activations.create("acon_c", num_features=COLS - 5)
    outputs = []
    for threads in (1, 2):
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            outputs.append(module(x))
        finally:
            torch.set_num_threads(previous)
    assert torch.equal(outputs[0], outputs[1])  # elementwise: the split cannot change a value
    torch.testing.assert_close(outputs[0], x * torch.sigmoid(x))  # p1 = 1, p2 = 0, beta = 1: Swish


def test_geglu_native_kernel_on_feature_maps():
    x = torch.randn(16, 8, 45, 47, requires_grad=True)  # 270,720 elements; halves of 4 x 45 x 47 each
    y = activations.create("geglu")(x)
    assert type(y.grad_fn).__name__ == "_GegluBackward" and y.shape == (16, 4, 45, 47)
    y.pow(2).sum().backward()
    a, b = (h.detach().double().numpy() for h in x.chunk(2, dim=1))
    gelu = a * special.ndtr(a)
    np.testing.assert_allclose(y.detach().double().numpy(), gelu * b, rtol=5e-6, atol=5e-6)
    upstream = 2 * gelu * b
    slope = special.ndtr(a) + a * stats.norm.pdf(a)
    want = np.concatenate([upstream * b * slope, upstream * gelu], axis=1)
    np.testing.assert_allclose(x.grad.double().numpy(), want, rtol=1e-4, atol=1e-5)


def test_native_kernels_refuse_double_backward_and_leave_other_layouts_to_the_eager_versions():
    x = torch.randn(ROWS, COLS, requires_grad=True)
    for name in ("acon_c", "geglu"):
        with pytest.raises(RuntimeError, match="first derivatives only.*afbench.differentiable"):
            torch.autograd.grad(activations.create(name)(x).sum(), x, create_graph=True)
    strided = torch.randn(ROWS, 2 * COLS)[:, ::2]
    y = activations.create("acon_c")(strided.requires_grad_(False))
    torch.testing.assert_close(y, strided * torch.sigmoid(strided))
    assert native.acon_c(strided, *(torch.ones(1),) * 3) is None


def test_a_failed_native_build_warns_once_and_runs_the_eager_versions(monkeypatch, tmp_path):
    monkeypatch.setenv("AFBENCH_CACHE_DIR", str(tmp_path))  # nothing built there yet
    monkeypatch.setenv("CXX", "false")  # a "compiler" that always fails
    monkeypatch.setitem(native._state, "error", None)
    native.library.cache_clear()
    try:
        x = torch.randn(ROWS, COLS, requires_grad=True)
        with pytest.warns(RuntimeWarning, match=r"native kernels \(serf, .*, geglu, max_pool2x2\) are off"):
            y = activations.create("acon_c")(x)
        assert type(y.grad_fn).__name__ != "_AconCBackward"
        torch.testing.assert_close(y, x * torch.sigmoid(x))
        maps = torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_(True)
        assert "MaxPool2DWithIndices" in type(MaxPool2x2(2)(maps).grad_fn).__name__  # torch's pooling instead
        assert f"native loops ({', '.join(native.NAMES)}) off (RuntimeError: false failed" in kernels.status()
        assert not list(tmp_path.rglob("*.so"))  # no half-written library left behind
    finally:
        native.library.cache_clear()
        native._state["error"] = None
    monkeypatch.delenv("CXX")
    assert native.library() is not None and len(list(tmp_path.rglob("native-*.so"))) == 1  # built and kept
    assert kernels.status() == "on"


def test_the_kernels_polynomial_coefficients_are_what_the_fitting_script_gives():
    import runpy
    from pathlib import Path

    script = runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "fit_polynomials.py"))
    for (coefficients, error), used, bound in ((script["log1p_fit"](), native.LOG1P, 3.1e-8),
                                               (script["exp_fit"](), native.EXP, 1.06e-7)):
        np.testing.assert_allclose(used, coefficients, rtol=1e-8, atol=1e-12)
        assert error < bound
    u = np.linspace(0, 1, 10_001)  # and the polynomial itself against numpy's log1p
    np.testing.assert_allclose(kernels.log1p_unit(torch.tensor(u)).numpy(), np.log1p(u), rtol=3.1e-8)


def test_native_loops_start_at_a_smaller_size_than_inductors_kernels():
    mid = torch.randn(64, 1024, requires_grad=True)  # 65,536: native loops yes, Inductor's kernels no
    assert kernels.NATIVE_MIN_ELEMENTS <= mid.numel() < kernels.MIN_ELEMENTS
    assert "_SlopeFnBackward" in _ran(activations.create("serf")(mid))
    assert type(activations.create("acon_c", num_features=1024)(mid).grad_fn).__name__ == "_AconCBackward"
    assert "_SlopeFnBackward" not in _ran(activations.create("logish")(mid))  # an Inductor kernel: eager here
    small = torch.randn(16, 1024, requires_grad=True)  # 16,384: below both
    assert "_SlopeFnBackward" not in _ran(activations.create("serf")(small))


def test_a_damaged_native_library_in_the_cache_is_built_again(monkeypatch, tmp_path):
    monkeypatch.setenv("AFBENCH_CACHE_DIR", str(tmp_path))
    path = native._library_path(native.compiler())
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a shared library")  # what a copy cut short leaves
    native.library.cache_clear()
    try:
        assert native.library() is not None and path.read_bytes()[:4] == b"\x7fELF"
        x = torch.randn(ROWS, COLS)
        torch.testing.assert_close(activations.create("acon_c")(x), x * torch.sigmoid(x))
    finally:
        native.library.cache_clear()


def test_acon_c_native_parameter_gradients_under_a_float64_default_dtype_and_over_long_sums():
    """The per-channel sums are kept in double: a million-row sum in float32 drifts by 1e-3."""
    x = torch.rand(1 << 20, 2) + 0.5  # all-positive terms: nothing cancels, every rounding adds up
    module = activations.create("acon_c", num_features=2)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # a user's setting; the input and module stay float32
    try:
        y = module(x.requires_grad_(True))
        assert type(y.grad_fn).__name__ == "_AconCBackward"
        y.sum().backward()
    finally:
        torch.set_default_dtype(previous)
    _, grads = _acon_float64(x, module.p1, module.p2, module.beta, torch.ones(x.shape))
    for got, want in zip((module.p1.grad, module.p2.grad, module.beta.grad), grads[1:]):
        np.testing.assert_allclose(got.double().numpy(), want.numpy(), rtol=2e-6)


def test_acon_c_native_kernel_with_mixed_parameter_counts_and_float64_parameters():
    module = activations.create("acon_c", num_features=COLS)
    with torch.no_grad():
        module.p1.copy_(torch.linspace(0.5, 1.5, COLS))
    module.beta = torch.nn.Parameter(torch.full((1,), 0.8))  # one beta for every channel
    x = torch.randn(ROWS, COLS, requires_grad=True)
    y = module(x)
    assert type(y.grad_fn).__name__ == "_AconCBackward"
    weights = torch.randn(ROWS, COLS)
    (y * weights).sum().backward()
    want, grads = _acon_float64(x, module.p1, module.p2, module.beta, weights)
    np.testing.assert_allclose(y.detach().double().numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    assert module.beta.grad.shape == (1,)
    for got, ref in zip((x.grad, module.p1.grad, module.p2.grad, module.beta.grad), grads):
        np.testing.assert_allclose(got.double().numpy(), ref.numpy(), rtol=1e-4, atol=1e-3)
    double = activations.create("acon_c", num_features=COLS).double()  # float64 parameters, float32 input
    assert double(torch.randn(ROWS, COLS)).dtype == torch.float64  # promoted, as the eager version does


@pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:DeprecationWarning")  # torch's own jvp decompositions
def test_forward_mode_ad_runs_the_eager_versions_and_keeps_tangents():
    import torch.autograd.forward_ad as fw

    x, tangent = torch.randn(ROWS, COLS), torch.ones(ROWS, COLS)
    for name in ("geglu", "serf", "tanhexp"):
        with fw.dual_level():
            out = fw.unpack_dual(activations.create(name)(fw.make_dual(x, tangent)))
        assert out.tangent is not None and torch.isfinite(out.tangent).all(), name


def test_a_compiler_without_openmp_builds_the_loops_serial_with_the_same_results(monkeypatch, tmp_path):
    monkeypatch.setenv("AFBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native, "OPENMP", "-fno-such-openmp-flag")  # what a compiler without OpenMP says no to
    native.library.cache_clear()
    previous = torch.get_num_threads()
    torch.set_num_threads(2)  # two blocks, run one after the other
    try:
        x = torch.randn(ROWS, COLS, requires_grad=True)
        module = activations.create("acon_c", num_features=COLS)
        y = module(x)
        assert type(y.grad_fn).__name__ == "_AconCBackward"
        y.sum().backward()
        (built,) = tmp_path.rglob("native-*.so")
        assert b"libgomp" not in built.read_bytes()  # the serial build: no OpenMP runtime needed
    finally:
        torch.set_num_threads(previous)
        native.library.cache_clear()
    want, grads = _acon_float64(x, module.p1, module.p2, module.beta, torch.ones(x.shape))
    np.testing.assert_allclose(y.detach().double().numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(module.p1.grad.double().numpy(), grads[1].numpy(), rtol=1e-4, atol=1e-3)
