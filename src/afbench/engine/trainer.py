"""How one model (or a stack of seeds) takes training steps: the optimizer, the
untimed warm-up and the timed epoch loop, around the one ``step.Step`` every
workload trains with. Data is resident on the device; batches are drawn by the
workload (image classification: index slices of a per-epoch randperm).
"""

from __future__ import annotations

import copy
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from afbench import activations
from afbench.config import RunConfig
from afbench.data import Prepared
from afbench.engine.stack import StackedSequential
from afbench.engine.step import Step, build_model, compile_mode, model_for, on_device  # noqa: F401 (re-exported)
from afbench.workloads import for_config

WARMUP_STEPS = 3


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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


def gather(rows: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``rows[idx]`` for an index tensor of any shape, through ``index_select``: the same
    values, in half the time of advanced indexing for a LeNet batch of MNIST (80 against
    150-240 us at one thread, 1-2% of the step)."""
    idx = torch.as_tensor(idx, device=rows.device)  # a user workload's batches may give a list or another device
    return rows.index_select(0, idx.reshape(-1)).view(*idx.shape, *rows.shape[1:])


def _correct(output: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """Right answers of a classifier's batch (per member for a stack's (k, B, classes))."""
    return (output.argmax(dim=-1) == yb).sum(dim=-1)


class Trainer:
    def __init__(self, config: RunConfig, data: Prepared, model: nn.Module, compile: bool = False) -> None:
        self.config, self.data, self.model = config, data, model
        self.workload = for_config(config)
        self.device = data.train.x.device
        self.step = Step(config, self.device, compile, loss=self._loss())
        self.autocast = self.step.autocast
        self.compiled = compile
        self.order = torch.Generator().manual_seed(config.seed)  # data order, independent of the model
        # Train accuracy is a classifier's; other workloads record their metrics at evaluation.
        self.classifies = self.workload.family == "classification"

    def _loss(self):
        return None  # the workload's own

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
        """Mean loss (1,), accuracy (1,; NaN where the workload does not classify) and
        seconds of one pass over the shuffled training split: the shapes of a stack of
        one, so one loop serves both."""
        x, y = self.data.train.x, self.data.train.y
        n = len(y)
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        batches = self.workload.batches(self.data.train, self.config.batch_size, self.order)
        sync(self.device)
        start = time.perf_counter()
        for idx in batches:
            yb = gather(y, idx)
            loss, output = self.step(self.model, optimizer, gather(x, idx), yb)
            loss_sum += loss * len(idx)
            if self.classifies:
                correct += _correct(output, yb)
        sync(self.device)
        seconds = time.perf_counter() - start
        accuracy = (correct.double() / n).reshape(1).cpu() if self.classifies else torch.full((1,), math.nan)
        return (loss_sum / n).reshape(1).cpu(), accuracy, seconds

    def write_back(self) -> None:
        """Nothing to do for a lone model (a stack copies its stacked weights back)."""


def _stack_loss(forward, model, xb, yb):
    """xb (k, B, ...), yb (k, B): per-member mean cross-entropy (k,) and logits (k, B, classes)."""
    logits = forward(model, xb)
    losses = F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="none").view(yb.shape).mean(1)
    return losses, logits


class StackTrainer(Trainer):
    """The epoch loop of a stack (image classification): member i draws its batches
    from its own seed's order, exactly as it would alone, and optimises its own mean loss."""

    def __init__(self, configs: list[RunConfig], data: Prepared, model: StackedSequential,
                 compile: bool = False) -> None:
        super().__init__(configs[0], data, model, compile)
        self.configs = configs
        self.orders = [torch.Generator().manual_seed(c.seed) for c in configs]

    def _loss(self):
        return _stack_loss

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
            yb = gather(y, idx)
            losses, logits = self.step(self.model, optimizer, gather(x, idx), yb)
            loss_sum += losses * idx.shape[1]
            correct += _correct(logits, yb)
        sync(self.device)
        seconds = time.perf_counter() - start
        return (loss_sum / n).cpu(), (correct.double() / n).cpu(), seconds

    def write_back(self) -> None:
        self.model.write_back()
