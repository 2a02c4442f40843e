"""k copies of one architecture trained as one program: the seeds of a run.

Small models leave the hardware idle: per step, the time goes to launching
kernels, to Python and to the optimizer's loop over tensors, not to arithmetic.
A stack of k models of the same shape pays those costs once in its fully connected
part: linear layers become one batched product (``baddbmm``) over stacked weights,
element-wise layers run once over all members, and the optimizer sees fewer,
larger tensors.

Only the seeds of one configuration are stacked: the members share their
activation, so the amortised time of each member stays comparable with the other
activations' times (mixing activations in one stack would give them all the same
time and erase what a speed benchmark is for).

Inside the stack, with B the batch and k the members:
- the layers before the model's ``nn.Flatten`` (the convolutional part) run as
  each member's own modules on its own batch: one grouped convolution for all
  members is slower on a 2-core CPU (oneDNN) than k small ones
  (``python bench/stacking.py --cases conv-layout`` measures both);
- after it, activations are (k, B, F): linear layers run as one ``baddbmm`` over
  stacked weights (k, F_in, F_out), layers without weights that act per sample
  (activations, dropout) run once over all k*B samples, and layers with weights or
  batch statistics (normalisation, PReLU) run as each member's own module.

Every member keeps its own ``nn.Sequential``: ``write_back()`` copies the stacked
linear weights into it, so evaluation, diagnostics and latency use the same code
and model as an unstacked run.
"""

from __future__ import annotations

import torch
from torch import nn

from afbench.errors import AfbenchError
from afbench.models.layers import ACT_PREFIX

_PER_SAMPLE = (nn.Dropout, nn.Identity)  # after the flatten: (k, B, F) viewed as k*B samples
_PER_MEMBER = (nn.BatchNorm1d, nn.LayerNorm)


class _Linear(nn.Module):
    def __init__(self, layers: list[nn.Linear]) -> None:
        super().__init__()
        self.members = layers
        self.weight = nn.Parameter(torch.stack([m.weight.detach().t() for m in layers]))  # (k, in, out)
        self.bias = (nn.Parameter(torch.stack([m.bias.detach() for m in layers]).unsqueeze(1))
                     if layers[0].bias is not None else None)  # (k, 1, out)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.bmm(h, self.weight) if self.bias is None else torch.baddbmm(self.bias, h, self.weight)

    def write_back(self) -> None:
        for i, m in enumerate(self.members):
            m.weight.data.copy_(self.weight[i].t())
            if self.bias is not None:
                m.bias.data.copy_(self.bias[i, 0])


class _PerSample(nn.Module):
    """A layer without weights that treats each sample alone: one module serves all
    members, on a view in which every member-sample has its unstacked shape (so
    channel-grouping activations such as maxout see what they would alone)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.layer(h.reshape(-1, h.shape[-1])).reshape(h.shape[0], h.shape[1], -1)


class _PerMember(nn.Module):
    """Each member's own module on its own (B, F) slice: normalisation (batch
    statistics stay per member) and activations with parameters, trained in place."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(part) for m, part in zip(self.members, h.unbind(0))])


class StackedSequential(nn.Module):
    """k ``nn.Sequential`` models of the same architecture as one module.

    ``forward`` takes (k, B, *input_shape) and returns (k, B, classes); member i
    sees only x[i] and its own weights, exactly as if it ran alone (up to the
    order of floating-point sums)."""

    def __init__(self, members: list[nn.Sequential]) -> None:
        super().__init__()
        if len(members) < 1:
            raise AfbenchError("a stack needs at least one model")
        shapes = {tuple((name, type(m).__name__) for name, m in member.named_children()) for member in members}
        if len(shapes) != 1:
            raise AfbenchError("stacked models must have the same layers; got different architectures")
        self.k, self.members = len(members), members
        names = [name for name, _ in members[0].named_children()]
        flatten = next((i for i, name in enumerate(names) if isinstance(getattr(members[0], name), nn.Flatten)), None)
        if flatten is None or members[0][flatten].start_dim != 1 or members[0][flatten].end_dim != -1:
            raise AfbenchError("stacking needs a model with one nn.Flatten() over all but the batch dimension")
        self.heads = nn.ModuleList(member[:flatten + 1] for member in members)  # the members' own modules
        self.layers = nn.ModuleList(_stack_layer(name, [getattr(m, name) for m in members])
                                    for name in names[flatten + 1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.stack([head(part) for head, part in zip(self.heads, x.unbind(0))])  # (k, B, F)
        for layer in self.layers:
            h = layer(h)
        return h

    @torch.no_grad()
    def write_back(self) -> list[nn.Sequential]:
        """Copy the trained stacked weights into the member models; returns them."""
        for layer in self.layers:
            if isinstance(layer, _Linear):
                layer.write_back()
        return self.members


def _stack_layer(name: str, layers: list[nn.Module]) -> nn.Module:
    first = layers[0]
    if isinstance(first, nn.Linear):
        return _Linear(layers)
    has_weights = any(True for _ in first.parameters())
    # afbench's models name every hidden activation act1, act2, ...: each acts per sample
    if isinstance(first, _PER_SAMPLE) or (name.startswith(ACT_PREFIX) and not has_weights):
        return _PerSample(first)
    if isinstance(first, _PER_MEMBER) or name.startswith(ACT_PREFIX):
        return _PerMember(layers)
    raise AfbenchError(f"cannot stack layer '{name}' ({type(first).__name__})")
