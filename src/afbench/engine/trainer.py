"""How one model (or a stack of seeds) takes training steps: the optimizer, the
step, the untimed warm-up and the timed epoch loop. Data is resident on the
device and batched by index slices of a per-epoch randperm.
"""

from __future__ import annotations

import contextlib
import copy
import time

import torch
import torch.nn.functional as F
from torch import nn

from afbench import activations, models
from afbench.config import RunConfig
from afbench.data import Prepared
from afbench.data.prep import random_crop_flip
from afbench.engine.stack import StackedSequential

WARMUP_STEPS = 3


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def on_device(model: nn.Module, data: Prepared) -> nn.Module:
    """The model on the data's device; convolutions channels-last (faster on CPU and GPU)."""
    model = model.to(data.train.x.device)
    if any(isinstance(m, nn.Conv2d) for m in model.modules()):
        model = model.to(memory_format=torch.channels_last)
    return model


def build_model(config: RunConfig, data: Prepared) -> nn.Module:
    """The seeded model: same seed and shapes give the same initial weights."""
    torch.manual_seed(config.seed)
    return models.build(config.model, config.activation, data.input_shape, data.num_classes, init=config.init,
                        norm=config.norm, hidden_bias=config.hidden_bias, match_params=config.match_params,
                        allow_partial=config.allow_partial)


def make_optimizer(config: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Two parameter groups: the weights, with weight decay, and the learned activation
    parameters (PReLU slopes, Swish beta, ...) without it, or decay would pull them
    towards ReLU and a line; at ``config.act_lr`` (default: the run's learning rate)."""
    skip = {id(p) for p in activations.no_decay_parameters(model)}
    act_lr = config.lr if config.act_lr is None else config.act_lr
    groups = [{"params": [p for p in model.parameters() if id(p) not in skip], "weight_decay": config.weight_decay},
              {"params": [p for p in model.parameters() if id(p) in skip], "weight_decay": 0.0, "lr": act_lr}]
    groups = [g for g in groups if g["params"]]
    if config.optimizer == "adam":
        # The fused kernel updates every parameter in one pass (CPU and CUDA).
        return torch.optim.Adam(groups, lr=config.lr, fused=True)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                           nesterov=config.nesterov and config.momentum > 0)


def _autocast(device: torch.device):
    """bf16 autocast on CUDA only: on CPU it is slower and changes the numbers (and even
    a disabled autocast context costs per step)."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def _forward(model: nn.Module, xb: torch.Tensor) -> torch.Tensor:
    return model(xb)


def compile_mode(device: torch.device) -> str:
    """torch.compile's mode: CUDA graphs on a GPU, where tiny models wait on kernel
    launches; plain inductor on a CPU."""
    return "reduce-overhead" if device.type == "cuda" else "default"


class Trainer:
    def __init__(self, config: RunConfig, data: Prepared, model: nn.Module, compile: bool = False) -> None:
        self.config, self.data, self.model = config, data, model
        self.device = data.train.x.device
        self.autocast = _autocast(self.device)
        self.compiled = compile
        # The model is an argument, not baked in: a stack and a lone run share the code path.
        # Static shapes: each batch size gets its own graph (CUDA graphs need fixed shapes anyway).
        self.forward = torch.compile(_forward, mode=compile_mode(self.device), dynamic=False) if compile \
            else _forward
        self.order = torch.Generator().manual_seed(config.seed)  # data order, independent of the model
        self.augment_rng = torch.Generator(device=self.device).manual_seed(config.seed)

    def step(self, model, optimizer, xb, yb):
        if self.config.augment:
            xb = random_crop_flip(xb, self.augment_rng)
        with self.autocast:
            logits = self.forward(model, xb)
            loss = F.cross_entropy(logits, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach(), logits.detach()

    def warm_up(self) -> float:
        """A few steps per warm-up batch, then the model's weights and buffers are copied
        back in place; returns the seconds, compilation included. First-call costs
        (allocator, kernels, threads, compilation) happen here, outside the timed epochs,
        and leave the run untouched. In place, so that anything bound to the parameters'
        memory (CUDA graphs) stays valid for the real steps."""
        start = time.perf_counter()
        initial = copy.deepcopy(self.model.state_dict())
        optimizer = make_optimizer(self.config, self.model)
        state = torch.random.get_rng_state()
        for xb, yb in [self.warm_up_batch(size) for size in self.warm_up_sizes()]:
            for _ in range(WARMUP_STEPS):
                self.step(self.model, optimizer, xb, yb)
        torch.random.set_rng_state(state)  # dropout draws stay as without warm-up
        self.model.load_state_dict(initial)
        for parameter in self.model.parameters():
            parameter.grad = None
        sync(self.device)
        return time.perf_counter() - start

    def warm_up_sizes(self) -> list[int]:
        """A compiled step also meets the epoch's last, shorter batch here: a new shape
        compiles anew, and that must not land in a timed epoch."""
        batch, n = self.config.batch_size, len(self.data.train.y)
        return [min(batch, n)] + ([n % batch] if self.compiled and n > batch and n % batch else [])

    def warm_up_batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data.train.x[:size], self.data.train.y[:size]

    def train_epoch(self, optimizer) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Mean loss (1,), accuracy (1,) and seconds of one pass over the shuffled
        training split: the shapes of a stack of one, so one loop serves both."""
        x, y = self.data.train.x, self.data.train.y
        n = len(y)
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        order = torch.randperm(n, generator=self.order).to(self.device)
        sync(self.device)
        start = time.perf_counter()
        for idx in order.split(self.config.batch_size):
            yb = y[idx]
            loss, logits = self.step(self.model, optimizer, x[idx], yb)
            loss_sum += loss * len(idx)
            correct += (logits.argmax(dim=1) == yb).sum()
        sync(self.device)
        seconds = time.perf_counter() - start
        return (loss_sum / n).reshape(1).cpu(), (correct.double() / n).reshape(1).cpu(), seconds

    def write_back(self) -> None:
        """Nothing to do for a lone model (a stack copies its stacked weights back)."""


class StackTrainer(Trainer):
    """The epoch loop of a stack: member i draws its batches from its own seed's
    order, exactly as it would alone, and optimises its own mean loss."""

    def __init__(self, configs: list[RunConfig], data: Prepared, model: StackedSequential,
                 compile: bool = False) -> None:
        super().__init__(configs[0], data, model, compile)
        self.configs = configs
        self.orders = [torch.Generator().manual_seed(c.seed) for c in configs]

    def step(self, model, optimizer, xb, yb):
        """xb (k, B, ...), yb (k, B); returns per-member losses (k,) and logits (k, B, classes)."""
        if self.config.augment:
            xb = random_crop_flip(xb.flatten(0, 1), self.augment_rng).view_as(xb)
        with self.autocast:
            logits = self.forward(model, xb)
            losses = F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="none").view(yb.shape).mean(1)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # members share no weights: each gets the gradient of its own loss
        optimizer.step()
        return losses.detach(), logits.detach()

    def warm_up_batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = super().warm_up_batch(size)
        k = len(self.configs)  # contiguous, as the epoch's gathered batches are: a compiled step guards on strides
        return x.expand(k, *x.shape).contiguous(), y.expand(k, *y.shape).contiguous()

    def train_epoch(self, optimizer) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Per-member (mean loss, accuracy) and the stack's seconds for one epoch."""
        x, y = self.data.train.x, self.data.train.y
        n, k = len(y), len(self.configs)
        self.model.train()
        loss_sum = torch.zeros(k, device=self.device)
        correct = torch.zeros(k, device=self.device, dtype=torch.long)
        orders = torch.stack([torch.randperm(n, generator=g) for g in self.orders]).to(self.device)  # (k, n)
        sync(self.device)
        start = time.perf_counter()
        for idx in orders.split(self.config.batch_size, dim=1):
            yb = y[idx]
            losses, logits = self.step(self.model, optimizer, x[idx], yb)
            loss_sum += losses * idx.shape[1]
            correct += (logits.argmax(dim=-1) == yb).sum(dim=1)
        sync(self.device)
        seconds = time.perf_counter() - start
        return (loss_sum / n).cpu(), (correct.double() / n).cpu(), seconds

    def write_back(self) -> None:
        self.model.write_back()


