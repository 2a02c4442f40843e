"""The compiled activation kernels (activations/kernels.py) against independent references.

Compiling costs seconds per kernel on 2 cores, so the default run compiles one (RReLU's,
an (f, f') pass with its random draw) and `pytest -m slow` compiles every one.
"""

import math
import shutil

import numpy as np
import pytest
import torch
from scipy import special, stats

from afbench import activations
from afbench.activations import kernels

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
    x = _input().requires_grad_(True)
    module = activations.create(name)
    y = module(x)
    assert "_SlopeFnBackward" in _ran(y)  # the kernel ran, not the eager version
    y.sum().backward()
    xn = x.detach().numpy()
    ref, slope = REFERENCES[name](xn), _derivative(REFERENCES[name], xn)
    np.testing.assert_allclose(y.detach().numpy(), ref, rtol=2e-6, atol=1e-9)
    np.testing.assert_allclose(x.grad.numpy(), slope, rtol=1e-5, atol=1e-5)
    x32 = x.detach().float().requires_grad_(True)  # float32: as accurate as torch's own functions
    y32 = module(x32)
    assert "_SlopeFnBackward" in _ran(y32) and torch.isfinite(y32).all()
    y32.sum().backward()
    ref32, slope32 = REFERENCES[name](x32.detach().double().numpy()), _derivative(REFERENCES[name],
                                                                                   x32.detach().double().numpy())
    np.testing.assert_allclose(y32.detach().double().numpy(), ref32, rtol=3e-6, atol=1e-7)
    np.testing.assert_allclose(x32.grad.double().numpy(), slope32, rtol=1e-5, atol=1e-6)


def test_the_helpers_agree_with_scipy_within_float32_ulps():
    u = torch.linspace(0, 1, 100_001, dtype=torch.float64)
    np.testing.assert_allclose(kernels.log1p_unit(u).numpy(), np.log1p(u.numpy()), rtol=3e-7)
    z = torch.linspace(0, 6, 100_001, dtype=torch.float64)
    erf = kernels.erf_with(z, torch.exp(-z * z)).numpy()
    assert np.max(np.abs(erf - special.erf(z.numpy()))) < 1.5e-7
    small = z.numpy() < 0.5
    np.testing.assert_allclose(erf[small], special.erf(z.numpy()[small]), rtol=3e-8)
    x = torch.linspace(-50, 50, 100_001, dtype=torch.float64)
    np.testing.assert_allclose(kernels.tanh(x).numpy(), np.tanh(x.numpy()), rtol=3e-7, atol=1e-300)
    y = torch.cat([-torch.logspace(-12, 2, 10_000, dtype=torch.float64), torch.logspace(-12, 1, 10_000,
                                                                                        dtype=torch.float64)])
    u, m = kernels.exp_expm1(y)
    np.testing.assert_allclose(m.numpy(), np.expm1(y.numpy()), rtol=3e-8)
    np.testing.assert_allclose(u.numpy(), np.exp(y.numpy()), rtol=1e-15)
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


@pytest.mark.slow
def test_acon_c_kernel_gives_the_eager_gradients_for_input_and_parameters():
    x = _input(scale=2.0)
    compiled = activations.create("acon_c", num_features=COLS).double()
    eager = activations.create("acon_c", num_features=COLS).double()
    with torch.no_grad():
        for m in (compiled, eager):
            m.p1.copy_(torch.linspace(0.5, 1.5, COLS, dtype=torch.float64))
            m.p2.copy_(torch.linspace(-0.3, 0.2, COLS, dtype=torch.float64))
            m.beta.copy_(torch.linspace(0.5, 2.0, COLS, dtype=torch.float64))
    xs = [x.clone().requires_grad_(True) for _ in range(2)]
    y = compiled(xs[0])
    assert type(y.grad_fn).__name__ == "_AconCFnBackward"
    weights = torch.randn(ROWS, COLS, dtype=torch.float64)
    (y * weights).sum().backward()
    small = eager(xs[1][:2])  # 2 rows: below the kernel threshold, the eager version
    assert type(small.grad_fn).__name__ != "_AconCFnBackward"
    ref = _acon_reference(x.numpy(), *(p.detach().numpy() for p in (eager.p1, eager.p2, eager.beta)))
    np.testing.assert_allclose(y.detach().numpy(), ref, rtol=1e-10, atol=1e-15)
    reference = torch.autograd.grad((kernels.acon_c_value(xs[1].view(ROWS, COLS, 1),
                                                          *(p.view(1, -1, 1) for p in (eager.p1, eager.p2,
                                                                                        eager.beta)))
                                     .view(ROWS, COLS) * weights).sum(), [xs[1], eager.p1, eager.p2, eager.beta])
    for got, want in zip([xs[0].grad, compiled.p1.grad, compiled.p2.grad, compiled.beta.grad], reference):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-9, atol=1e-9)


def test_a_failed_compilation_falls_back_to_the_eager_version_with_one_warning(monkeypatch):
    monkeypatch.setitem(kernels._state, "broken", None)
    broken = kernels._Compiled(lambda x: x.no_such_method())
    with pytest.warns(RuntimeWarning, match="kernels are off for this process"):
        assert broken(torch.zeros(ROWS, COLS)) is None
    assert not kernels.enabled() and not kernels.usable(torch.zeros(ROWS, COLS))
    assert kernels.status().startswith("off (")
    y = activations.create("serf")(torch.zeros(ROWS, COLS, requires_grad=True))
    assert "_FusedFnBackward" in _ran(y) and "_SlopeFnBackward" not in _ran(y)


def test_small_tensors_modes_and_the_switch_run_the_eager_versions(monkeypatch):
    module = activations.create("serf")
    assert not kernels.usable(torch.zeros(4, 4))  # below MIN_ELEMENTS
    assert not kernels.usable(torch.zeros(ROWS, COLS, dtype=torch.bfloat16))
    assert kernels.usable(torch.zeros(ROWS, COLS))
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
