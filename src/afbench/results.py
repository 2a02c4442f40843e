"""The contract between engine, store and report: run status, epoch and run records,
and the names of every metric. It sits below all three, so the engine writes, the
store keeps and the report reads the same typed fields, and a renamed metric fails
loudly instead of turning into an empty column.
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from afbench.errors import AfbenchError


class Status(str, enum.Enum):
    """A run's state in the results database."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"  # trained every epoch
    FAILED = "failed"  # raised: recorded with its error, retried by the next sweep
    DIVERGED = "diverged"  # the loss became NaN, inf or exploded: a result, not a failure

    def __str__(self) -> str:
        return self.value


FINISHED = (Status.DONE, Status.DIVERGED)  # never trained again

# Per-layer diagnostics the engine records after each epoch (see afbench.engine.diagnostics).
DIAGNOSTICS = ("dead_output", "dead_gradient", "saturation", "act_mean", "act_std", "grad_norm")


class RecordError(AfbenchError):
    """A stored record does not match the fields this afbench knows."""


def _strict(cls, values: dict[str, Any], what: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise RecordError(f"{what} has unknown fields {unknown}: it was written by another afbench version. "
                          f"Known fields: {', '.join(sorted(known))}")
    return cls(**values)


@dataclass
class EpochRecord:
    """One epoch of one run, written to the store as soon as the epoch ends."""

    epoch: int  # counted from 1
    train_loss: float  # mean over the epoch's batches, in training mode
    train_acc: float
    epoch_train_s: float  # this run's training seconds in the epoch (a stack's time / its size)
    cum_train_s: float  # training seconds up to the end of this epoch, evaluation excluded
    train_steps: int = 0  # optimizer steps up to the end of this epoch
    wall_s: float = math.nan  # wall clock since the run started, evaluation included
    test_loss: float | None = None  # None once diverged
    test_acc: float | None = None
    valid_loss: float | None = None
    valid_acc: float | None = None
    test_metric: float | None = None  # a workload's primary metric (RunSummary.primary_metric); None for images
    valid_metric: float | None = None
    diagnostics_s: float | None = None
    stack_epoch_s: float | None = None  # a stack's own seconds for the epoch
    layers: dict[str, list[float]] | None = None  # DIAGNOSTICS name -> one value per hidden activation

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "EpochRecord":
        return _strict(cls, values, "an epoch record")


@dataclass
class RunSummary:
    """A finished run's metrics. Diverged runs fill the first block only."""

    params: int  # trainable and fixed parameters of the model
    epochs_run: int
    total_train_s: float  # the run's own wall-clock training time (a stack's time / its size)
    train_steps: int = 0  # optimizer steps run
    wall_train_s: float | None = None  # = total_train_s: raw wall clock, which measures neighbours and threads too
    wall_s: float = math.nan  # the whole run, evaluation and latency included
    diverged_epoch: int | None = None
    epoch_to_target: int | None = None  # first epoch at or above the target test accuracy
    steps_to_target: int | None = None  # optimizer steps up to the end of that epoch
    time_to_target_s: float | None = None  # the run's own training seconds up to then
    accuracy: float | None = None  # test split, final epoch
    error_rate: float | None = None
    precision: float | None = None  # macro averages over the classes present
    recall: float | None = None
    f1: float | None = None
    confusion: list[list[int]] | None = None  # row = true class, column = predicted
    ms_per_sample: float | None = None  # batch-1 latency: mean (DAWNBench), median, sd, p90
    ms_per_sample_median: float | None = None
    ms_per_sample_sd: float | None = None
    ms_per_sample_p90: float | None = None
    throughput_per_s: float | None = None  # test images per second in large batches
    test_loss: float | None = None
    valid_acc: float | None = None
    valid_loss: float | None = None
    unswapped: list[str] | None = None  # nonlinearities a user's model kept (--allow-partial)
    learned_curves: list[dict] | None = None  # learnable activations at the end: layer, activation, x, y, initial
    # The workload's primary metric under its own name, and its direction (image classification:
    # error_rate, lower is better); None in runs stored before workloads (read them as error_rate).
    primary_metric: str | None = None
    primary_value: float | None = None
    higher_is_better: bool | None = None
    metrics: dict[str, float] | None = None  # every metric a non-classification workload reports (test split)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RunSummary":
        return _strict(cls, values, "a run summary")


SUMMARY_METRICS = tuple(f.name for f in fields(RunSummary) if f.name not in ("confusion", "unswapped",
                                                                             "learned_curves", "primary_metric",
                                                                             "higher_is_better", "metrics"))
EPOCH_METRICS = tuple(f.name for f in fields(EpochRecord) if f.name != "layers")


def check_epoch_metric(name: str) -> str:
    """``name`` if it is a per-epoch metric, else an error."""
    if name not in EPOCH_METRICS:
        raise RecordError(f"'{name}' is not an epoch metric. Metrics: {', '.join(EPOCH_METRICS)}")
    return name


def check_metric(name: str) -> str:
    """``name`` if it is a summary metric; a missing metric is an error, never a NaN column."""
    if name not in SUMMARY_METRICS:
        raise RecordError(f"'{name}' is not a run metric. Metrics: {', '.join(SUMMARY_METRICS)}")
    return name


@dataclass
class RunRecord:
    """One run as the store holds it."""

    key: str
    status: Status
    config: dict[str, Any]  # the resolved RunConfig, as stored
    provenance: dict[str, Any] = field(default_factory=dict)  # versions, device, threads, stack size, ...
    summary: RunSummary | None = None  # None until finished
    error: str | None = None
    attempts: int = 0

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def run_record(row: dict[str, Any]) -> RunRecord:
    """A RunRecord from a runs-table row with its JSON columns decoded."""
    return RunRecord(key=row["key"], status=Status(row["status"]), config=row["config"], provenance=row["provenance"],
                     summary=RunSummary.from_dict(row["summary"]) if row["summary"] else None, error=row["error"],
                     attempts=row["attempts"])
