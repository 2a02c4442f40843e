"""What a backend executes: a job is one run, or runs that differ only in their
seed or activation, trained as a stack. Training a job happens here, once, for every backend; recording
its outcome is the driver's (``backends.driver``)."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Callable

from afbench import data as datasets
from afbench.config import RunConfig
from afbench.engine import train as engine
from afbench.results import EpochRecord

Counts = dict[str, int]  # {"ran": ..., "skipped": ..., "failed": ...}


def no_counts() -> Counts:
    return {"ran": 0, "skipped": 0, "failed": 0}


@dataclass(frozen=True)
class Job:
    configs: tuple[RunConfig, ...]  # one run, or runs that differ in seed or activation alone (equal fuse keys)
    compile: bool = False
    latency: bool = True  # each run times its batch-1 latency; False where the sweep's cost profile measured it alone

    @property
    def keys(self) -> list[str]:
        return [c.key() for c in self.configs]

    @property
    def label(self) -> str:
        first = self.configs[0]
        seeds = ",".join(dict.fromkeys(str(c.seed) for c in self.configs))
        activations = ",".join(dict.fromkeys(c.activation for c in self.configs))
        stacked = " stacked" if len(self.configs) > 1 else f" lr {first.lr:g}"
        return f"{activations} {first.model}/{first.dataset} seed{'s' if ',' in seeds else ''} " \
               f"{seeds}{stacked}"


def train_job(job: Job, prepared: datasets.Prepared,
              on_epoch: Callable[[int, EpochRecord], None] | None = None) -> list[engine.RunResult]:
    """Train a job; ``on_epoch(member, record)`` as each member's epoch ends."""
    if len(job.configs) == 1:
        report = (lambda record: on_epoch(0, record)) if on_epoch else None
        return [engine.train(job.configs[0], prepared, on_epoch=report, compile=job.compile, latency=job.latency)]
    return engine.train_stack(list(job.configs), prepared, on_epoch=on_epoch, compile=job.compile,
                              latency=job.latency)


def describe(error: BaseException) -> str:
    """A failed run's stored reason: the error on the first line, its traceback after."""
    trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return f"{type(error).__name__}: {error}\n{trace}"
