"""k copies of one architecture trained as one program: the seeds of a run.

Small models leave the hardware idle: per step, the time goes to launching
kernels and to Python, not to arithmetic. Stacking k models of the same shape
turns k small matrix products into one batched product (``bmm``) and k small
convolutions into one grouped convolution, so the fixed costs are paid once.

Only the seeds of one configuration are stacked: the members share their
activation, so the amortised time of each member stays comparable with the other
activations' times (mixing activations in one stack would give them all the same
time and erase what a speed benchmark is for).

Layouts inside the stack, with B the batch and k the members:
- ``flat`` (k, B, F): linear layers, as ``baddbmm`` over stacked weights (k, F_in, F_out);
- ``conv`` (B, k*C, H, W): convolutions with k times the groups; member i owns
  channels [i*C, (i+1)*C), so per-channel layers (BatchNorm, pooling, Dropout2d)
  and GroupNorm (with k times the groups) act on each member alone.

Every member keeps its own ``nn.Sequential``: the stack copies its weights in at
the start and ``write_back()`` copies them out, so evaluation, diagnostics and
latency use the same code and model as an unstacked run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from afbench.errors import AfbenchError
from afbench.models.layers import ACT_PREFIX

_SHAPE_ONLY = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Dropout, nn.Dropout2d, nn.Identity)


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


class _Conv(nn.Module):
    def __init__(self, layers: list[nn.Conv2d]) -> None:
        super().__init__()
        self.members, first = layers, layers[0]
        self.weight = nn.Parameter(torch.cat([m.weight.detach() for m in layers]))  # (k*out, in/groups, kh, kw)
        self.bias = nn.Parameter(torch.cat([m.bias.detach() for m in layers])) if first.bias is not None else None
        self.options = dict(stride=first.stride, padding=first.padding, dilation=first.dilation,
                            groups=first.groups * len(layers))
        if first.padding_mode != "zeros":
            raise AfbenchError(f"stacking supports zero-padded convolutions, not padding_mode={first.padding_mode}")

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.conv2d(h, self.weight, self.bias, **self.options)

    def write_back(self) -> None:
        k = len(self.members)
        for i, m in enumerate(self.members):
            m.weight.data.copy_(self.weight.chunk(k)[i])
            if self.bias is not None:
                m.bias.data.copy_(self.bias.chunk(k)[i])


class _ChannelAffine(nn.Module):
    """Per-member affine weights and buffers, concatenated along the channel axis."""

    def __init__(self, layers: list[nn.Module], buffers: tuple[str, ...]) -> None:
        super().__init__()
        self.members, first = layers, layers[0]
        for name in ("weight", "bias"):
            value = getattr(first, name, None)
            setattr(self, name, nn.Parameter(torch.cat([getattr(m, name).detach() for m in layers]))
                    if value is not None else None)
        self.buffer_names = tuple(b for b in buffers if getattr(first, b, None) is not None)
        for name in self.buffer_names:
            self.register_buffer(name, torch.cat([getattr(m, name).detach().reshape(-1) for m in layers]))

    def write_back(self) -> None:
        k = len(self.members)
        for name in ("weight", "bias", *self.buffer_names):
            stacked = getattr(self, name)
            if stacked is not None:
                for m, part in zip(self.members, stacked.chunk(k)):
                    getattr(m, name).data.copy_(part.view_as(getattr(m, name)))


class _BatchNorm(_ChannelAffine):
    def __init__(self, layers: list[nn.modules.batchnorm._BatchNorm]) -> None:
        super().__init__(layers, ("running_mean", "running_var"))
        first = layers[0]
        self.momentum, self.eps, self.track = first.momentum, first.eps, first.track_running_stats

    def forward(self, h: torch.Tensor, layout: str) -> torch.Tensor:
        flat = layout == "flat"
        x = h.transpose(0, 1).reshape(h.shape[1], -1) if flat else h  # (B, k*F) or (B, k*C, H, W)
        if self.training and self.track:
            for member in self.members:  # PyTorch counts batches per module; keep every member's count
                member.num_batches_tracked.add_(1)
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.members[0].num_batches_tracked)
        out = F.batch_norm(x, getattr(self, "running_mean", None), getattr(self, "running_var", None),
                           self.weight, self.bias, self.training or not self.track, momentum, self.eps)
        return out.reshape(h.shape[1], len(self.members), -1).transpose(0, 1) if flat else out


class _LayerNorm(nn.Module):
    """nn.LayerNorm over the last dimension of the flat layout, per-member affine."""

    def __init__(self, layers: list[nn.LayerNorm]) -> None:
        super().__init__()
        self.members, first = layers, layers[0]
        if len(first.normalized_shape) != 1:
            raise AfbenchError("stacking supports LayerNorm over the last dimension only")
        self.shape, self.eps = first.normalized_shape, first.eps
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in layers]).unsqueeze(1)) \
            if first.weight is not None else None
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in layers]).unsqueeze(1)) \
            if first.bias is not None else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = F.layer_norm(h, self.shape, eps=self.eps)
        if self.weight is not None:
            out = out * self.weight
        return out + self.bias if self.bias is not None else out

    def write_back(self) -> None:
        for i, m in enumerate(self.members):
            if self.weight is not None:
                m.weight.data.copy_(self.weight[i, 0])
            if self.bias is not None:
                m.bias.data.copy_(self.bias[i, 0])


class _GroupNorm(_ChannelAffine):
    def __init__(self, layers: list[nn.GroupNorm]) -> None:
        super().__init__(layers, ())
        self.groups, self.eps = layers[0].num_groups * len(layers), layers[0].eps

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.group_norm(h, self.groups, self.weight, self.bias, self.eps)


class _Activation(nn.Module):
    """The members' activation. Without parameters one module serves all, on a view
    in which every member-sample has its unstacked shape (so channel-grouping
    activations such as maxout see what they would alone); with parameters (PReLU,
    learned Swish beta) each member applies its own module, trained in place."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.k, self.shared = len(layers), not any(True for _ in layers[0].parameters())
        self.members = nn.ModuleList(layers[:1] if self.shared else layers)

    def forward(self, h: torch.Tensor, layout: str) -> torch.Tensor:
        if layout == "flat":
            if self.shared:
                return self.members[0](h.reshape(-1, h.shape[-1])).view(h.shape[0], h.shape[1], -1)
            return torch.stack([act(h[i]) for i, act in enumerate(self.members)])
        batch = h.shape[0]
        if self.shared:
            return self.members[0](h.reshape(batch * self.k, -1, *h.shape[2:])).reshape(batch, -1, *h.shape[2:])
        parts = h.reshape(batch, self.k, -1, *h.shape[2:]).unbind(1)
        return torch.cat([act(p) for act, p in zip(self.members, parts)], dim=1)

    def write_back(self) -> None:
        """Nothing to copy: parametrised activations are the members' own modules."""


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
        self.layers = nn.ModuleList(_stack_layer(name, [getattr(m, name) for m in members]) for name in names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, layout = x, "input"  # input: (k, B, *shape)
        for layer in self.layers:
            if isinstance(layer, nn.Flatten):
                h = (h.flatten(2) if layout == "input" else
                     h.reshape(h.shape[0], self.k, -1).transpose(0, 1))  # conv (B, k*C, H, W) -> (k, B, CHW)
                layout = "flat"
                continue
            if layout == "input":  # the first convolution: members' channels side by side
                h = h.transpose(0, 1).reshape(h.shape[1], -1, *h.shape[3:])
                layout = "conv"
            if isinstance(layer, (_BatchNorm, _Activation)):
                h = layer(h, layout)
            else:
                h = layer(h)
        return h

    @torch.no_grad()
    def write_back(self) -> list[nn.Sequential]:
        """Copy the trained weights and statistics into the member models; returns them."""
        for layer in self.layers:
            if hasattr(layer, "write_back"):
                layer.write_back()
        return self.members


def _stack_layer(name: str, layers: list[nn.Module]) -> nn.Module:
    first = layers[0]
    if name.startswith(ACT_PREFIX):  # afbench's models name every hidden activation act1, act2, ...
        return _Activation(layers)
    if isinstance(first, nn.Linear):
        return _Linear(layers)
    if isinstance(first, nn.Conv2d):
        return _Conv(layers)
    if isinstance(first, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return _BatchNorm(layers)
    if isinstance(first, nn.LayerNorm):
        return _LayerNorm(layers)
    if isinstance(first, nn.GroupNorm):
        return _GroupNorm(layers)
    if isinstance(first, nn.Flatten):
        if (first.start_dim, first.end_dim) != (1, -1):
            raise AfbenchError("stacking supports nn.Flatten() over all but the batch dimension only")
        return first
    if isinstance(first, _SHAPE_ONLY):
        return first  # acts on each sample (or channel) alone: one module serves every member
    raise AfbenchError(f"cannot stack layer '{name}' ({type(first).__name__})")


def stackable(model: nn.Module) -> bool:
    """Whether ``model`` can join a stack (every afbench model can; custom ones may not)."""
    if not isinstance(model, nn.Sequential):
        return False
    try:
        StackedSequential([model])
    except AfbenchError:
        return False
    return True
