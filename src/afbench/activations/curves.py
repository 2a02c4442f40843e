"""Learnable activations in a trained model: their parameters and learned curves."""

from __future__ import annotations

from typing import Iterator, NamedTuple

import torch
from torch import nn

from afbench.activations.modules import LearnableActivation

# Activations whose parameters are learned shape parameters, not weights: weight decay
# would pull PReLU's slope towards 0 (a ReLU) and Swish's beta towards 0 (a line).
LEARNABLE_TYPES = (nn.PReLU, LearnableActivation)


class LearnedCurve(NamedTuple):
    """One learnable activation layer's curve on a grid x of P points.

    ``y`` and ``initial`` are (K, P): K = 1 for a shared activation, K = C (one row per
    channel) for a per-channel one. ``initial`` is the same activation freshly built,
    i.e. its curve at initialisation (every learnable init in afbench is deterministic).
    """

    layer: str
    activation: str
    y: torch.Tensor
    initial: torch.Tensor | None


def is_learnable(module: nn.Module) -> bool:
    return isinstance(module, LEARNABLE_TYPES)


def learnable_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(name, module) of each learnable activation in ``model``, in module order."""
    return ((name, m) for name, m in model.named_modules() if is_learnable(m))


def learnable_parameters(model: nn.Module) -> Iterator[nn.Parameter]:
    """The learned activation parameters of ``model`` (their own optimizer group: no
    weight decay, learning rate --act-lr)."""
    for _, module in learnable_modules(model):
        yield from module.parameters(recurse=False)


def _registry_name(module: nn.Module) -> str:
    return "prelu" if isinstance(module, nn.PReLU) else module.registry_name or type(module).__name__


def _channels(module: nn.Module) -> int:
    """How many channels the module's parameters cover (1 when shared)."""
    return max((p.shape[0] if p.dim() else 1 for p in module.parameters(recurse=False)), default=1)


@torch.no_grad()
def curve(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The module's curve on the 1-D grid x: (K, P), one row per channel (K = 1 if shared)."""
    k = _channels(module)
    was_training = module.training
    module.eval()
    try:
        grid = x.to(next(module.parameters()).dtype).reshape(-1, 1).expand(-1, k)  # (P, K): K on dim 1
        return module(grid.contiguous()).t().detach().cpu()
    finally:
        module.train(was_training)


def _fresh(activation: str, channels: int) -> nn.Module | None:
    """The registered activation as built at initialisation, with ``channels`` channels."""
    from afbench.activations import REGISTRY, create

    if activation not in REGISTRY:  # a user's own LearnableActivation: its initial state is unknown
        return None
    spec = REGISTRY.get(activation)
    extra = {"per_channel": channels > 1} if "per_channel" in spec.defaults else {}
    return create(activation, num_features=channels, **extra)


def learned_curves(model: nn.Module, x: torch.Tensor) -> list[LearnedCurve]:
    """For each learnable activation layer of ``model`` (1-D grid ``x`` of P points):
    its curve now and at initialisation (``initial`` is None for unregistered ones)."""
    curves = []
    for name, module in learnable_modules(model):
        activation, channels = _registry_name(module), _channels(module)
        device = next(module.parameters()).device
        fresh = _fresh(activation, channels)
        initial = None if fresh is None else curve(fresh.to(device), x.to(device))
        curves.append(LearnedCurve(name, activation, curve(module, x.to(device)), initial))
    return curves
