"""A physics-informed network: the Poisson problem -Laplace(u) = f on the unit square,
u = 0 on its boundary, with the exact solution u*(x, y) = sin(pi x) sin(pi y)
(f = 2 pi^2 u*). The network u(x, y) is trained on the residual of the equation at
fixed interior points plus the boundary condition, never on u* itself.

The loss holds second derivatives of the network, so training differentiates
through the activation twice (double backward). A piecewise-linear activation
(ReLU) has a zero second derivative almost everywhere: its network's Laplacian is 0,
it cannot satisfy the equation, and its error stays near 1; smooth activations
(tanh, sine, SiLU) solve it.

afbench's fast activation kernels give first derivatives only: the loss runs them on
their eager, twice-differentiable path (under ``differentiable()``). An activation
whose second derivative cannot be taken at all is refused before training, with the
reason (``check_activation``).

Data: ``poisson2d``: 2000 interior points and 400 boundary points (fixed by seed 0);
the test split is a 50 x 50 grid with u* there. Each batch mixes both kinds; y holds
(f, is_boundary). Metric: relative L2 error ||u - u*|| / ||u*|| on the grid (lower is better).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from afbench.data import Prepared, Split
from afbench.errors import AfbenchError
from afbench.workloads.base import Metric, Workload, act_name
from afbench.workloads.inr import coordinate_mlp

INTERIOR, BOUNDARY, GRID = 2000, 400, 50
BOUNDARY_WEIGHT = 10.0


class differentiable(TorchFunctionMode):
    """Every torch call inside runs its eager version: afbench's kernels step aside
    under a torch function mode, and the eager versions have second derivatives."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


def exact(points: torch.Tensor) -> torch.Tensor:
    return (torch.sin(math.pi * points[:, :1]) * torch.sin(math.pi * points[:, 1:]))


def laplacian(u: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """(N, 1) Laplacian of u(points) by autograd, keeping the graph for training."""
    (grad,) = torch.autograd.grad(u.sum(), points, create_graph=True)
    total = torch.zeros_like(u)
    for i in range(points.shape[1]):
        if not grad.requires_grad:  # piecewise linear: the second derivative is 0 wherever it exists
            break
        (second,) = torch.autograd.grad(grad[:, i].sum(), points, create_graph=True, allow_unused=True)
        if second is not None:
            total = total + second[:, i:i + 1]
    return total


def second_derivative_problem(act_layer) -> str | None:
    """Why the loss cannot differentiate ``act_layer`` twice, or None."""
    x = torch.linspace(-3, 3, 64).reshape(8, 8).requires_grad_(True)
    try:
        with differentiable(), torch.enable_grad():
            module = act_layer(8)
            (grad,) = torch.autograd.grad(module(x).sum(), x, create_graph=True)
            if grad.requires_grad:
                torch.autograd.grad(grad.sum(), x, allow_unused=True)
    except Exception as error:  # any failure is the reason to refuse, said before training
        return f"{type(error).__name__}: {str(error).split('. Hint')[0]}"
    return None


class Poisson(Workload):
    def __init__(self, name: str, size: str, width: int, depth: int, defaults: dict, target: float) -> None:
        super().__init__(name, "pinn", f"physics-informed MLP {depth}x{width}: -Laplace(u) = f on the unit "
                                       "square, u = 0 on the boundary, exact u = sin(pi x) sin(pi y)",
                         data="poisson2d", model="mlp", primary=Metric("rel_l2_error", False), size=size,
                         target=target, defaults=defaults, double_backward=True)
        self.width, self.depth = width, depth
        self.autocast = False  # second derivatives in bfloat16 are noise

    def load_data(self, name: str) -> Prepared:
        if name != "poisson2d":
            raise AfbenchError(f"unknown PDE data '{name}': use poisson2d")
        generator = torch.Generator().manual_seed(0)
        interior = torch.rand(INTERIOR, 2, generator=generator)
        t = torch.rand(BOUNDARY, generator=generator)
        side = torch.randint(0, 4, (BOUNDARY,), generator=generator)
        edge = torch.stack([torch.where(side < 2, t, (side == 3).float()),
                            torch.where(side < 2, (side == 1).float(), t)], dim=1)
        points = torch.cat([interior, edge])
        source = 2 * math.pi ** 2 * exact(points)
        flag = torch.cat([torch.zeros(INTERIOR, 1), torch.ones(BOUNDARY, 1)])
        axis = torch.linspace(0, 1, GRID)
        grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).reshape(-1, 2)
        test = Split(grid, exact(grid))
        return Prepared(name, (), Split(points, torch.cat([source, flag], dim=1)), test, None, (0.0,), (1.0,))

    def check_activation(self, act_layer) -> str | None:
        problem = second_derivative_problem(act_layer)
        if problem:
            return (f"the PDE loss needs second derivatives of '{act_name(act_layer)}', and its implementation "
                    f"has none ({problem}): choose another activation for this workload")
        return None

    def build(self, config, data: Prepared, act_layer) -> nn.Module:
        if config.model != self.model:
            raise AfbenchError(f"the pinn workload builds '{self.model}', not '{config.model}'")
        return coordinate_mlp(act_layer, 2, self.width, self.depth, siren=False)  # a smooth solution: no w0

    def loss(self, forward, model, x, y):
        with differentiable():
            points = x.detach().requires_grad_(True)
            u = forward(model, points)
            residual = laplacian(u, points) + y[:, :1]
            boundary = y[:, 1:]
            interior = 1 - boundary
            pde = (interior * residual ** 2).sum() / interior.sum().clamp(min=1)
            edge = (boundary * u ** 2).sum() / boundary.sum().clamp(min=1)
            return pde + BOUNDARY_WEIGHT * edge, u

    @torch.inference_mode()
    def evaluate(self, model, split: Split) -> dict[str, float]:
        model.eval()
        u = model(split.x).float()
        error = float((u - split.y).norm() / split.y.norm())
        return {"loss": float((u - split.y).pow(2).mean()), "rel_l2_error": error}


def small() -> Poisson:
    return Poisson("pinn", "small", 64, 3, {"epochs": 150, "batch_size": 240, "lr": 2e-3}, target=0.05)


def large() -> Poisson:
    return Poisson("pinn-large", "large", 128, 4, {"epochs": 300, "batch_size": 2400, "lr": 1e-3}, target=0.01)
