"""k copies of one architecture trained as one program: the seeds of a run.

Small models leave the hardware idle: per step, the time goes to launching
kernels, to Python and to the optimizer's loop over tensors, not to arithmetic.
A stack of k models of the same shape pays those costs once in its fully connected
part: linear layers become one batched product (``baddbmm``) over stacked weights,
element-wise layers run once over all members, and the optimizer sees fewer,
larger tensors.

Members may differ in their seed and in their activation (each member's layers
apply its own activation to its own slice), never in anything else. A stack's clock
is shared, so it says nothing about one activation's speed: the report's times come
from the cost profile, measured apart from training (``report.timing``).

Every member keeps the random draws it would have had alone: it carries its own
random-number state, seeded as a lone run seeds the global one, and each of its
random layers (dropout) runs under that state, on its own slice.

Inside the stack, with B the batch and k the members:
- the layers before the model's ``nn.Flatten`` (the convolutional part) run as
  each member's own modules on its own batch: one grouped convolution for all
  members is slower on a 2-core CPU (oneDNN) than k small ones
  (``python bench/stacking.py --cases conv-layout`` measures both);
- after it, activations are (k, B, F): linear layers run as one ``baddbmm`` over
  stacked weights (k, F_in, F_out), a weightless activation shared by every member
  runs once over all k*B samples, and layers with weights or batch statistics
  (normalisation, PReLU), differing activations and dropout run as each member's own
  module on its (B, F) slice.

Every member keeps its own ``nn.Sequential``: ``write_back()`` copies the stacked
linear weights into it, so evaluation, diagnostics and latency use the same code
and model as an unstacked run.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Iterator

import torch
from torch import nn

from afbench.errors import AfbenchError
from afbench.models.layers import ACT_PREFIX

_PER_SAMPLE = (nn.Identity,)  # after the flatten: (k, B, F) viewed as k*B samples
_PER_MEMBER = (nn.BatchNorm1d, nn.LayerNorm)
_RANDOM = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout, nn.RReLU)


class MemberRandomness:
    """One random-number state per member, on the stack's device: a member's random
    layers draw from it exactly what they would draw alone, after ``torch.manual_seed``
    of its seed (``seed``). Until seeded, members share the global stream."""

    def __init__(self) -> None:
        self.states: list[torch.Tensor] | None = None
        self.device = torch.device("cpu")

    def seed(self, seeds: list[int], device: torch.device) -> None:
        self.device = device
        saved, saved_cpu = self._get(), torch.random.get_rng_state()  # manual_seed seeds every device
        self.states = []
        for seed in seeds:
            torch.manual_seed(seed)
            self.states.append(self._get())
        self._set(saved)
        torch.random.set_rng_state(saved_cpu)

    @contextlib.contextmanager
    def of(self, member: int) -> Iterator[None]:
        """Member ``member``'s random state in place of the global one, inside the block."""
        if self.states is None:
            yield
            return
        saved = self._get()
        self._set(self.states[member])
        try:
            yield
        finally:
            self.states[member] = self._get()
            self._set(saved)

    def _get(self) -> torch.Tensor:
        return torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else torch.random.get_rng_state()

    def _set(self, state: torch.Tensor) -> None:
        if self.device.type == "cuda":
            torch.cuda.set_rng_state(state, self.device)
        else:
            torch.random.set_rng_state(state)


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
    statistics stay per member), activations with parameters (trained in place) or
    that differ between members, and random layers, under the member's own random
    state."""

    def __init__(self, layers: list[nn.Module], randomness: MemberRandomness) -> None:
        super().__init__()
        self.members = nn.ModuleList(layers)
        self.randomness = randomness

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.stack([_member_call(m, part, self.randomness, i)
                            for i, (m, part) in enumerate(zip(self.members, h.unbind(0)))])


def _member_call(module: nn.Module, x: torch.Tensor, randomness: MemberRandomness, member: int) -> torch.Tensor:
    with randomness.of(member) if module.training else contextlib.nullcontext():
        return module(x)


class StackedSequential(nn.Module):
    """k ``nn.Sequential`` models of the same architecture as one module; their
    activations may differ (``mixed_activations``).

    ``forward`` takes (k, B, *input_shape) and returns (k, B, classes); member i
    sees only x[i] and its own weights, exactly as if it ran alone (up to the
    order of floating-point sums), and once ``seed_members`` ran, its own random
    draws."""

    def __init__(self, members: list[nn.Sequential], mixed_activations: bool = False) -> None:
        super().__init__()
        if len(members) < 1:
            raise AfbenchError("a stack needs at least one model")
        _check_same_structure(members, mixed_activations)
        self.k, self.members = len(members), members
        self.randomness = MemberRandomness()
        names = [name for name, _ in members[0].named_children()]
        flatten = next((i for i, name in enumerate(names) if isinstance(getattr(members[0], name), nn.Flatten)), None)
        if flatten is None or members[0][flatten].start_dim != 1 or members[0][flatten].end_dim != -1:
            raise AfbenchError("stacking needs a model with one nn.Flatten() over all but the batch dimension")
        self.heads = nn.ModuleList(member[:flatten + 1] for member in members)  # the members' own modules
        self.layers = nn.ModuleList()
        width = None  # features entering the next layer, where a linear layer says
        for name in names[flatten + 1:]:
            layers = [getattr(m, name) for m in members]
            self.layers.append(_stack_layer(name, layers, mixed_activations, self.randomness, width))
            width = layers[0].out_features if isinstance(layers[0], nn.Linear) else width

    def seed_members(self, seeds: list[int], device: torch.device) -> None:
        """From now on member i draws what a lone run draws after ``torch.manual_seed(seeds[i])``."""
        self.randomness.seed(seeds, device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.stack([_member_call(head, part, self.randomness, i)
                         for i, (head, part) in enumerate(zip(self.heads, x.unbind(0)))])  # (k, B, F)
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


def _check_same_structure(members: list[nn.Sequential], mixed_activations: bool) -> None:
    """The same layers in the same order with the same parameter shapes, activations
    (afbench names them act1, act2, ...) excepted where they may differ."""
    def layout(member: nn.Sequential) -> tuple:
        return tuple((name, "activation" if mixed_activations and name.startswith(ACT_PREFIX) else type(m).__name__)
                     for name, m in member.named_children())

    if len({layout(member) for member in members}) != 1:
        raise AfbenchError("stacked models must have the same layers; got different architectures")
    for name, first in members[0].named_children():
        if name.startswith(ACT_PREFIX) and mixed_activations:
            continue
        shapes = {tuple(tuple(p.shape) for p in getattr(member, name).parameters()) for member in members}
        if len(shapes) != 1:
            raise AfbenchError(f"stacked models must have the same layer shapes; layer '{name}' differs "
                               "(an activation that changes widths, such as a gated unit or maxout, cannot share a stack)")


def _draws_random(layer: nn.Module, width: int | None) -> bool:
    """Does ``layer`` (a copy of it, in training mode) draw random numbers when called?
    Then one module cannot serve every member: each must draw from its own state.
    Unknown input width or a failing probe: assume it does."""
    if isinstance(layer, _RANDOM):
        return True
    if width is None:
        return True
    state = torch.random.get_rng_state()
    try:
        copy.deepcopy(layer).train()(torch.zeros(2, width))
        return not torch.equal(state, torch.random.get_rng_state())
    except Exception:  # noqa: BLE001 (any failure of user code here only means: play safe)
        return True
    finally:
        torch.random.set_rng_state(state)


def _stack_layer(name: str, layers: list[nn.Module], mixed_activations: bool,
                 randomness: MemberRandomness, width: int | None = None) -> nn.Module:
    first = layers[0]
    if isinstance(first, nn.Linear):
        return _Linear(layers)
    has_weights = any(True for _ in first.parameters())
    # afbench's models name every hidden activation act1, act2, ...: each acts per sample
    activation = name.startswith(ACT_PREFIX)
    if isinstance(first, _PER_SAMPLE) or (activation and not has_weights and not mixed_activations
                                          and not _draws_random(first, width)):
        return _PerSample(first)
    if isinstance(first, _PER_MEMBER + _RANDOM) or activation:
        return _PerMember(layers, randomness)
    raise AfbenchError(f"cannot stack layer '{name}' ({type(first).__name__})")
