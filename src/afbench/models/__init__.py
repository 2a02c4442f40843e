"""Models by name: `mlp`, `lenet`, `vgg11` (the studies'), `resnet20`, `vit`, your own
(`PATH.py:NAME`, `package.module:NAME`; see ``models.user``), and those of installed
packages: an ``afbench.models`` entry point names a builder, called as your own are.

>>> from afbench import models
>>> net = models.build("lenet", "relu", (1, 28, 28), 10)
>>> models.count_parameters(net)
21840
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from afbench import activations
from afbench.errors import AfbenchError
from afbench.models.layers import INITS, NORMS, hidden_activations, init_weights
from afbench.models.nets import lenet, mlp, vgg11
from afbench.models.resnet import resnet20
from afbench.models.swap import Leftover, Swapped, check_complete, leftover, swap
from afbench.models.user import identity, is_user_model
from afbench.models import user
from afbench.models.vit import vit
from afbench.plugins import Registry

__all__ = ["INITS", "NORMS", "Leftover", "Swapped", "build", "check_complete", "count_parameters",
           "hidden_activations", "identity", "is_user_model", "leftover", "names", "swap", "MODELS"]

MODELS: dict[str, Callable[..., nn.Module]] = {"mlp": mlp, "lenet": lenet, "vgg11": vgg11, "resnet20": resnet20,
                                               "vit": vit}


class _WithDefault(dict):
    """A table of the built-in models that answers ``default`` for the others (plugins)."""

    def __init__(self, values: dict, default: str) -> None:
        super().__init__(values)
        self.default = default

    def __missing__(self, key: str) -> str:
        return self.default


DESCRIPTIONS = _WithDefault({
    "mlp": "S2's fully connected net: flatten -> 128 -> 64 -> classes",
    "lenet": "S1's model A (pytorch/examples' MNIST net): two 5x5 convolutions, two linear layers",
    "vgg11": "S1's model B: VGG-11, a norm layer after each of its 8 convolutions",
    "resnet20": "He et al. 2016's CIFAR ResNet-20, option A shortcuts (269,722 parameters at 10 classes)",
    "vit": "a small Vision Transformer: patch 4, width 128, depth 6, 4 heads, MLP ratio 2 (GELU native)",
}, "from an installed package (entry point afbench.models)")
# As the studies built them; resnet20 as He et al. 2016, vit with LayerNorm.
DEFAULT_NORM = _WithDefault({"mlp": "none", "lenet": "none", "vgg11": "batch", "resnet20": "batch", "vit": "layer"},
                            "its own")


@dataclass(frozen=True)
class PluginModel:
    """A model an installed package registers: its builder, imported as 'package.module:NAME'."""

    target: str


def _plugin_model(name: str, obj: object) -> PluginModel:
    if not callable(obj) or inspect.isclass(obj) and not issubclass(obj, nn.Module):
        raise AfbenchError(f"{obj!r} is not a model builder (a function or nn.Module class returning a model)")
    return PluginModel(f"{obj.__module__}:{obj.__qualname__}")


REGISTRY: Registry = Registry("models", adapt=_plugin_model)
for _name, _builder in MODELS.items():
    REGISTRY.register(_name, _builder)


def names() -> list[str]:
    """Built-in models, then those of installed packages."""
    return [*MODELS, *(n for n in REGISTRY.names() if n not in MODELS)]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build(name: str, activation, input_shape, num_classes: int, *, init: str = "default",
          norm: str | None = None, hidden_bias: float | None = None, match_params: bool = False,
          width_scale: float = 1.0, hidden: tuple[int, ...] | None = None,
          allow_partial: bool = False) -> nn.Module:
    """Build model ``name`` with ``activation`` (a name, formula, import path, module
    class or ``ActivationFactory``) in every hidden place.

    ``name`` is a built-in model, or your own: 'PATH.py:NAME' or 'package.module:NAME',
    optionally with the '@HASH' that ``identity`` adds (checked against the file).
    ``norm`` defaults to the model's own choice (batch for vgg11 and resnet20, layer for
    vit, none otherwise; your models keep theirs). ``match_params`` shrinks the hidden
    widths of wider-than-usual models (maxout, gated units) until the parameter count is
    within 1% of the same model with ReLU (your model must take ``width_scale``).
    ``hidden`` sets the MLP's hidden widths (default S2's 128, 64). ``allow_partial``
    accepts your model when nonlinear calls in its forward could not be swapped
    (``leftover(model)`` lists them).
    """
    act = activations.factory(activation)
    input_shape = tuple(input_shape)
    if not is_user_model(name):
        entry = REGISTRY.get(name, hint=" Or your own: PATH.py:NAME or package.module:NAME.")
        name = entry.target if isinstance(entry, PluginModel) else name
    if is_user_model(name) and name not in MODELS:
        if norm is not None:
            raise AfbenchError(f"--norm applies to the built-in models; {name} keeps its own normalisation")
        if hidden is not None:
            raise AfbenchError(f"hidden widths apply to the mlp only, not {name}")
        make = lambda a, scale, check=True: user.build(name, a, input_shape, num_classes, width_scale=scale,
                                                       allow_partial=allow_partial, check=check)
        if match_params and (act.width_multiplier > 1 or "width_scale" in user.accepted(user.load(name)[0])):
            width_scale = _matching_width_scale(make, act)
    else:
        key = REGISTRY.canonical(name)
        norm = DEFAULT_NORM[key] if norm is None else norm
        if norm not in NORMS:
            raise AfbenchError(f"unknown --norm '{norm}': choose one of {', '.join(NORMS)}")
        extra = {}
        if hidden is not None:
            if key != "mlp":
                raise AfbenchError(f"hidden widths apply to the mlp only, not {key}")
            extra["hidden"] = tuple(hidden)
        make = lambda a, scale, check=True: MODELS[key](a, input_shape, num_classes, norm=norm, width_scale=scale,
                                                        **extra)
        if match_params:
            width_scale = _matching_width_scale(make, act, meta=True)
    model = make(act, width_scale)
    init_weights(model, init, hidden_bias)
    return model


def _matching_width_scale(make: Callable[..., nn.Module], act, meta: bool = False) -> float:
    """The width scale whose parameter count is closest to the ReLU model's. ``meta``
    builds the candidates on the meta device: shapes without memory or initialisation."""
    def params(a, scale):
        with torch.device("meta") if meta else contextlib.nullcontext():
            return count_parameters(make(a, scale, check=False))

    target = params(activations.factory("relu"), 1.0)
    low, high = 0.05, 1.5  # parameter count grows with the scale: bisect
    for _ in range(30):
        mid = (low + high) / 2
        low, high = (mid, high) if params(act, mid) < target else (low, mid)
    candidates = {s: abs(params(act, s) - target) for s in (low, high)}
    return min(candidates, key=candidates.get)
