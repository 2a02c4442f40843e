"""A physics-informed network: the Poisson problem -Laplace(u) = f on the unit square,
u = 0 on its boundary, with the exact solution u*(x, y) = sin(pi x) sin(pi y)
(f = 2 pi^2 u*). The network u(x, y) is trained on the residual of the equation at
fixed interior points plus the boundary condition, never on u* itself.

The loss holds second derivatives of the network, so training differentiates
through the activation twice (double backward). A piecewise-linear activation
(ReLU) has a zero second derivative almost everywhere: its network's Laplacian is 0,
it cannot satisfy the equation, and its error stays near 1; smooth activations
(tanh, sine, SiLU) solve it.

afbench's fast activations (kernels, fused pairs) give first derivatives only: the loss
runs under ``differentiable()``, where every activation is plain torch ops. An activation
whose second derivative cannot be taken, or comes out wrong (checked against a finite
difference of its slope), is refused before training, with the reason (``check_activation``).

Data: ``poisson2d``: 2000 interior points and 400 boundary points (fixed by seed 0);
the test split is a 50 x 50 grid with u* there. Each batch mixes both kinds; y holds
(f, is_boundary). Metric: relative L2 error ||u - u*|| / ||u*|| on the grid (lower is better).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from afbench.activations.kernels import differentiable
from afbench.data import Prepared, Split
from afbench.errors import AfbenchError
from afbench.workloads.base import Metric, Workload, act_name
from afbench.workloads.inr import coordinate_mlp

INTERIOR, BOUNDARY, GRID = 2000, 400, 50
BOUNDARY_WEIGHT = 10.0


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
    """Why the loss cannot differentiate ``act_layer`` twice, or None. Autograd's f'' must
    also match a central difference of its own f' (float64, at points away from the kinks
    of the zoo's piecewise functions): a custom autograd Function whose backward keeps no
    graph would otherwise pass with a wrong, often zero, Laplacian."""
    for dtype, step, tolerance in ((torch.float64, 1e-5, 1e-4), (torch.float32, 1e-2, 1e-2)):
        probes = _PROBES.to(dtype)
        try:
            with differentiable():
                module = act_layer(8).to(dtype).eval()  # eval: a random activation's mean function
                first, second = _derivatives(module, probes)
                ahead, _ = _derivatives(module, probes + step)
                behind, _ = _derivatives(module, probes - step)
            break
        except Exception as error:  # any failure is the reason to refuse, said before training
            problem = f"{type(error).__name__}: {str(error).split('. Hint')[0]}"
    else:  # float32 failed too (a user's activation may hold float32 constants: float64 may fail alone)
        return problem
    if not torch.isfinite(first).all():
        return None  # a non-finite slope is the run's to meet (it diverges), not a broken derivative
    expected = (ahead - behind) / (2 * step)
    wrong = (second - expected).abs() > tolerance * (1 + expected.abs())
    if wrong.any():
        at = probes[wrong][0].item()
        return (f"its second derivative is wrong: autograd gives {second[wrong][0].item():.4g} at x = {at:.3f}, "
                f"the slope's change there {expected[wrong][0].item():.4g} (a custom autograd Function whose "
                "backward keeps no graph of f')")
    return None


# 64 probes in (-3, 3), none within 0.005 of an integer or a half-integer: the zoo's kinks lie there
_PROBES = (torch.linspace(-2.9, 2.9, 64, dtype=torch.float64) + 0.0123).reshape(8, 8)


def _derivatives(module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """f'(x) and f''(x) elementwise by autograd (f'' = 0 where f' carries no graph)."""
    x = x.clone().requires_grad_(True)
    with torch.enable_grad():
        (first,) = torch.autograd.grad(module(x).sum(), x, create_graph=True)
        second = None
        if first.requires_grad:
            (second,) = torch.autograd.grad(first.sum(), x, allow_unused=True)
    return first.detach(), (torch.zeros_like(x) if second is None else second).detach()


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
