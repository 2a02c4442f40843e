"""The activation zoo: one table (registry.py), read through ``create``, ``info`` and
``factory``; installed packages add rows through the ``afbench.activations`` entry points.

>>> from afbench import activations
>>> activations.create("swish")          # aliases and any case work
SiLU()
>>> act_layer = activations.factory("prelu")
>>> act_layer(16).weight.shape           # one slope per channel
torch.Size([16])
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterator

from torch import nn

from afbench.activations import kernels
from afbench.activations.custom import compile_formula, import_activation, looks_like_formula
from afbench.activations.curves import LearnedCurve, learnable_parameters, learned_curves, is_learnable
from afbench.activations.modules import Lambda, LearnableActivation
from afbench.activations.registry import REGISTRY, ActivationSpec, canonical
from afbench.errors import AfbenchError

__all__ = ["ActivationFactory", "ActivationSpec", "create", "factory", "info", "names", "output_names",
           "no_decay_parameters", "learnable_parameters", "learned_curves", "LearnedCurve", "LearnableActivation",
           "is_learnable"]


def names() -> list[str]:
    """All registered hidden-layer activations, in registry order."""
    return [spec.name for spec in REGISTRY.values() if spec.kind == "hidden"]


def output_names() -> list[str]:
    """Activations that belong to the output layer only (softmax)."""
    return [spec.name for spec in REGISTRY.values() if spec.kind == "output"]


def info(name: str) -> ActivationSpec:
    """Metadata of a registered activation, with its closed-form derivative."""
    return REGISTRY.get(canonical(name))


def create(name: str, num_features: int | None = None, **params) -> nn.Module:
    """Build the activation ``name`` (case-insensitive; aliases accepted).

    ``num_features`` is the channel count of the layer it follows; only per-channel
    learnable activations (PReLU) use it.
    """
    spec = info(name)
    try:
        module = spec.factory(num_features, **params)
    except TypeError as err:
        raise AfbenchError(f"activation '{spec.name}' does not take {sorted(params)}: {err}. "
                           f"Its parameters: {spec.defaults or 'none'}") from None
    kernel = kernels.kernel(spec.name, spec.speed)  # the table's speed tier, bound once
    if kernel is not None:
        module.kernel = kernel
    return module


@dataclass(frozen=True)
class ActivationFactory:
    """What models receive: builds one activation layer for a given width.

    ``width_multiplier`` tells the model how much wider the layer before it must be
    (k for maxout, else 1).
    """

    name: str
    build: Callable[[int | None], nn.Module]
    width_multiplier: int = 1

    def __call__(self, num_features: int | None = None) -> nn.Module:
        return self.build(num_features)


def factory(activation: "str | ActivationFactory | Callable", **params) -> ActivationFactory:
    """Resolve what a user gave, once, at the edge, into an ``ActivationFactory``.

    Accepts a registered name, 'package.module:Name', a formula in x such as
    'x * sigmoid(1.5 * x)', an nn.Module class or a function of a tensor.
    """
    if isinstance(activation, ActivationFactory):
        return activation
    if isinstance(activation, type) and issubclass(activation, nn.Module):
        return ActivationFactory(activation.__name__, lambda n=None: activation(**params))
    if callable(activation):
        label = getattr(activation, "__name__", "custom")
        return ActivationFactory(label, lambda n=None: Lambda(activation, label))
    text = str(activation).strip()
    if re.fullmatch(r"[\w.]+:\w+", text):
        return ActivationFactory(text, import_activation(text))
    if looks_like_formula(text):
        expr = compile_formula(text)
        return ActivationFactory(text, lambda n=None: Lambda(expr, text))
    spec = info(text)
    if spec.kind != "hidden":
        raise AfbenchError(f"'{spec.name}' is an output-layer activation and cannot go in hidden layers; "
                           f"choose one of: {', '.join(names())}")
    # maxout's k is a parameter; the gated units always take twice the width.
    k = int(params.get("k", spec.defaults.get("k", spec.width_multiplier))) if spec.width_multiplier > 1 else 1
    create(spec.name, None, **params)  # validate the parameters now, not at model build time
    return ActivationFactory(spec.name, lambda n=None: create(spec.name, n, **params), width_multiplier=k)


def no_decay_parameters(model: nn.Module) -> Iterator[nn.Parameter]:
    """The learned activation parameters of ``model`` that weight decay must skip
    (nn.PReLU and every ``LearnableActivation``: swish_beta, acon_c, star_relu, pau)."""
    yield from learnable_parameters(model)

