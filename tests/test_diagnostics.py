"""Diagnostics against hand-built layers whose dead and saturated units are known."""

import pytest
import torch
from torch import nn

from afbench import activations
from afbench.engine.diagnostics import layer_diagnostics


def one_layer(weight, bias, activation):
    linear = nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        linear.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    model = nn.Sequential()
    model.add_module("fc1", linear)
    model.add_module("act1", activations.create(activation, num_features=len(weight)))
    model.add_module("fc2", nn.Linear(len(weight), 3))
    return model


# Inputs in [0, 1]: unit 0 is always negative, units 1-3 always positive.
WEIGHT = [[-1.0, -1, -1], [1, 1, 1], [1, 0, 0], [0, 1, 0]]
BIAS = [-0.1, 0.1, 0.1, 0.1]
PROBE = torch.rand(64, 3, generator=torch.Generator().manual_seed(0))
LABELS = torch.randint(0, 3, (64,), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("activation,dead_out,dead_grad", [
    ("relu", 0.25, 0.25),            # unit 0 outputs 0 and has slope 0
    ("leaky_relu", 0.0, 0.0),        # negative outputs, slope 0.01: never dead
    ("relu_softsign", 0.0, 0.0),     # S4's point: the negative side keeps a gradient
    ("binary_step", 0.25, 1.0),      # every slope is zero
    ("elu", 0.0, 0.0),
])
def test_dead_by_output_and_by_derivative_differ(activation, dead_out, dead_grad):
    out = layer_diagnostics(one_layer(WEIGHT, BIAS, activation), PROBE, LABELS)
    assert out["dead_output"] == [pytest.approx(dead_out)]
    assert out["dead_gradient"] == [pytest.approx(dead_grad)]


def test_saturation_counts_values_with_a_flat_slope():
    # Unit 0: pre-activation in [10, 40], sigmoid' < 5e-5 (saturated); unit 1: exactly 0, slope 0.25.
    model = one_layer([[10.0, 10, 10], [0, 0, 0]], [10.0, 0.0], "sigmoid")
    out = layer_diagnostics(model, PROBE, LABELS)
    assert out["saturation"] == [pytest.approx(0.5)]
    tanh = layer_diagnostics(one_layer([[10.0, 10, 10], [0, 0, 0]], [10.0, 0.0], "tanh"), PROBE, LABELS)
    assert tanh["saturation"] == [pytest.approx(0.5)]
    relu = layer_diagnostics(one_layer([[10.0, 10, 10], [0, 0, 0]], [10.0, 0.0], "relu"), PROBE, LABELS)
    assert relu["saturation"] == [pytest.approx(0.5)]  # unit 1 sits at 0 where ReLU's slope is 0


def test_activation_mean_and_spread():
    out = layer_diagnostics(one_layer([[0.0, 0, 0], [0, 0, 0]], [1.0, 3.0], "identity"), PROBE, LABELS)
    values = torch.tensor([1.0] * 64 + [3.0] * 64)
    assert out["act_mean"] == [pytest.approx(2.0)] and out["act_std"] == [pytest.approx(values.std().item())]


def test_gradient_norm_and_the_model_is_left_as_it_was():
    model = one_layer(WEIGHT, BIAS, "tanh")
    reference = one_layer(WEIGHT, BIAS, "tanh")
    reference.load_state_dict(model.state_dict())
    nn.functional.cross_entropy(reference(PROBE), LABELS).backward()
    expected = reference.fc1.weight.grad.norm().item()
    model.train()
    marker = torch.full_like(model.fc1.weight, 7.0)
    model.fc1.weight.grad = marker.clone()
    out = layer_diagnostics(model, PROBE, LABELS)
    assert out["grad_norm"] == [pytest.approx(expected, rel=1e-5)]
    assert torch.equal(model.fc1.weight.grad, marker) and model.training


def test_every_diagnostic_is_recorded_per_epoch_and_is_cheap():
    from afbench import data
    from afbench.config import RunConfig
    from afbench.engine.train import train

    result = train(RunConfig(model="mlp", activation="relu", epochs=2, batch_size=32), data.prepare(data.load("digits")))
    for record in result.epochs:
        assert set(record.layers) == {"dead_output", "dead_gradient", "saturation", "act_mean", "act_std",
                                         "grad_norm"}
        assert all(len(v) == 2 for v in record.layers.values())
        assert record.diagnostics_s < record.epoch_train_s
