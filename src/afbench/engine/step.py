"""The one training step every workload trains with, and the model it steps.

Training runs (``trainer``), calibration, the cost profile (``cost.profile``) and the
studies all build their model with ``model_for`` and step it with ``Step``: the same
modules (the workload's model with the run's activation, ``allow_partial`` passed
through), the same memory format (convolutions channels-last), the same autocast
(bfloat16 on CUDA where the workload allows it), the same augmentation and the same
loss. So the cost profile's step times are the times of the step that trained.

A step: (augment) -> forward + loss under autocast -> zero_grad -> backward ->
optimizer step. ``loss`` alone is the first phase, for the cost profile, which
times the phases apart.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch import nn

from afbench import activations
from afbench.config import RunConfig
from afbench.data import Prepared
from afbench.data.prep import random_crop_flip
from afbench.errors import AfbenchError
from afbench.models.pool import use_native_pools
from afbench.workloads import Workload, for_config


def autocast(device: torch.device, workload: Workload | None = None):
    """bf16 autocast on CUDA only: on CPU it is slower and changes the numbers (and even
    a disabled autocast context costs per step). Off for workloads that need full
    precision (second derivatives)."""
    if device.type == "cuda" and (workload is None or workload.autocast):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def plain_forward(model: nn.Module, xb: torch.Tensor) -> torch.Tensor:
    return model(xb)


def compile_mode(device: torch.device) -> str:
    """torch.compile's mode: CUDA graphs on a GPU, where tiny models wait on kernel
    launches; plain inductor on a CPU."""
    return "reduce-overhead" if device.type == "cuda" else "default"


def check_activation(config: RunConfig) -> None:
    """Refuse, before training, an activation the workload cannot train with (say why)."""
    workload = for_config(config)
    problem = workload.check_activation(activations.factory(config.activation))
    if problem:
        raise AfbenchError(f"workload {workload.name}: {problem}")


def build_model(config: RunConfig, data: Prepared) -> nn.Module:
    """The seeded model: same seed and shapes give the same initial weights. The
    workload builds it with the activation passed in."""
    workload = for_config(config)
    torch.manual_seed(config.seed)
    if workload.family == "classification":
        # The name, not a factory: models.build resolves it after the seed, as 0.2.0 did,
        # so the initial weights (and every stored result) stay the same.
        return workload.build(config, data, config.activation)
    check_activation(config)
    return workload.build(config, data, activations.factory(config.activation))


def on_device(model: nn.Module, data: Prepared) -> nn.Module:
    """The model on the data's device; convolutions channels-last (faster on CPU and GPU),
    and on the CPU their 2x2 max pools through afbench's loop (same results, bit for bit)."""
    model = model.to(data.train.x.device)
    if any(isinstance(m, nn.Conv2d) for m in model.modules()):
        model = model.to(memory_format=torch.channels_last)
        if data.train.x.device.type == "cpu":
            use_native_pools(model)
    return model


def model_for(config: RunConfig, data: Prepared) -> nn.Module:
    """What trains: the seeded model, on the data's device, in its memory format."""
    return on_device(build_model(config, data), data)


Loss = Callable[[Callable, nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class Step:
    """One optimizer step of ``config``'s workload on a batch (x, y)."""

    def __init__(self, config: RunConfig, device: torch.device, compile: bool = False, loss: Loss | None = None):
        self.config = config
        self.workload = for_config(config)
        self.device = device
        self.autocast = autocast(device, self.workload)
        self.compiled = compile
        # The model is an argument, not baked in: a stack and a lone run share the code path.
        # Static shapes: each batch size gets its own graph (CUDA graphs need fixed shapes anyway).
        self.forward = torch.compile(plain_forward, mode=compile_mode(device), dynamic=False) if compile \
            else plain_forward
        self.loss_fn = loss or self.workload.loss
        self.augment_rng = torch.Generator(device=device).manual_seed(config.seed) if config.augment else None

    def loss(self, model: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward and loss (the step's first phase): (loss, output)."""
        if self.augment_rng is not None:
            xb = self.augment(xb)
        with self.autocast:
            return self.loss_fn(self.forward, model, xb, yb)

    def augment(self, xb: torch.Tensor) -> torch.Tensor:
        if xb.dim() == 5:  # a stack's (k, B, C, H, W)
            return random_crop_flip(xb.flatten(0, 1), self.augment_rng).view_as(xb)
        return random_crop_flip(xb, self.augment_rng)

    def __call__(self, model: nn.Module, optimizer: torch.optim.Optimizer, xb: torch.Tensor,
                 yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss, output = self.loss(model, xb, yb)
        optimizer.zero_grad(set_to_none=True)
        # A stack's loss is one per member: members share no weights, so the gradient of
        # the sum is each member's gradient of its own loss. For a scalar the sum is itself.
        loss.sum().backward()
        optimizer.step()
        return loss.detach(), output.detach()
