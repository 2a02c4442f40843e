"""The grown zoo (issue 17) beyond the registry walk of test_activations.py: rrelu's
randomness, the gated units, the learnable activations' parameters, learned curves,
parameter matching and the init study with every kind of activation."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import erf, expit

from afbench import activations as A
from afbench import models
from afbench.cli import main

GATED = ["glu", "reglu", "geglu", "swiglu"]
LEARNABLE = ["prelu", "swish_beta", "acon_c", "star_relu", "pau"]


def test_the_zoo_has_at_least_45_hidden_activations_each_with_a_source():
    assert len(A.names()) >= 45
    for name in A.names():
        assert A.info(name).reference


def test_rrelu_draws_slopes_in_its_range_and_uses_the_mean_in_eval():
    torch.manual_seed(0)
    module = A.create("rrelu").train()
    x = torch.full((200_000,), -1.0, requires_grad=True)
    y = module(x)
    slopes = -y.detach()
    assert slopes.min() >= 1 / 8 and slopes.max() <= 1 / 3
    assert slopes.mean().item() == pytest.approx((1 / 8 + 1 / 3) / 2, abs=1e-3)  # uniform: mean 11/48
    assert slopes.std().item() == pytest.approx((1 / 3 - 1 / 8) / math.sqrt(12), rel=0.02)
    y.sum().backward()
    assert torch.allclose(x.grad, slopes)  # the gradient is each element's drawn slope
    out = module.eval()(torch.tensor([-4.8, 2.0]))
    assert out.tolist() == pytest.approx([-4.8 * 11 / 48, 2.0])


def _gated_reference(name, a, b):
    gate = {"glu": lambda t: 1 / (1 + torch.exp(-t)), "reglu": lambda t: t.clamp(min=0),
            "geglu": lambda t: 0.5 * t * (1 + torch.erf(t / math.sqrt(2))),
            "swiglu": lambda t: t / (1 + torch.exp(-t))}[name]
    return gate(a) * b


@pytest.mark.parametrize("name", GATED)
@pytest.mark.parametrize("shape", [(5, 8), (3, 6, 4, 4)])
def test_gated_units_gate_the_second_half_by_the_first(name, shape):
    x = torch.randn(*shape, dtype=torch.float64)
    c = shape[1] // 2
    a, b = x[:, :c], x[:, c:]  # a = xW (through the activation), b = xV
    got = A.create(name)(x)
    assert got.shape == (shape[0], c, *shape[2:])
    torch.testing.assert_close(got, _gated_reference(name, a, b), rtol=1e-12, atol=1e-12)
    assert A.info(name).width_multiplier == 2 and A.factory(name).width_multiplier == 2
    assert A.info(name).derivative is None


def test_glu_matches_torch_glu_with_halves_swapped():
    x = torch.randn(4, 10, dtype=torch.float64)
    a, b = x[:, :5], x[:, 5:]
    torch.testing.assert_close(A.create("glu")(x), F.glu(torch.cat([b, a], dim=1), dim=1))


def test_gated_unit_rejects_an_odd_width():
    with pytest.raises(ValueError, match="even input width"):
        A.create("swiglu")(torch.randn(2, 5))


@pytest.mark.parametrize("model,shape", [("mlp", (1, 28, 28)), ("lenet", (1, 28, 28)),
                                         pytest.param("vgg11", (3, 32, 32), marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", ["maxout"] + GATED)
def test_match_params_keeps_wide_activations_within_one_percent_of_relu(model, shape, name):
    relu = models.count_parameters(models.build(model, "relu", shape, 10))
    matched = models.build(model, name, shape, 10, match_params=True)
    assert abs(models.count_parameters(matched) - relu) / relu < 0.01
    if model != "vgg11":  # a forward pass through the halved widths (vgg11's is slow on CPU)
        assert matched.eval()(torch.randn(2, *shape)).shape == (2, 10)


def test_acon_c_formula_per_channel_against_a_hand_reference():
    module = A.create("acon_c", num_features=3).double()
    assert module.p1.shape == (3,) and A.create("acon_c", num_features=3, per_channel=False).p1.shape == (1,)
    p1, p2, beta = np.array([1.5, 0.3, -0.7]), np.array([0.2, -0.4, 0.1]), np.array([2.0, 0.5, 1.0])
    with torch.no_grad():
        module.p1.copy_(torch.tensor(p1)), module.p2.copy_(torch.tensor(p2)), module.beta.copy_(torch.tensor(beta))
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 4)) * 3
    view = (1, 3, 1, 1)
    d = (p1 - p2).reshape(view)
    expected = d * x * expit(beta.reshape(view) * d * x) + p2.reshape(view) * x
    np.testing.assert_allclose(module(torch.tensor(x)).detach().numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("name,kwargs", [("acon_c", {}), ("star_relu", {}), ("pau", {}),
                                         ("pau", {"per_channel": True})])
def test_learnable_parameters_get_correct_gradients(name, kwargs):
    module = A.create(name, num_features=3, **kwargs).double()
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.rand_like(p) * 0.2)
    x = torch.randn(4, 3, 2, 2, dtype=torch.float64) * 2
    params = tuple(module.parameters())

    def fn(*values):
        return torch.func.functional_call(module, dict(zip([n for n, _ in module.named_parameters()], values)), (x,))

    assert torch.autograd.gradcheck(fn, tuple(p.detach().requires_grad_(True) for p in params), eps=1e-6, atol=1e-6)


def test_star_relu_starts_as_the_metaformer_init():
    module = A.create("star_relu")
    assert module.scale.item() == pytest.approx(0.8944) and module.bias.item() == pytest.approx(-0.4472)
    # s relu(x)^2 + b with those values has mean ~0 and variance ~1 for x ~ N(0, 1)
    y = module(torch.randn(1_000_000, generator=torch.Generator().manual_seed(0))).detach()
    assert abs(y.mean().item()) < 0.01 and y.var().item() == pytest.approx(1.0, abs=0.02)


def test_pau_starts_close_to_leaky_relu_and_has_no_poles():
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    y = A.create("pau").double()(x).detach()
    assert (y - F.leaky_relu(x, 0.01)).abs().max() < 0.035
    module = A.create("pau").double()
    with torch.no_grad():
        module.denominator.copy_(-module.denominator)  # safe PAU: |b_k|, so the sign cannot create poles
    assert torch.equal(module(x).detach(), y)


def test_pau_per_channel_applies_each_channels_coefficients():
    module = A.create("pau", num_features=2, per_channel=True).double()
    assert module.numerator.shape == (2, 6) and A.create("pau", num_features=2).numerator.shape == (1, 6)
    with torch.no_grad():
        module.numerator[1] = torch.tensor([0.0, 2.0, 0, 0, 0, 0])  # channel 1: 2x / Q(x)
        module.denominator[1] = torch.tensor([0.0, 1.0, 0, 0])  # Q = 1 + x^2
    x = torch.randn(3, 2, 5, dtype=torch.float64)
    out = module(x)
    torch.testing.assert_close(out[:, 1], 2 * x[:, 1] / (1 + x[:, 1] ** 2))
    torch.testing.assert_close(out[:, 0], A.create("pau").double()(x[:, 0]))


def test_every_learnable_activation_is_excluded_from_weight_decay():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), *(A.create(n, num_features=4) for n in LEARNABLE))
    expected = {id(p) for layer in list(model)[1:] for p in layer.parameters()}
    assert {id(p) for p in A.no_decay_parameters(model)} == expected
    assert {id(p) for p in A.learnable_parameters(model)} == expected
    assert id(model[0].weight) not in expected and len(expected) == 1 + 1 + 3 + 2 + 2


@pytest.mark.parametrize("name", LEARNABLE)
def test_learned_curves_report_each_layer_now_and_at_init(name):
    model = models.build("mlp", name, (1, 8, 8), 10, hidden=(6, 5))
    x = torch.linspace(-3, 3, 13)
    before = A.learned_curves(model, x)
    assert [(c.layer, c.activation) for c in before] == [("act1", name), ("act2", name)]
    for c in before:
        torch.testing.assert_close(c.y, c.initial)
    reference = {"prelu": lambda t: np.where(t > 0, t, 0.25 * t), "swish_beta": lambda t: t * expit(t),
                 "acon_c": lambda t: t * expit(t), "star_relu": lambda t: 0.8944 * np.maximum(t, 0) ** 2 - 0.4472,
                 "pau": lambda t: F.leaky_relu(torch.tensor(t), 0.01).numpy()}[name]
    atol = 0.035 if name == "pau" else 1e-6
    np.testing.assert_allclose(before[0].y[0].numpy(), reference(x.numpy()), atol=atol)
    with torch.no_grad():  # "training": move every parameter of the first layer
        for p in model.act1.parameters():
            p.mul_(0.5)
    after = A.learned_curves(model, x)
    assert not torch.allclose(after[0].y, after[0].initial)
    torch.testing.assert_close(after[1].y, after[1].initial)
    per_channel = name in ("prelu", "acon_c")
    assert after[0].y.shape == ((6, 13) if per_channel else (1, 13))


def test_init_study_accepts_learnable_gated_and_random_activations(digits):
    from afbench import studies

    prepared = digits
    names = ("pau", "acon_c", "star_relu", "swiglu", "rrelu")
    result = studies.run_init_study(prepared, names, ("he",), studies.InitStudy(depth=3, width=32, batch=100,
                                                                                train_steps=3))
    assert result.layers.groupby("activation").size().to_dict() == {n: 3 for n in names}
    assert np.isfinite(result.layers[["act_std", "grad_std"]].to_numpy()).all()
    assert set(result.training["activation"]) == set(names)


@pytest.mark.slow
def test_study_init_command_with_the_new_activations(tmp_path, capsys):
    names = "pau,acon_c,star_relu,swiglu,rrelu"
    assert main(["study", "init", "--activations", names, "--inits", "he", "--depth", "3", "--width", "32",
                 "--train-steps", "5", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "init_acts_swiglu.png").stat().st_size > 0 and (tmp_path / "init_acts_pau.png").exists()


@pytest.mark.parametrize("name", ["tanhexp", "serf", "smish", "logish", "elish", "logsigmoid", "pau"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_huge_inputs_stay_finite_in_both_precisions(name, dtype):
    x = torch.tensor([-1e4, -88.0, -20.0, 20.0, 88.0, 1e4], dtype=dtype, requires_grad=True)
    y = A.create(name).to(dtype)(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    if name == "logsigmoid":  # ln sigmoid(x) -> 0 for large x, -> x for very negative x
        assert abs(y[-1].item()) < 1e-6 and y[0].item() == pytest.approx(-1e4, rel=1e-6)
    elif name != "pau":  # f(x) -> slope * x for large x (sigmoid(x) -> 1), -> 0 for very negative x
        slope = {"smish": math.tanh(math.log(2)), "logish": math.log(2)}.get(name, 1.0)
        assert y[-1].item() == pytest.approx(1e4 * slope, rel=1e-6) and abs(y[0].item()) < 1e-3


def test_serf_matches_its_definition_with_scipy():
    x = np.linspace(-5, 5, 101)
    np.testing.assert_allclose(A.create("serf").double()(torch.tensor(x)).numpy(),
                               x * erf(np.log1p(np.exp(x))), rtol=1e-12, atol=1e-15)
