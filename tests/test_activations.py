"""Every registered activation against an independent NumPy reference.

The tests walk the registry: a new activation fails here until it has a
reference, so it is tested the moment it is registered.
"""

import math

import numpy as np
import pytest
import torch
from scipy.special import erf, expit

from afbench import activations as A
from afbench.activations.custom import FormulaError
from afbench.errors import AfbenchError, UnknownNameError

LAMBDA, ALPHA = 1.0507009873554805, 1.6732632423543772


def _softplus(x):
    return np.logaddexp(0.0, x)


def _safe_pau(x):
    # Molina et al. 2020, eq. 3, with the coefficients afbench publishes for its leaky-ReLU fit.
    from afbench.activations.learnable import PAU_LEAKY_RELU_DENOMINATOR as B, PAU_LEAKY_RELU_NUMERATOR as A_
    return np.polyval(A_[::-1], x) / (1 + sum(abs(b) * np.abs(x) ** (k + 1) for k, b in enumerate(B)))


def _elish_like(x, gate):
    return np.where(x >= 0, x, np.expm1(np.minimum(x, 0))) * gate


REFERENCE = {
    "identity": lambda x: x,
    "binary_step": lambda x: (x > 0).astype(x.dtype),
    "sigmoid": expit,
    "hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0),
    "relu6": lambda x: np.clip(x, 0, 6),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.01 * x),
    "prelu": lambda x: np.where(x > 0, x, 0.25 * x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "selu": lambda x: LAMBDA * np.where(x > 0, x, ALPHA * np.expm1(np.minimum(x, 0))),
    "celu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "gelu": lambda x: 0.5 * x * (1 + erf(x / math.sqrt(2))),
    "gelu_tanh": lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
    "silu": lambda x: x * expit(x),
    "swish_beta": lambda x: x * expit(x),  # beta starts at 1
    "mish": lambda x: x * np.tanh(_softplus(x)),
    "softplus": _softplus,
    "softsign": lambda x: x / (1 + np.abs(x)),
    "hard_swish": lambda x: x * np.clip(x + 3, 0, 6) / 6,
    "noisy_relu": lambda x: np.maximum(x, 0),  # eval mode
    "relu_softplus": lambda x: np.where(x > 0, x, _softplus(np.minimum(x, 0)) - math.log(2)),
    "relu_softsign": lambda x: np.where(x > 0, x, x / (1 + np.abs(x))),
    # issue 17, written from the papers' formulas
    "hardtanh": lambda x: np.clip(x, -1, 1),
    "tanhshrink": lambda x: x - np.tanh(x),
    "softshrink": lambda x: np.where(x > 0.5, x - 0.5, np.where(x < -0.5, x + 0.5, 0.0)),
    "hardshrink": lambda x: np.where(np.abs(x) > 0.5, x, 0.0),
    "logsigmoid": lambda x: -np.logaddexp(0.0, -x),
    "elish": lambda x: _elish_like(x, expit(x)),
    "hard_elish": lambda x: _elish_like(x, np.clip((x + 1) / 2, 0, 1)),
    "sqnl": lambda x: np.select([x > 2, x >= 0, x >= -2], [np.ones_like(x), x - x**2 / 4, x + x**2 / 4], -1.0),
    "isru": lambda x: x / np.sqrt(1 + x**2),
    "isrlu": lambda x: np.where(x >= 0, x, x / np.sqrt(1 + np.minimum(x, 0) ** 2)),
    "bent_identity": lambda x: (np.sqrt(x**2 + 1) - 1) / 2 + x,
    "gaussian": lambda x: np.exp(-(x**2)),
    "arctan": np.arctan,
    "lisht": lambda x: x * np.tanh(x),
    "tanhexp": lambda x: x * np.tanh(np.exp(np.minimum(x, 50))),
    "smish": lambda x: x * np.tanh(np.log(1 + expit(x))),
    "serf": lambda x: x * erf(_softplus(x)),
    "logish": lambda x: x * np.log(1 + expit(x)),
    "squared_relu": lambda x: np.maximum(x, 0) ** 2,
    "shifted_softplus": lambda x: _softplus(x) - math.log(2),
    "rrelu": lambda x: np.where(x >= 0, x, 11 / 48 * x),  # eval mode: the mean slope
    "acon_c": lambda x: x * expit(x),  # p1 = 1, p2 = 0, beta = 1: Swish
    "star_relu": lambda x: 0.8944 * np.maximum(x, 0) ** 2 - 0.4472,
    "pau": _safe_pau,
}
ELEMENTWISE = [name for name in A.names() if A.info(name).elementwise]
# Points where a piecewise activation has a kink: autograd may pick either side there.
KINKS = [0.0, 3.0, -3.0, 6.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0]
GRID = np.concatenate([[0.0, 1e-30, -1e-30, 1e-8, -1e-8, 1e4, -1e4, 50.0, -50.0, 20.5, -20.5],
                       np.linspace(-8, 8, 801)])


def _module(name, **params):
    return A.create(name, **params).eval()


def _apply(name, x):
    return _module(name).to(x.dtype)(x)


def test_every_hidden_activation_has_a_reference():
    assert set(ELEMENTWISE) == set(REFERENCE), "add a NumPy reference for each new elementwise activation"
    assert set(A.names()) - set(ELEMENTWISE) == {"maxout", "glu", "reglu", "geglu", "swiglu"}
    assert len(A.names()) >= 45


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("dtype,rtol,atol", [(torch.float64, 1e-9, 1e-12), (torch.float32, 2e-6, 1e-6)])
def test_forward_matches_reference(name, dtype, rtol, atol):
    x = torch.tensor(GRID, dtype=dtype)
    expected = REFERENCE[name](x.double().numpy())
    got = _apply(name, x).detach()
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_bfloat16_close_within_its_precision(name):
    x = torch.linspace(-6, 6, 241).to(torch.bfloat16)
    expected = REFERENCE[name](x.double().numpy())
    got = _apply(name, x).detach()
    assert got.dtype == torch.bfloat16
    # bf16 keeps 8 significant bits: relative error up to 2^-8 per rounding.
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_closed_form_derivative_matches_autograd(name):
    x = torch.tensor(GRID, dtype=torch.float64)
    x = x[(x[:, None] - torch.tensor(KINKS, dtype=torch.float64)).abs().min(dim=1).values > 1e-6]
    x.requires_grad_(True)
    _apply(name, x).sum().backward()
    closed = A.info(name).derivative(x.detach())
    # rtol 5e-8: softplus returns x itself above 20 (slope 1, not sigmoid(x)), and torch's
    # Hardsigmoid backward uses a float32 1/6 even in float64.
    np.testing.assert_allclose(closed.numpy(), x.grad.numpy(), rtol=5e-8, atol=1e-12)


@pytest.mark.parametrize("name", [n for n in ELEMENTWISE if A.info(n).trainable])
def test_autograd_matches_finite_differences(name):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, dtype=torch.float64, generator=generator) * 3
    x = x[(x[:, None] - torch.tensor(KINKS, dtype=torch.float64)).abs().min(dim=1).values > 1e-2]
    module = _module(name).double()
    assert torch.autograd.gradcheck(module, (x.requires_grad_(True),), eps=1e-6, atol=1e-6)


def test_binary_step_trains_nothing_and_says_so():
    spec = A.info("binary_step")
    assert not spec.trainable and "zero" in spec.note
    x = torch.linspace(-2, 2, 11, requires_grad=True)
    _apply("binary_step", x).sum().backward()
    assert torch.count_nonzero(x.grad) == 0


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_no_nan_or_inf_for_huge_inputs(name):
    x = torch.tensor([-1e4, -1e3, -100.0, 100.0, 1e3, 1e4], requires_grad=True)
    y = _apply(name, x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_and_dtype_preserved(name, dtype):
    x = torch.randn(2, 3, 4, 5, dtype=dtype)
    y = A.create(name, num_features=3).to(dtype)(x)
    assert y.shape == x.shape and y.dtype == dtype


@pytest.mark.parametrize("name", [n for n in A.names() if A.info(n).learnable])
def test_learnable_parameters_survive_state_dict_round_trip(name):
    source = A.create(name, num_features=4)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.rand_like(p))
    target = A.create(name, num_features=4)
    target.load_state_dict(source.state_dict())
    for (n1, p1), (n2, p2) in zip(source.named_parameters(), target.named_parameters()):
        assert n1 == n2 and n1 in A.info(name).learnable
        assert torch.equal(p1, p2)


def test_prelu_per_channel_or_shared():
    assert A.create("prelu", num_features=16).weight.shape == (16,)
    assert A.create("prelu", num_features=16, per_channel=False).weight.shape == (1,)
    assert torch.allclose(A.create("prelu", num_features=3).weight, torch.full((3,), 0.25))


def test_learned_activation_parameters_are_excluded_from_weight_decay():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), A.create("prelu", 4), A.create("swish_beta"))
    skipped = {id(p) for p in A.no_decay_parameters(model)}
    assert skipped == {id(model[1].weight), id(model[2].beta)}


@pytest.mark.parametrize("name", ["relu_softplus", "relu_softsign"])
def test_combined_activations_continuous_at_zero(name):
    x = torch.tensor([-1e-7, 0.0, 1e-7], dtype=torch.float64)
    assert torch.allclose(_apply(name, x), torch.zeros(3, dtype=torch.float64), atol=1e-6)


def test_relu_softsign_slopes_at_zero_are_both_one():
    for side in (-1e-9, 1e-9, 0.0):
        x = torch.tensor([side], dtype=torch.float64, requires_grad=True)
        _apply("relu_softsign", x).backward()
        assert x.grad.item() == pytest.approx(1.0, abs=1e-8)


def test_relu_softplus_slopes_at_zero():
    x = torch.tensor([-1e-9, 1e-9], dtype=torch.float64, requires_grad=True)
    _apply("relu_softplus", x).sum().backward()
    assert x.grad.tolist() == pytest.approx([0.5, 1.0], abs=1e-8)


def test_noisy_relu_draws_the_documented_noise_in_training():
    # max(0, n) with n ~ N(0, sigmoid(0) = 0.5) has mean sigma / sqrt(2 pi).
    module = A.create("noisy_relu").train()
    torch.manual_seed(0)
    y = module(torch.zeros(1_000_000))
    assert y.mean().item() == pytest.approx(math.sqrt(0.5) / math.sqrt(2 * math.pi), rel=0.01)
    assert torch.equal(module.eval()(torch.tensor([-1.0, 2.0])), torch.tensor([0.0, 2.0]))


@pytest.mark.parametrize("k", [2, 3])
def test_maxout_matches_reference(k):
    x = torch.randn(5, 4 * k, 3, 3, dtype=torch.float64)
    expected = x.numpy().reshape(5, 4, k, 3, 3).max(axis=2)
    np.testing.assert_array_equal(A.create("maxout", k=k)(x).numpy(), expected)
    assert A.factory("maxout", k=k).width_multiplier == k


def test_maxout_rejects_a_width_it_cannot_group():
    with pytest.raises(ValueError, match="divisible by 2"):
        A.create("maxout")(torch.randn(2, 5))


def test_names_are_case_insensitive_and_aliases_resolve():
    assert isinstance(A.create("SWISH"), torch.nn.SiLU)
    assert isinstance(A.create("lrelu"), torch.nn.LeakyReLU)
    assert isinstance(A.create("Leaky-ReLU"), torch.nn.LeakyReLU)
    assert A.info("linear").name == "identity"


def test_unknown_name_lists_valid_names_and_closest_match():
    with pytest.raises(UnknownNameError) as err:
        A.create("relux")
    assert "Did you mean 'relu'" in str(err.value) and "leaky_relu" in str(err.value)


def test_softmax_is_output_only():
    assert "softmax" not in A.names() and A.output_names() == ["softmax"]
    assert A.info("softmax").kind == "output"
    with pytest.raises(AfbenchError, match="output-layer"):
        A.factory("softmax")


def test_unknown_parameter_is_a_clear_error():
    with pytest.raises(AfbenchError, match="does not take"):
        A.factory("relu", slope=3)


@pytest.mark.parametrize("name", A.names())
def test_metadata_is_complete(name):
    spec = A.info(name)
    assert spec.formula and spec.output_range and spec.reference
    assert spec.saturates in {"none", "left", "right", "both"}


def test_formula_activation_matches_its_math():
    act = A.factory("x * sigmoid(1.5 * x)")(None)
    x = torch.linspace(-4, 4, 17, dtype=torch.float64)
    np.testing.assert_allclose(act(x).numpy(), x.numpy() * expit(1.5 * x.numpy()), rtol=1e-12)
    where = A.factory("where(x > 0, x, 0.1 * x)")(None)
    assert where(torch.tensor([-1.0, 2.0])).tolist() == pytest.approx([-0.1, 2.0])


@pytest.mark.parametrize("text", ["__import__('os')", "x.__class__", "open('f')", "[x for x in x]",
                                  "lambda: 0", "y * 2", "x if x else 0"])
def test_formula_never_reaches_eval(text):
    with pytest.raises(FormulaError, match="rejected|not a valid"):
        A.factory(text)


def test_import_path_accepts_module_classes_and_functions():
    assert isinstance(A.factory("torch.nn:Tanh")(8), torch.nn.Tanh)
    act = A.factory("torch:sigmoid")(None)
    assert torch.allclose(act(torch.zeros(2)), torch.full((2,), 0.5))
    with pytest.raises(AfbenchError, match="cannot import"):
        A.factory("no_such_module_xyz:Act")


def test_noisy_relu_gradient_passes_where_the_noisy_output_is_positive():
    module = A.create("noisy_relu").train()
    x = torch.randn(10_000, requires_grad=True)
    y = module(x)
    y.sum().backward()
    assert torch.equal(x.grad, (y > 0).float())
    assert 0.3 < (y > 0).float().mean() < 0.7  # noise moved some units across 0, not all


@pytest.mark.parametrize("name", A.names() + A.output_names())
def test_the_speed_tier_in_the_table_is_what_the_built_module_runs(name):
    """The table says what runs each activation; the module built from it must agree."""
    from afbench.activations import fast, kernels

    spec = A.info(name)
    module = A.create(name, num_features=4)
    bound = getattr(module, "kernel", None)
    if spec.speed == "torch":
        assert type(module).__module__.startswith("torch.nn") and bound is None
    elif spec.speed in ("eager", "fused"):
        assert not type(module).__module__.startswith("torch.nn") and bound is None
        assert isinstance(module, fast.Fused) == (spec.speed == "fused")
    else:
        assert spec.speed in ("compiled", "native") and isinstance(bound, kernels.Kernel)
        assert (bound.name, bound.tier) == (spec.name, spec.speed)
        assert bound.minimum == (kernels.NATIVE_MIN_ELEMENTS if spec.speed == "native" else kernels.MIN_ELEMENTS)


def test_a_kernel_bound_to_a_module_survives_copies_and_pickles():
    import copy
    import pickle

    module = A.create("acon_c", num_features=8)
    assert copy.deepcopy(module).kernel is module.kernel
    assert pickle.loads(pickle.dumps(module)).kernel is module.kernel  # the process's one kernel, rebound


def test_a_row_at_a_tier_without_its_kernel_is_an_error():
    from afbench.activations import kernels

    with pytest.raises(ValueError, match="'relu' is listed at speed 'native', which has no kernel"):
        kernels.kernel("relu", "native")
    with pytest.raises(ValueError, match="unknown speed tier 'warp'"):
        kernels.kernel("relu", "warp")
