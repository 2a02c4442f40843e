"""One training run: the data is already on the device; this trains, evaluates and
measures. It never touches the results store: records leave through ``on_epoch``.

Timing follows DAWNBench: training time excludes evaluation; warm-up steps are not
timed, and the model's initial weights are put back after them, so they neither
count nor change the run.
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
from afbench.engine.stack import StackedSequential
from afbench.errors import AfbenchError

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


def _on_device(model: nn.Module, data: Prepared) -> nn.Module:
    """The model on the data's device; convolutions channels-last (faster on CPU and GPU)."""
    model = model.to(data.train.x.device)
    if any(isinstance(m, nn.Conv2d) for m in model.modules()):
        model = model.to(memory_format=torch.channels_last)
    return model


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


class _Trainer:
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
        _sync(self.device)
        return time.perf_counter() - start

    def warm_up_sizes(self) -> list[int]:
        """A compiled step also meets the epoch's last, shorter batch here: a new shape
        compiles anew, and that must not land in a timed epoch."""
        batch, n = self.config.batch_size, len(self.data.train.y)
        return [min(batch, n)] + ([n % batch] if self.compiled and n > batch and n % batch else [])

    def warm_up_batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data.train.x[:size], self.data.train.y[:size]

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


class _StackTrainer(_Trainer):
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
        _sync(self.device)
        start = time.perf_counter()
        for idx in orders.split(self.config.batch_size, dim=1):
            yb = y[idx]
            losses, logits = self.step(self.model, optimizer, x[idx], yb)
            loss_sum += losses * idx.shape[1]
            correct += (logits.argmax(dim=-1) == yb).sum(dim=1)
        _sync(self.device)
        seconds = time.perf_counter() - start
        return (loss_sum / n).cpu(), (correct.double() / n).cpu(), seconds


def time_training_steps(config: RunConfig, data: Prepared, steps: int, stack: int = 1) -> float:
    """Seconds for ``steps`` training batches of ``config`` through the engine's own
    epoch loop after the usual warm-up, or of ``stack`` seeds of it trained as one
    stack (for calibration and benchmarks)."""
    n = steps * config.batch_size
    cut = Prepared(data.name, data.classes, Split(data.train.x[:n], data.train.y[:n]), data.test, None,
                   data.mean, data.std)
    if stack > 1:
        configs = [config.with_(seed=config.seed + i) for i in range(stack)]
        model = _on_device(StackedSequential([build_model(c, cut) for c in configs]), cut)
        trainer = _StackTrainer(configs, cut, model)
    else:
        model = _on_device(build_model(config, cut), cut)
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


def _prepare(trainer: _Trainer) -> dict:
    """Warm ``trainer`` up; provenance entries of a compiled run: its mode and the
    warm-up's seconds, compilation included, which no training time counts."""
    if trainer.compiled:
        torch._dynamo.reset()  # this run's compilation is its own, and earlier runs' graphs use no recompile slot
    seconds = trainer.warm_up()
    return {"compile": compile_mode(trainer.device), "compile_s": round(seconds, 3)} if trainer.compiled else {}


def train(config: RunConfig, data: Prepared, on_epoch: Callable[[dict], None] | None = None, *,
          compile: bool = False) -> RunResult:
    """Train ``config`` on ``data`` and measure it. A loss that turns NaN or inf
    stops the run, recorded as diverged with its epoch: a result, not a crash.
    ``compile`` runs the model's training forward and backward through torch.compile;
    evaluation, diagnostics and latency use the model as it is."""
    wall_start = time.perf_counter()
    model = _on_device(build_model(config, data), data)
    trainer = _Trainer(config, data, model, compile)
    compiled = _prepare(trainer)
    torch.manual_seed(config.seed)  # dropout and noise draws: paired across activations
    optimizer = make_optimizer(config, model)
    result = RunResult(config, "done", provenance={**provenance(data.train.x.device), **compiled})
    cumulative, predictions = 0.0, None
    for epoch in range(1, config.epochs + 1):
        train_loss, train_acc, seconds = trainer.train_epoch(optimizer)
        cumulative += seconds
        record = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc, "epoch_train_s": seconds,
                  "cum_train_s": cumulative}
        predictions = _end_epoch(config, data, model, result, record, wall_start, on_epoch)
        if result.status == "diverged":
            break
    _finish(config, data, model, result, predictions, wall_start)
    return result


def train_stack(configs: list[RunConfig], data: Prepared, on_epoch: Callable[[int, dict], None] | None = None, *,
                compile: bool = False) -> list[RunResult]:
    """Train the seeds ``configs`` (equal ``stack_key()``) as one stack; one result each.

    Each member starts from the weights and follows the batch order its seed gives
    it alone; dropout masks come from one shared stream, so they differ from an
    unstacked run's draw by draw but not in distribution. Evaluation, diagnostics
    and latency run on each member's own model. ``epoch_train_s`` is the stack's
    epoch time divided by its size (the stack's own time is kept as
    ``stack_epoch_s``); a diverged member stops recording and the others go on.
    ``compile`` as in train().
    """
    if len({c.stack_key() for c in configs}) != 1:
        raise AfbenchError("only runs that differ in their seed alone can train as one stack")
    wall_start = time.perf_counter()
    device = data.train.x.device
    members = [build_model(c, data) for c in configs]
    stack = _on_device(StackedSequential(members), data)
    trainer = _StackTrainer(configs, data, stack, compile)
    compiled = _prepare(trainer)
    torch.manual_seed(configs[0].seed)
    optimizer = make_optimizer(configs[0], stack)
    k = len(configs)
    results = [RunResult(c, "done", provenance={**provenance(device), "stack_size": k, **compiled})
               for c in configs]
    predictions: list[torch.Tensor | None] = [None] * k
    cumulative = 0.0
    for epoch in range(1, configs[0].epochs + 1):
        losses, accuracies, seconds = trainer.train_epoch(optimizer)
        cumulative += seconds / k
        stack.write_back()
        for i, (config, model, result) in enumerate(zip(configs, members, results)):
            if result.status == "diverged":
                continue
            record = {"epoch": epoch, "train_loss": float(losses[i]), "train_acc": float(accuracies[i]),
                      "epoch_train_s": seconds / k, "cum_train_s": cumulative, "stack_epoch_s": seconds}
            report = (lambda r, i=i: on_epoch(i, r)) if on_epoch else None
            predictions[i] = _end_epoch(config, data, model, result, record, wall_start, report)
        if all(r.status == "diverged" for r in results):
            break
    for config, model, result, predicted in zip(configs, members, results, predictions):
        _finish(config, data, model, result, predicted, wall_start)
    return results


def _end_epoch(config: RunConfig, data: Prepared, model: nn.Module, result: RunResult, record: dict,
               wall_start: float, on_epoch: Callable[[dict], None] | None) -> torch.Tensor | None:
    """Evaluate and look inside after an epoch, or mark the run diverged; record the
    epoch. Returns the test predictions (None once diverged)."""
    predictions = None
    if not torch.isfinite(torch.tensor(record["train_loss"])):
        result.status = "diverged"
    else:
        record["test_loss"], record["test_acc"], predictions = evaluate(model, data.test)
        if data.valid is not None:
            record["valid_loss"], record["valid_acc"], _ = evaluate(model, data.valid)
        diagnostics_start = time.perf_counter()
        probe = config.probe_size
        record["layers"] = layer_diagnostics(model, data.train.x[:probe], data.train.y[:probe])
        record["diagnostics_s"] = time.perf_counter() - diagnostics_start
    record["wall_s"] = time.perf_counter() - wall_start
    result.epochs.append(record)
    if on_epoch:
        on_epoch(record)
    return predictions


def _finish(config: RunConfig, data: Prepared, model: nn.Module, result: RunResult,
            predictions: torch.Tensor | None, wall_start: float) -> None:
    result.summary = _summarise(config, data, model, result, predictions if result.status == "done" else None)
    result.summary["wall_s"] = time.perf_counter() - wall_start


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
