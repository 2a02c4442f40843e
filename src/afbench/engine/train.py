"""Training runs: the data is already on the device; this trains, evaluates and
measures. It never touches the results store: records leave through ``on_epoch``.

One loop serves a lone run and a stack of seeds (a lone run is a stack of one), so
every metric is computed in one place.

Timing follows DAWNBench: training time excludes evaluation; warm-up steps are not
timed, and the model's initial weights are put back after them, so they neither
count nor change the run.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from afbench import activations, models
from afbench.config import RunConfig
from afbench.data import Prepared, Split
from afbench.engine import metrics
from afbench.engine.diagnostics import layer_diagnostics
from afbench.engine.evaluate import evaluate, measure_latency
from afbench.activations import kernels as activation_kernels
from afbench.engine.runtime import provenance
from afbench.engine.stack import StackedSequential
from afbench.engine.trainer import (StackTrainer, Trainer, build_model, compile_mode, make_optimizer, on_device)
from afbench.errors import AfbenchError
from afbench.results import EpochRecord, RunSummary, Status
from afbench.workloads import Workload, for_config

__all__ = ["RunResult", "build_model", "evaluate", "make_optimizer", "measure_latency", "time_training_steps",
           "train", "train_stack", "DIVERGED_LOSS"]

# A mean cross-entropy above this many times that of uniform guessing (ln K) has
# exploded, not merely trained badly: Adam at lr 1e3 gave 3.2e12 at 10% accuracy.
DIVERGED_LOSS = 100.0
# provenance["latency"] of a run that did not time its own batch-1 latency
# (a sweep's driver replaces it with its own reason)
SKIPPED_LATENCY = "not timed in the run: left to a cost profile (latency=False)"


@dataclass
class RunResult:
    config: RunConfig
    status: Status
    epochs: list[EpochRecord] = field(default_factory=list)
    summary: RunSummary | None = None
    provenance: dict = field(default_factory=dict)
    final_metrics: dict = field(default_factory=dict)  # a workload's metrics at its last evaluation


def time_training_steps(config: RunConfig, data: Prepared, steps: int, stack: int = 1,
                        members: list[RunConfig] | None = None) -> float:
    """Seconds for ``steps`` training batches of ``config`` through the engine's own
    epoch loop after the usual warm-up, or of ``stack`` seeds of it trained as one
    stack, or of ``members`` (runs that may fuse) as one stack (for calibration and
    benchmarks)."""
    n = steps * config.batch_size
    # ``steps`` full batches even from a small training split (its rows again, in order): two
    # steps of a 200-image sweep timed alone measured noise (a "168x" stacking gain)
    rows = torch.arange(n, device=data.train.x.device) % len(data.train.y) if len(data.train.y) < n else slice(n)
    cut = Prepared(data.name, data.classes, Split(data.train.x[rows], data.train.y[rows]), data.test, None,
                   data.mean, data.std)
    configs = members or [config.with_(seed=config.seed + i) for i in range(stack)]
    trainer = _trainer(configs, cut, [build_model(c, cut) for c in configs], stacked=len(configs) > 1)
    trainer.warm_up()
    return trainer.train_epoch(make_optimizer(config, trainer.model))[2]


def train(config: RunConfig, data: Prepared, on_epoch: Callable[[EpochRecord], None] | None = None, *,
          compile: bool = False, latency: bool = True) -> RunResult:
    """Train ``config`` on ``data`` and measure it. A loss that turns NaN or inf, or
    explodes past DIVERGED_LOSS x ln(classes), stops the run, recorded as diverged
    with its epoch: a result, not a crash. ``compile`` runs the model's training
    forward and backward through torch.compile; evaluation, diagnostics and latency
    use the model as it is. ``latency=False`` skips the batch-1 latency and throughput
    (a sweep whose cost profile measures them alone), noted in the provenance."""
    report = (lambda _member, record: on_epoch(record)) if on_epoch else None
    return _fit([config], data, report, compile=compile, stacked=False, latency=latency)[0]


def train_stack(configs: list[RunConfig], data: Prepared,
                on_epoch: Callable[[int, EpochRecord], None] | None = None, *,
                compile: bool = False, latency: bool = True) -> list[RunResult]:
    """Train ``configs`` (equal ``fuse_key()``: they differ in seed or activation alone)
    as one stack; one result each.

    Each member starts from the weights, follows the batch order and draws the
    dropout masks its seed gives it alone, with its own activation. Evaluation,
    diagnostics and latency run on each member's own model. ``epoch_train_s`` is the
    stack's epoch time divided by its size (the stack's own time is kept as
    ``stack_epoch_s``): one clock for all, so the report's times come from the cost
    profile. A diverged member stops recording and the others go on. Members whose
    structures differ (a gated unit changes widths) train in stacks of their own
    seeds, the reason kept in their provenance as ``stack_refused``. ``latency`` as in
    ``train``.
    """
    if len({c.fuse_key() for c in configs}) != 1:
        raise AfbenchError("only runs that differ in their seed or activation alone can train as one stack")
    if for_config(configs[0]).family != "classification":  # stacks are of image classifiers: one by one
        return [_fit([c], data, (lambda _m, r, i=i: on_epoch(i, r)) if on_epoch else None, compile=compile,
                     stacked=False, latency=latency)[0] for i, c in enumerate(configs)]
    refused = stack_refusal(configs, data)
    if refused is None:
        return _fit(configs, data, on_epoch, compile=compile, stacked=True, latency=latency)
    results: dict[int, RunResult] = {}
    for key in dict.fromkeys(c.stack_key() for c in configs):  # one stack per activation, in order
        positions = [i for i, c in enumerate(configs) if c.stack_key() == key]
        report = (lambda j, r, at=positions: on_epoch(at[j], r)) if on_epoch else None
        for i, result in zip(positions, _fit([configs[i] for i in positions], data, report, compile=compile,
                                             stacked=len(positions) > 1, latency=latency)):
            result.provenance["stack_refused"] = refused
            results[i] = result
    return [results[i] for i in range(len(configs))]


def stack_refusal(configs: list[RunConfig], data: Prepared) -> str | None:
    """Why ``configs`` cannot share one stack, or None when they can."""
    members = [build_model(c, data) for c in configs]  # a model that cannot be built fails as itself
    try:
        StackedSequential(members, mixed_activations=_mixed(configs))
    except AfbenchError as err:
        return str(err)
    return None


def _mixed(configs: list[RunConfig]) -> bool:
    return len({c.activation for c in configs}) > 1


def _trainer(configs: list[RunConfig], data: Prepared, members: list[nn.Module], stacked: bool,
             compile: bool = False) -> Trainer:
    if stacked:
        # Members on the device first: evaluation runs each member's own model, whose linear
        # layers the stack holds as stacked copies (left behind on the CPU, a GPU run's
        # evaluation would meet them there).
        members = [on_device(member, data) for member in members]
        stack = StackedSequential(members, mixed_activations=_mixed(configs))
        return StackTrainer(configs, data, on_device(stack, data), compile)
    return Trainer(configs[0], data, on_device(members[0], data), compile)


def _prepare(trainer: Trainer) -> dict:
    """Warm ``trainer`` up; provenance entries of a compiled run: its mode and the
    warm-up's seconds, compilation included, which no training time counts."""
    if trainer.compiled:
        torch._dynamo.reset()  # this run's compilation is its own, and earlier runs' graphs use no recompile slot
    seconds = trainer.warm_up()
    return {"compile": compile_mode(trainer.device), "compile_s": round(seconds, 3)} if trainer.compiled else {}


def _fit(configs: list[RunConfig], data: Prepared, on_epoch: Callable[[int, EpochRecord], None] | None, *,
         compile: bool, stacked: bool, latency: bool = True) -> list[RunResult]:
    wall_start = time.perf_counter()
    members, built = [], []
    for config in configs:
        members.append(build_model(config, data))
        built.append(torch.random.get_rng_state())  # where a lone run's warm-up would draw from
    trainer = _trainer(configs, data, members, stacked, compile)
    if not stacked:
        members = [trainer.model]  # on the device, channels-last
    elif data.train.x.device.type == "cpu":  # ``built`` are CPU states; a GPU draws from its own
        trainer.model.randomness.states = built  # each member warms up drawing what it would alone
    compiled = _prepare(trainer)
    torch.manual_seed(configs[0].seed)  # dropout and noise draws: paired across activations
    if stacked:
        trainer.model.seed_members([c.seed for c in configs], data.train.x.device)  # each draws as alone
    own_randomness = trainer.model.randomness.of if stacked else (lambda _member: contextlib.nullcontext())
    optimizer = make_optimizer(configs[0], trainer.model)
    k = len(configs)
    workload = for_config(configs[0])
    steps_per_epoch = workload.steps_per_epoch(data.train, configs[0].batch_size)
    base = {**provenance(data.train.x.device), "stack_size": k, "compiled": compile, **compiled,
            "stack_activations": len({c.activation for c in configs}),
            **({} if latency else {"latency": SKIPPED_LATENCY}),
            "data_fingerprint": getattr(data, "fingerprint", "") or None}  # which data it trained on
    results = [RunResult(c, Status.DONE, provenance=dict(base)) for c in configs]
    predictions: list[torch.Tensor | None] = [None] * k
    cumulative = 0.0
    for epoch in range(1, configs[0].epochs + 1):
        losses, accuracies, seconds = trainer.train_epoch(optimizer)
        cumulative += seconds / k
        trainer.write_back()
        for i, (config, model, result) in enumerate(zip(configs, members, results)):
            if result.status == Status.DIVERGED:
                continue
            record = EpochRecord(epoch, float(losses[i]), float(accuracies[i]), seconds / k, cumulative,
                                 train_steps=epoch * steps_per_epoch, stack_epoch_s=seconds if stacked else None)
            end = _end_epoch if workload.family == "classification" else _end_workload_epoch
            with own_randomness(i):  # what the member's diagnostics draw, it would draw alone
                predictions[i] = end(config, data, model, result, record, wall_start)
            if on_epoch:
                on_epoch(i, record)
        if all(r.status == Status.DIVERGED for r in results):
            break
    for i, (config, model, result, predicted) in enumerate(zip(configs, members, results, predictions)):
        with own_randomness(i):
            result.summary = _summarise(config, data, model, result, predicted, latency) \
                if workload.family == "classification" else \
                _summarise_workload(workload, config, data, model, result, latency)
        _record_primary(workload, result.summary)
        result.summary.wall_s = time.perf_counter() - wall_start
        result.provenance["activation_kernels"] = activation_kernels.status()  # after training: a failure shows
    return results


def diverged(train_loss: float, num_classes: int) -> bool:
    """NaN or inf, or exploded far past the loss of uniform guessing."""
    return not math.isfinite(train_loss) or train_loss > DIVERGED_LOSS * math.log(max(num_classes, 2))


def _end_epoch(config: RunConfig, data: Prepared, model: nn.Module, result: RunResult, record: EpochRecord,
               wall_start: float) -> torch.Tensor | None:
    """Evaluate and look inside after an epoch, or mark the run diverged; record the
    epoch. Returns the test predictions (None once diverged)."""
    predictions = None
    if diverged(record.train_loss, data.num_classes):
        result.status = Status.DIVERGED
    else:
        record.test_loss, record.test_acc, predictions = evaluate(model, data.test)
        if data.valid is not None:
            record.valid_loss, record.valid_acc, _ = evaluate(model, data.valid)
        diagnostics_start = time.perf_counter()
        probe = config.probe_size
        record.layers = layer_diagnostics(model, data.train.x[:probe], data.train.y[:probe])
        record.diagnostics_s = time.perf_counter() - diagnostics_start
    record.wall_s = time.perf_counter() - wall_start
    result.epochs.append(record)
    return predictions


def _summarise(config: RunConfig, data: Prepared, model: nn.Module, result: RunResult,
               predictions: torch.Tensor | None, latency: bool = True) -> RunSummary:
    epochs = result.epochs
    last = epochs[-1] if epochs else None
    seconds = last.cum_train_s if last else 0.0
    summary = RunSummary(params=models.count_parameters(model), epochs_run=len(epochs), total_train_s=seconds,
                         wall_train_s=seconds, train_steps=last.train_steps if last else 0)
    if result.status == Status.DIVERGED or predictions is None:
        summary.diverged_epoch = last.epoch if last else None
        return summary
    epoch, seconds = metrics.time_to_target([e.test_acc for e in epochs], [e.cum_train_s for e in epochs],
                                            config.target)
    summary.epoch_to_target, summary.time_to_target_s = epoch, seconds
    summary.steps_to_target = epochs[epoch - 1].train_steps if epoch else None
    confusion = metrics.confusion_matrix(data.test.y, predictions, data.num_classes)
    for name, value in metrics.classification_report(confusion).items():
        setattr(summary, name, value)
    summary.confusion = confusion.tolist()
    for name, value in (measure_latency(model, data.test, config.latency_samples) if latency else {}).items():
        setattr(summary, name, value)
    summary.test_loss, summary.valid_acc, summary.valid_loss = last.test_loss, last.valid_acc, last.valid_loss
    summary.unswapped = [str(site) for site in models.leftover(model)] or None
    summary.learned_curves = _learned_curves(model)
    return summary


def _end_workload_epoch(config: RunConfig, data: Prepared, model: nn.Module, result: RunResult, record: EpochRecord,
                        wall_start: float) -> None:
    """A workload's epoch end: its metrics on the test (and validation) split, or diverged."""
    workload = for_config(config)
    if workload.diverged(record.train_loss, data):
        result.status = Status.DIVERGED
    else:
        metrics_now = workload.evaluate(model, data.test)
        record.test_loss, record.test_metric = metrics_now["loss"], metrics_now[workload.primary.name]
        if data.valid is not None:
            valid = workload.evaluate(model, data.valid)
            record.valid_loss, record.valid_metric = valid["loss"], valid[workload.primary.name]
        result.final_metrics = metrics_now
    record.train_acc = math.nan
    record.wall_s = time.perf_counter() - wall_start
    result.epochs.append(record)
    return None


def _summarise_workload(workload: Workload, config: RunConfig, data: Prepared, model: nn.Module,
                        result: RunResult, latency: bool = True) -> RunSummary:
    epochs = result.epochs
    last = epochs[-1] if epochs else None
    seconds = last.cum_train_s if last else 0.0
    summary = RunSummary(params=models.count_parameters(model), epochs_run=len(epochs), total_train_s=seconds,
                         wall_train_s=seconds, train_steps=last.train_steps if last else 0)
    if result.status == Status.DIVERGED or last is None or last.test_metric is None:
        summary.diverged_epoch = last.epoch if last else None
        return summary
    target = workload.target if config.target is None else config.target
    reached = next((e for e in epochs if workload.primary.reached(e.test_metric, target)), None)
    if reached is not None:
        summary.epoch_to_target, summary.time_to_target_s = reached.epoch, reached.cum_train_s
        summary.steps_to_target = reached.train_steps
    summary.metrics = dict(result.final_metrics)
    whole = lambda: workload.evaluate(model, data.test)
    for name, value in (measure_latency(model, data.test, config.latency_samples, whole) if latency else {}).items():
        setattr(summary, name, value)
    summary.test_loss, summary.valid_loss = last.test_loss, last.valid_loss
    summary.learned_curves = _learned_curves(model)
    return summary


def _record_primary(workload: Workload, summary: RunSummary) -> None:
    """The workload's primary metric under its own name, with its direction."""
    summary.primary_metric = workload.primary.name
    summary.higher_is_better = workload.primary.higher_is_better
    if workload.family == "classification":
        summary.primary_value = summary.error_rate
    elif summary.metrics is not None:
        summary.primary_value = summary.metrics.get(workload.primary.name)


def _learned_curves(model: nn.Module) -> list[dict] | None:
    """Each learnable activation as trained, beside its initial curve, on [-4, 4]:
    per layer the median over channels and the 10-90% band (the report draws them)."""
    x = torch.linspace(-4, 4, 41)
    curves = []
    for curve in activations.learned_curves(model, x):
        y = torch.as_tensor(curve.y, dtype=torch.float64)  # (channels or 1, len(x))
        low, median, high = torch.quantile(y, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64), dim=0)
        initial = None if curve.initial is None else torch.as_tensor(curve.initial, dtype=torch.float64)[0].tolist()
        curves.append({"layer": curve.layer, "activation": curve.activation, "x": x.tolist(), "y": median.tolist(),
                       "low": low.tolist(), "high": high.tolist(), "initial": initial})
    return curves or None
