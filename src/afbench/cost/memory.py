"""Memory and size of a model: bytes saved for backward, peak memory, parameters, FLOPs."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def saved_bytes(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None,
                loss_fn: Callable = F.cross_entropy) -> int:
    """Bytes autograd holds for backward after one forward (+ loss when ``y`` is given).

    Counted exactly with ``torch.autograd.graph.saved_tensors_hooks``: every tensor
    saved for backward is mapped to its storage (device, untyped_storage data_ptr), each
    storage counted once with its full size (a ReLU's output saved by the ReLU and by
    the next Linear is one storage). Storages of the model's parameters and buffers
    are left out: they are held whether or not a step is in flight. ``x`` should own
    its storage (a slice of a bigger tensor would count the whole storage).
    """
    skip = {(t.device, t.untyped_storage().data_ptr()) for t in list(model.parameters()) + list(model.buffers())}
    seen: dict[tuple, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        key = (t.device, storage.data_ptr())
        if key not in skip:
            seen[key] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
        if y is not None:
            loss_fn(out, y)
    return sum(seen.values())


def saved_bytes_per_sample(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> float:
    """``saved_bytes`` of a batch divided by its size (batch-independent parts, such as
    the loss's scalar, are spread over the batch)."""
    return saved_bytes(model, x.clone(), None if y is None else y.clone()) / len(x)


def peak_bytes(step: Callable[[], None], device: torch.device) -> int | None:
    """On CUDA: the peak bytes allocated during one call of ``step`` above what was
    allocated before it (so the model, its optimizer state and the data on the device
    are not counted). None on other devices, whose allocators report no peak (the CPU
    allocator keeps no statistics)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device) - before)


def forward_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward pass on ``x`` from torch's own counter (``FlopCounterMode``).

    It counts matrix products and convolutions (2 per multiply-add); elementwise work,
    the activation itself included, counts zero, so this is the model's size, equal
    across activations unless widths differ (maxout).
    """
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
