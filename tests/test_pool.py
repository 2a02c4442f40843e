"""2x2 max pooling through the native channels-last loop (models/pool.py, native.py) against
torch's own kernel, run on a contiguous (NCHW) copy: values and gradients bit for bit, ties,
NaN and -0 included, and a LeNet's training steps unchanged."""

import shutil

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from afbench.activations import native
from afbench.config import RunConfig
from afbench.data.prep import Prepared, Split
from afbench.engine.step import Step, model_for
from afbench.engine.train import make_optimizer
from afbench.models.pool import MaxPool2x2, use_native_pools

pytestmark = pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")),
                                reason="the native loop needs a C++ compiler")


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32)  # equal bits: -0 differs from +0, NaN equals itself


def _hostile(shape, seed=0) -> torch.Tensor:
    """Values with many exact ties (rounded, a constant band like an image's background),
    -inf windows, NaN and -0."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g) * 2).round()
    x[:, :, : shape[2] // 3] = 0.25  # constant band: every window a four-way tie
    x[0, 0, 0:2, 0:2] = -torch.inf
    x[0, -1, -1, -1] = torch.nan
    x[-1, 0, -2:, -2:] = torch.tensor([[-0.0, 0.0], [0.0, -0.0]])
    return x


def _pools(x: torch.Tensor, upstream: torch.Tensor):
    """(value, input gradient) by the native loop on channels-last x and by torch on an NCHW copy."""
    results = []
    for layout, pool in ((torch.channels_last, MaxPool2x2(2)), (torch.contiguous_format, nn.MaxPool2d(2))):
        xi = x.clone().contiguous(memory_format=layout).requires_grad_(True)
        y = pool(xi)
        (y * upstream).sum().backward()
        results.append((y.detach(), xi.grad))
    return results


@pytest.mark.parametrize("shape", [(3, 1, 6, 8), (4, 10, 24, 24), (2, 17, 4, 6), (5, 8, 2, 2)])
@pytest.mark.parametrize("threads", [1, 2])
def test_values_and_gradients_equal_torchs_bit_for_bit(shape, threads):
    x = _hostile(shape)
    upstream = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2)
    upstream[0, 0, 0, 0] = -0.0  # torch adds into zeros: the input's gradient is +0 there
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        (y, gx), (want_y, want_gx) = _pools(x, upstream)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(_bits(y), _bits(want_y))
    assert torch.equal(_bits(gx), _bits(want_gx))
    assert y.is_contiguous(memory_format=torch.channels_last) and gx.is_contiguous(memory_format=torch.channels_last)


def test_the_native_loop_runs_on_channels_last_float32_and_torchs_elsewhere():
    pool = MaxPool2x2(2)
    fast = torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    assert type(pool(fast).grad_fn).__name__ == "_MaxPool2x2Backward"
    others = [torch.randn(2, 3, 8, 8, requires_grad=True),  # NCHW
              torch.randn(2, 3, 7, 8).contiguous(memory_format=torch.channels_last).requires_grad_(True),  # odd H
              torch.randn(2, 3, 8, 8, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
              .requires_grad_(True)]
    for x in others:
        y = pool(x)
        assert "MaxPool2DWithIndices" in type(y.grad_fn).__name__
        assert torch.equal(y, F.max_pool2d(x, 2))
    with torch.no_grad():
        assert torch.equal(pool(fast), F.max_pool2d(fast, 2))


def test_kernels_off_runs_torchs_pool(monkeypatch):
    monkeypatch.setenv("AFBENCH_KERNELS", "off")
    x = torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    assert "MaxPool2DWithIndices" in type(MaxPool2x2(2)(x).grad_fn).__name__


def test_a_gradient_penalty_through_the_pool_equals_torchs():
    """create_graph=True: the backward pass runs as differentiable torch ops."""
    x = _hostile((2, 4, 6, 6), seed=3)
    x = torch.nan_to_num(x, nan=1.0, neginf=-5.0)
    grads = []
    for layout, pool in ((torch.channels_last, MaxPool2x2(2)), (torch.contiguous_format, nn.MaxPool2d(2))):
        scale = torch.linspace(0.5, 1.5, 4).view(1, 4, 1, 1).requires_grad_(True)
        xi = x.clone().contiguous(memory_format=layout).requires_grad_(True)
        y = pool(xi * scale)
        (gx,) = torch.autograd.grad((y ** 2).sum(), xi, create_graph=True)
        (gx ** 2).sum().backward()
        grads.append((gx.detach(), scale.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=0, atol=0)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-6, atol=0)


def test_only_plain_two_by_two_pools_are_swapped_and_the_state_is_kept():
    shared = nn.MaxPool2d(2)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), shared, nn.MaxPool2d(3), nn.MaxPool2d(2, ceil_mode=True),
                          nn.MaxPool2d(2, return_indices=True), nn.MaxPool2d((2, 2), stride=(2, 2)), shared)
    keys = list(model.state_dict())
    use_native_pools(model)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Conv2d", "MaxPool2x2", "MaxPool2d", "MaxPool2d", "MaxPool2d", "MaxPool2x2", "MaxPool2x2"]
    assert list(model.state_dict()) == keys and isinstance(model[1], nn.MaxPool2d)


def _digits_like(n=96) -> Prepared:
    """MNIST-shaped data with a constant background (ties in every pool window there)."""
    g = torch.Generator().manual_seed(0)
    x = torch.full((n, 1, 28, 28), -0.42)
    x[:, :, 6:22, 6:22] = torch.randn(n, 1, 16, 16, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return Prepared("synthetic", tuple("0123456789"), Split(x, y), Split(x[:32], y[:32]), None, (0.5,), (0.3,))


def test_a_lenet_trains_bit_for_bit_as_with_torchs_pools():
    data = _digits_like()
    config = RunConfig(model="lenet", dataset="synthetic", activation="tanh", batch_size=32, seed=4)
    weights = []
    for native_pools in (True, False):
        model = model_for(config, data)
        assert any(isinstance(m, MaxPool2x2) for m in model.modules())
        if not native_pools:
            for m in model.modules():
                if isinstance(m, MaxPool2x2):
                    m.__class__ = nn.MaxPool2d
        optimizer, step = make_optimizer(config, model), Step(config, torch.device("cpu"))
        torch.manual_seed(config.seed)  # dropout draws
        for i in range(3):
            step(model, optimizer, data.train.x[32 * i:32 * (i + 1)], data.train.y[32 * i:32 * (i + 1)])
        weights.append([p.detach().clone() for p in model.parameters()])
    for fast, plain in zip(*weights):
        assert torch.equal(fast, plain)
    assert native.library() is not None
