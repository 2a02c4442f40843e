"""Models by name: `mlp`, `lenet`, `vgg11`.

>>> from afbench import models
>>> net = models.build("lenet", "relu", (1, 28, 28), 10)
>>> models.count_parameters(net)
21840
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from afbench import activations
from afbench.errors import AfbenchError, lookup
from afbench.models.layers import INITS, NORMS, hidden_activations, init_weights
from afbench.models.nets import lenet, mlp, vgg11

__all__ = ["INITS", "NORMS", "build", "count_parameters", "hidden_activations", "names", "MODELS"]

MODELS: dict[str, Callable[..., nn.Sequential]] = {"mlp": mlp, "lenet": lenet, "vgg11": vgg11}
DEFAULT_NORM = {"mlp": "none", "lenet": "none", "vgg11": "batch"}  # as the studies built them


def names() -> list[str]:
    return list(MODELS)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build(name: str, activation, input_shape, num_classes: int, *, init: str = "default",
          norm: str | None = None, hidden_bias: float | None = None, match_params: bool = False,
          width_scale: float = 1.0, hidden: tuple[int, ...] | None = None) -> nn.Sequential:
    """Build model ``name`` with ``activation`` (a name, formula, import path, module
    class or ``ActivationFactory``) in every hidden place.

    ``norm`` defaults to the study's choice (batch for vgg11, none otherwise).
    ``match_params`` shrinks the hidden widths of wider-than-usual models (maxout)
    until the parameter count is within 1% of the same model with ReLU.
    ``hidden`` sets the MLP's hidden widths (default S2's 128, 64).
    """
    key = lookup("model", name, MODELS)
    act = activations.factory(activation)
    norm = DEFAULT_NORM[key] if norm is None else norm
    if norm not in NORMS:
        raise AfbenchError(f"unknown --norm '{norm}': choose one of {', '.join(NORMS)}")
    input_shape = tuple(input_shape)
    if match_params:
        width_scale = _matching_width_scale(key, act, input_shape, num_classes, norm)
    extra = {}
    if hidden is not None:
        if key != "mlp":
            raise AfbenchError(f"hidden widths apply to the mlp only, not {key}")
        extra["hidden"] = tuple(hidden)
    model = MODELS[key](act, input_shape, num_classes, norm=norm, width_scale=width_scale, **extra)
    init_weights(model, init, hidden_bias)
    return model


def _matching_width_scale(key, act, input_shape, num_classes, norm) -> float:
    """The width scale whose parameter count is closest to the ReLU model's."""
    def params(a, scale):
        return count_parameters(MODELS[key](a, input_shape, num_classes, norm=norm, width_scale=scale))

    target = params(activations.factory("relu"), 1.0)
    low, high = 0.05, 1.5  # parameter count grows with the scale: bisect
    for _ in range(30):
        mid = (low + high) / 2
        low, high = (mid, high) if params(act, mid) < target else (low, mid)
    candidates = {s: abs(params(act, s) - target) for s in (low, high)}
    return min(candidates, key=candidates.get)
