"""One training run: the data is already on the device; this trains, evaluates and
measures. It never touches the results store: records leave through ``on_epoch``.

Timing follows DAWNBench: training time excludes evaluation; warm-up steps run on
a throwaway copy of the model, so they neither count nor change the run.
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from afbench import activations, models
from afbench.config import RunConfig
from afbench.data import Prepared, Split
from afbench.data.prep import random_crop_flip
from afbench.engine import metrics
from afbench.engine.diagnostics import layer_diagnostics
from afbench.engine.runtime import provenance

EVAL_BATCH = 1000
WARMUP_STEPS = 3
LATENCY_WARMUP = 10


@dataclass
class RunResult:
    config: RunConfig
    status: str  # "done" or "diverged"
    epochs: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _is_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def build_model(config: RunConfig, data: Prepared) -> nn.Module:
    """The seeded model: same seed and shapes give the same initial weights."""
    torch.manual_seed(config.seed)
    return models.build(config.model, config.activation, data.input_shape, data.num_classes, init=config.init,
                        norm=config.norm, hidden_bias=config.hidden_bias, match_params=config.match_params)


def make_optimizer(config: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Weight decay for weights only: learned activation parameters (PReLU slopes,
    Swish beta) are left out, or decay would pull them towards ReLU and a line."""
    skip = {id(p) for p in activations.no_decay_parameters(model)}
    groups = [{"params": [p for p in model.parameters() if id(p) not in skip], "weight_decay": config.weight_decay},
              {"params": [p for p in model.parameters() if id(p) in skip], "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if config.optimizer == "adam":
        # The fused kernel updates every parameter in one pass (CPU and CUDA).
        return torch.optim.Adam(groups, lr=config.lr, fused=True)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                           nesterov=config.nesterov and config.momentum > 0)


class _Trainer:
    def __init__(self, config: RunConfig, data: Prepared, model: nn.Module) -> None:
        self.config, self.data, self.model = config, data, model
        self.device = data.train.x.device
        # bf16 autocast on CUDA only: on CPU it is slower and changes the numbers (and even
        # a disabled autocast context costs per step).
        self.autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda"
                         else contextlib.nullcontext())
        self.order = torch.Generator().manual_seed(config.seed)  # data order, independent of the model
        self.augment_rng = torch.Generator(device=self.device).manual_seed(config.seed)

    def step(self, model, optimizer, xb, yb):
        if self.config.augment:
            xb = random_crop_flip(xb, self.augment_rng)
        with self.autocast:
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach(), logits.detach()

    def warm_up(self) -> None:
        """A few steps on a copy: first-call costs (allocator, kernels, threads)
        happen here, outside the timed epochs, and leave the real run untouched."""
        model = copy.deepcopy(self.model)
        optimizer = make_optimizer(self.config, model)
        x, y = self.data.train.x, self.data.train.y
        state = torch.random.get_rng_state()
        for _ in range(WARMUP_STEPS):
            self.step(model, optimizer, x[: self.config.batch_size], y[: self.config.batch_size])
        torch.random.set_rng_state(state)  # dropout draws stay as without warm-up
        _sync(self.device)

    def train_epoch(self, optimizer) -> tuple[float, float, float]:
        """(mean loss, accuracy, seconds) over one pass of the shuffled training split."""
        x, y = self.data.train.x, self.data.train.y
        n = len(y)
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        order = torch.randperm(n, generator=self.order).to(self.device)
        _sync(self.device)
        start = time.perf_counter()
        for idx in order.split(self.config.batch_size):
            yb = y[idx]
            loss, logits = self.step(self.model, optimizer, x[idx], yb)
            loss_sum += loss * len(idx)
            correct += (logits.argmax(dim=1) == yb).sum()
        _sync(self.device)
        seconds = time.perf_counter() - start
        return float(loss_sum) / n, float(correct) / n, seconds


def time_training_steps(config: RunConfig, data: Prepared, steps: int) -> float:
    """Seconds for ``steps`` training batches of ``config`` through the engine's own
    epoch loop, after the usual warm-up (for calibration and benchmarks)."""
    n = steps * config.batch_size
    cut = Prepared(data.name, data.classes, Split(data.train.x[:n], data.train.y[:n]), data.test, None,
                   data.mean, data.std)
    model = build_model(config, cut).to(cut.train.x.device)
    if _is_conv(model):
        model = model.to(memory_format=torch.channels_last)
    trainer = _Trainer(config, cut, model)
    trainer.warm_up()
    return trainer.train_epoch(make_optimizer(config, model))[2]


@torch.inference_mode()
def evaluate(model: nn.Module, split: Split) -> tuple[float, float, torch.Tensor]:
    """(mean loss, accuracy, predictions) in eval mode, in large batches."""
    model.eval()
    loss_sum, predictions = 0.0, []
    for start in range(0, len(split), EVAL_BATCH):
        xb, yb = split.x[start:start + EVAL_BATCH], split.y[start:start + EVAL_BATCH]
        logits = model(xb).float()
        loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
        predictions.append(logits.argmax(dim=1))
    predictions = torch.cat(predictions)
    return loss_sum / len(split), float((predictions == split.y).float().mean()), predictions


@torch.inference_mode()
def measure_latency(model: nn.Module, split: Split, samples: int | None) -> dict[str, float]:
    """Batch-1 inference latency (DAWNBench): each test image classified alone, after
    a warm-up; inputs are views of the resident test tensor, timers synchronised."""
    model.eval()
    device = split.x.device
    count = len(split) if samples is None else min(samples, len(split))
    inputs = [split.x[i:i + 1] for i in range(count)]  # preallocated views, no copies in the timed loop
    for x in inputs[:LATENCY_WARMUP]:
        model(x)
    _sync(device)
    seconds = []
    for x in inputs:
        start = time.perf_counter()
        model(x)
        _sync(device)
        seconds.append(time.perf_counter() - start)
    _sync(device)
    start = time.perf_counter()
    evaluate(model, split)
    _sync(device)
    summary = metrics.latency_summary(seconds)
    summary["throughput_per_s"] = len(split) / (time.perf_counter() - start)
    return summary


def train(config: RunConfig, data: Prepared, on_epoch: Callable[[dict], None] | None = None) -> RunResult:
    """Train ``config`` on ``data`` and measure it. A loss that turns NaN or inf
    stops the run, recorded as diverged with its epoch: a result, not a crash."""
    wall_start = time.perf_counter()
    model = build_model(config, data).to(data.train.x.device)
    if _is_conv(model):
        model = model.to(memory_format=torch.channels_last)
    trainer = _Trainer(config, data, model)
    trainer.warm_up()
    torch.manual_seed(config.seed)  # dropout and noise draws: paired across activations
    optimizer = make_optimizer(config, model)
    probe_x, probe_y = data.train.x[: config.probe_size], data.train.y[: config.probe_size]
    result = RunResult(config, "done", provenance=provenance(data.train.x.device))
    cumulative = 0.0
    for epoch in range(1, config.epochs + 1):
        train_loss, train_acc, seconds = trainer.train_epoch(optimizer)
        cumulative += seconds
        record = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc, "epoch_train_s": seconds,
                  "cum_train_s": cumulative}
        if not torch.isfinite(torch.tensor(train_loss)):
            result.status = "diverged"
            record["wall_s"] = time.perf_counter() - wall_start
            result.epochs.append(record)
            if on_epoch:
                on_epoch(record)
            break
        record["test_loss"], record["test_acc"], predictions = evaluate(model, data.test)
        if data.valid is not None:
            record["valid_loss"], record["valid_acc"], _ = evaluate(model, data.valid)
        diagnostics_start = time.perf_counter()
        record["layers"] = layer_diagnostics(model, probe_x, probe_y)
        record["diagnostics_s"] = time.perf_counter() - diagnostics_start
        record["wall_s"] = time.perf_counter() - wall_start
        result.epochs.append(record)
        if on_epoch:
            on_epoch(record)
    result.summary = _summarise(config, data, model, result, predictions if result.status == "done" else None)
    result.summary["wall_s"] = time.perf_counter() - wall_start
    return result


def _summarise(config: RunConfig, data: Prepared, model: nn.Module, result: RunResult,
               predictions: torch.Tensor | None) -> dict:
    epochs = result.epochs
    summary = {"params": models.count_parameters(model), "epochs_run": len(epochs),
               "total_train_s": epochs[-1]["cum_train_s"] if epochs else 0.0}
    if result.status == "diverged":
        summary["diverged_epoch"] = epochs[-1]["epoch"]
        return summary
    accuracy = [e["test_acc"] for e in epochs]
    epoch, seconds = metrics.time_to_target(accuracy, [e["cum_train_s"] for e in epochs], config.target)
    summary.update({"epoch_to_target": epoch, "time_to_target_s": seconds})
    confusion = metrics.confusion_matrix(data.test.y, predictions, data.num_classes)
    summary.update(metrics.classification_report(confusion))
    summary["confusion"] = confusion.tolist()
    summary.update(measure_latency(model, data.test, config.latency_samples))
    if data.valid is not None:
        summary["valid_acc"] = epochs[-1]["valid_acc"]
        summary["valid_loss"] = epochs[-1]["valid_loss"]
    summary["test_loss"] = epochs[-1]["test_loss"]
    return summary
