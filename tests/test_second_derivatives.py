"""Second derivatives through afbench's activations (PDE losses, gradient penalties).

The fast paths (fused pairs, custom autograd Functions, kernels) keep no graph of f'(x):
under ``afbench.differentiable()`` every activation must run as plain torch ops whose
second derivative autograd takes exactly, and outside it a backward pass that asks for a
graph through one must be refused, never answered with a wrong (often zero) f''.

Reference: a central difference of the registry's closed-form f' (derivatives.py, written
from the formulas), in float64, at points away from the zoo's kinks.
"""

from __future__ import annotations

import pytest
import torch

import afbench
from afbench import activations
from afbench.activations import registry
from afbench.workloads.pinn import second_derivative_problem

PROBES = torch.linspace(-2.9, 2.9, 64, dtype=torch.float64) + 0.0123  # >= 0.005 from every kink
STEP = 1e-5
ELEMENTWISE = sorted({spec.name for spec in registry._HIDDEN + registry.ZOO if spec.elementwise})
NO_DOUBLE_BACKWARD_IN_TORCH = {"hard_sigmoid"}  # torch's hardsigmoid_backward has no derivative


def _reference_second_derivative(name: str, x: torch.Tensor) -> torch.Tensor:
    slope = activations.info(name).derivative
    return (slope(x + STEP) - slope(x - STEP)) / (2 * STEP)


def _autograd_second_derivative(module, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (first,) = torch.autograd.grad(module(x).sum(), x, create_graph=True)
    if not first.requires_grad:  # piecewise linear: no graph, f'' = 0 wherever it exists
        return torch.zeros_like(x)
    (second,) = torch.autograd.grad(first.sum(), x, allow_unused=True)
    return torch.zeros_like(x) if second is None else second


@pytest.mark.parametrize("name", [n for n in ELEMENTWISE if n not in NO_DOUBLE_BACKWARD_IN_TORCH])
def test_under_differentiable_every_second_derivative_matches_the_closed_form_slope(name):
    module = activations.create(name).double().eval()
    x = PROBES.reshape(8, 8)
    with afbench.differentiable():
        second = _autograd_second_derivative(module, x)
    torch.testing.assert_close(second, _reference_second_derivative(name, x), rtol=1e-4, atol=1e-6)


def test_the_fused_activations_were_the_ones_with_a_wrong_second_derivative():
    """Regression: before, isru's fused pair gave f'' = 0, so a PINN's Laplacian was 0."""
    x = PROBES.reshape(8, 8)
    with afbench.differentiable():
        second = _autograd_second_derivative(activations.create("isru").double(), x)
    exact = -3 * x * (1 + x * x) ** -2.5  # d2/dx2 of x / sqrt(1 + x^2)
    torch.testing.assert_close(second, exact, rtol=1e-6, atol=1e-9)
    assert second.abs().max() > 0.5


@pytest.mark.parametrize("name", ["isru", "serf", "lisht", "elish", "squared_relu", "relu_softsign",
                                  "relu_softplus", "star_relu", "acon_c", "pau", "noisy_relu", "binary_step"])
def test_a_graph_through_a_fast_path_is_refused_or_exact_never_wrong(name):
    """A gradient penalty outside differentiable(): refused with the fix, or, where the
    backward does keep the graph (relu_softplus saves x; binary_step's and noisy_relu's f''
    is 0), the exact f''."""
    module = activations.create(name).double().eval()
    x = PROBES.reshape(8, 8)
    try:
        second = _autograd_second_derivative(module, x)
    except RuntimeError as error:
        assert "first derivatives only" in str(error) and "afbench.differentiable()" in str(error)
        return
    torch.testing.assert_close(second, _reference_second_derivative(name, x), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["isru", "serf", "lisht", "elish", "squared_relu", "tanhexp",
                                  "relu_softsign", "relu_softplus", "star_relu", "pau", "binary_step"])
def test_torch_func_grad_and_vmap_run_every_activation(name):
    module = activations.create(name).eval()
    x = PROBES.float()
    slope = torch.vmap(torch.func.grad(lambda v: module(v.reshape(1, 1)).sum()))(x)
    torch.testing.assert_close(slope, activations.info(name).derivative(x), rtol=1e-4, atol=1e-5)


class _GraphlessSquare(torch.autograd.Function):
    """x^2 whose backward uses a saved copy of 2x: f' is right, f'' comes out 0 (wrong: 2)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(2 * x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (twice,) = ctx.saved_tensors
        return grad * twice


class GraphlessSquare(torch.nn.Module):
    def forward(self, x):
        return _GraphlessSquare.apply(x)


def test_the_pinn_check_refuses_a_wrong_second_derivative_and_passes_a_right_one():
    why = second_derivative_problem(lambda n=None: GraphlessSquare())
    assert why is not None and "second derivative is wrong" in why and "2" in why
    assert second_derivative_problem(lambda n=None: activations.create("isru")) is None
    assert second_derivative_problem(lambda n=None: torch.nn.Tanh()) is None
    assert "hardsigmoid" in second_derivative_problem(lambda n=None: activations.create("hard_sigmoid"))


def test_a_float32_only_user_activation_is_checked_in_float32():
    class Float32Only(torch.nn.Module):
        def forward(self, x):
            if x.dtype != torch.float32:
                raise TypeError("float32 only")
            return torch.tanh(x)

    assert second_derivative_problem(lambda n=None: Float32Only()) is None
