"""What happens inside: per hidden layer, on a fixed probe batch (S4, lecture S5).

- dead_output: units whose activation output is zero for every probe sample
  (S4's "necrosis"; a unit is a feature, or a channel of a convolution);
- dead_gradient: units whose activation derivative f'(x) is zero for every probe
  sample. Not the same as dead_output: leaky variants and relu_softsign never
  reach a zero derivative, and binary_step has one everywhere;
- saturation: fraction of pre-activation values where |f'(x)| < 0.01 (sigmoid,
  tanh and softsign tails);
- act_mean, act_std: of the outputs (is the layer zero-centred?);
- grad_norm: L2 norm of the loss gradient w.r.t. the weights of the layer that
  feeds the activation (vanishing or exploding gradients).

Everything runs in eval mode and leaves the model, its gradients and the RNG
as they were.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from afbench.models import hidden_activations

SATURATION_SLOPE = 0.01
METRICS = ("dead_output", "dead_gradient", "saturation", "act_mean", "act_std", "grad_norm")


def _per_unit_all(mask: torch.Tensor) -> torch.Tensor:
    """(N, C, ...) bool -> (C,) True where the mask holds for every sample and position."""
    return mask.transpose(0, 1).reshape(mask.shape[1], -1).all(dim=1)


def _derivative(module: nn.Module, pre: torch.Tensor) -> torch.Tensor:
    """f'(pre) elementwise by autograd, so it also covers learned and custom activations.
    For maxout this is each piece's share of the gradient (1 for the max, 0 else)."""
    x = pre.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(module(x).sum(), x)
    return grad


def _feeding_layers(model: nn.Module) -> dict[int, nn.Module]:
    """id(activation) -> the last conv/linear layer before it in forward order."""
    feeding, last = {}, None
    acts = {id(m) for _, m in hidden_activations(model)}
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            last = module
        elif id(module) in acts:
            feeding[id(module)] = last
    return feeding


def layer_diagnostics(model: nn.Module, probe_x: torch.Tensor, probe_y: torch.Tensor) -> dict[str, list[float]]:
    """Every metric of METRICS, one value per hidden activation, in forward order."""
    acts = [m for _, m in hidden_activations(model)]
    captured: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # a module called twice counts its first call

    def capture(module: nn.Module, inputs, out) -> None:  # returns None: a hook's return would replace the output
        captured.setdefault(id(module), (inputs[0].detach(), out.detach()))

    hooks = [m.register_forward_hook(capture)
             for m in acts]
    was_training = model.training
    saved_grads = {p: p.grad for p in model.parameters()}
    rng = torch.random.get_rng_state()
    try:
        model.eval()
        for p in model.parameters():
            p.grad = None
        with torch.enable_grad():
            F.cross_entropy(model(probe_x).float(), probe_y).backward()
        feeding = _feeding_layers(model)
        out: dict[str, list[float]] = {name: [] for name in METRICS}
        for module, (pre, post) in ((m, captured[id(m)]) for m in acts if id(m) in captured):
            slope = _derivative(module, pre).abs()
            out["dead_output"].append(float(_per_unit_all(post == 0).float().mean()))
            out["dead_gradient"].append(float(_per_unit_all(slope == 0).float().mean()))
            out["saturation"].append(float((slope < SATURATION_SLOPE).float().mean()))
            out["act_mean"].append(float(post.float().mean()))
            out["act_std"].append(float(post.float().std()))
            weight = getattr(feeding.get(id(module)), "weight", None)
            out["grad_norm"].append(float(weight.grad.norm()) if weight is not None and weight.grad is not None
                                    else float("nan"))
        return out
    finally:
        for hook in hooks:
            hook.remove()
        for p, grad in saved_grads.items():
            p.grad = grad
        torch.random.set_rng_state(rng)
        model.train(was_training)
