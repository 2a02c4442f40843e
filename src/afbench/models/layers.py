"""What every model shares: normalisation layers, weight initialisation (lecture S5),
and the naming rule that lets diagnostics find the hidden activations."""

from __future__ import annotations

from torch import nn

from afbench.errors import AfbenchError

NORMS = ("none", "batch", "layer", "group", "instance")
INITS = ("default", "xavier", "he", "normal001", "zeros")
ACT_PREFIX = "act"  # hidden activations are registered as act1, act2, ...


def norm_layer(kind: str, channels: int, conv: bool, model: str) -> nn.Module | None:
    """A normalisation layer for ``channels`` features, or None for 'none'.

    For convolutions, 'layer' is GroupNorm with one group (LayerNorm over C, H, W),
    'instance' is GroupNorm with one group per channel, 'group' uses the largest
    divisor of the channel count up to 8 groups.
    """
    if kind == "none":
        return None
    if kind == "batch":
        return nn.BatchNorm2d(channels) if conv else nn.BatchNorm1d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels) if conv else nn.LayerNorm(channels)
    if not conv:
        raise AfbenchError(f"--norm {kind} needs convolutional layers; {model} has none. "
                           "Use none, batch or layer")
    if kind == "instance":
        return nn.GroupNorm(channels, channels)
    if kind == "group":
        return nn.GroupNorm(max(g for g in range(1, 9) if channels % g == 0), channels)
    raise AfbenchError(f"unknown --norm '{kind}': choose one of {', '.join(NORMS)}")


def init_weights(model: nn.Module, scheme: str, hidden_bias: float | None = None) -> None:
    """Re-initialise conv and linear layers: 'default' keeps PyTorch's, 'xavier'
    (var 2 / (n_in + n_out)), 'he' (var 2 / n_in), 'normal001' (N(0, 0.01^2)), 'zeros'.

    ``hidden_bias`` sets the bias of every layer but the output layer, e.g. 0.01 so
    that ReLU units start active (lecture S5).
    """
    if scheme not in INITS:
        raise AfbenchError(f"unknown --init '{scheme}': choose one of {', '.join(INITS)}")
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for layer in layers:
        if scheme == "xavier":
            nn.init.xavier_normal_(layer.weight)
        elif scheme == "he":
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        elif scheme == "normal001":
            nn.init.normal_(layer.weight, 0.0, 0.01)
        elif scheme == "zeros":
            nn.init.zeros_(layer.weight)
        if scheme != "default" and layer.bias is not None:
            nn.init.zeros_(layer.bias)
    if hidden_bias is not None:
        for layer in layers[:-1]:
            if layer.bias is not None:
                nn.init.constant_(layer.bias, hidden_bias)


def hidden_activations(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every hidden activation, in forward order: the sites afbench
    recorded when it swapped activations into a model or built one with ``act_layer``
    (``_afbench_sites``), else the modules named act1, act2, ... of the built-in models."""
    recorded = getattr(model, "_afbench_sites", None)  # models.swap.SITES_ATTR
    if recorded is not None:
        return [(path, model.get_submodule(path)) for path in recorded]
    return [(name, module) for name, module in model.named_modules()
            if name.rsplit(".", 1)[-1].startswith(ACT_PREFIX)]
