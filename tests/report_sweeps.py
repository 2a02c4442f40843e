"""Results databases for the report's tests, written directly (no training): the
report's input alone, with test errors chosen by the test."""

from __future__ import annotations

from pathlib import Path

from afbench.config import RunConfig
from afbench.results import EpochRecord, RunSummary, Status
from afbench.store.database import Store

BASE = [0.10, 0.12, 0.11, 0.13, 0.10, 0.12, 0.11, 0.14]  # relu's test error per seed


def fake_sweep(folder: Path, errors: dict[str, list[float]], epochs: int = 2, meta: dict | None = None,
               **config) -> Path:
    """A database holding, per activation, one finished run per seed with the given final
    test error, and ``epochs`` epochs whose error falls toward it."""
    store = Store(folder)
    for activation, values in errors.items():
        for seed, error in enumerate(values):
            run = RunConfig(activation=activation, seed=seed, device="cpu", epochs=epochs, **config)
            store.claim(run)
            for epoch in range(1, epochs + 1):
                at = error + 0.3 * (0.4 ** (epoch - 1)) if epoch < epochs else error
                store.record_epoch(run.key(), EpochRecord(epoch, 0.5, 1 - at, 1.0 * epoch, 1.0 * epoch,
                                                          train_steps=10 * epoch, test_loss=at, test_acc=1 - at))
            summary = RunSummary(params=1000, epochs_run=epochs, total_train_s=1.0, train_steps=10 * epochs)
            summary.accuracy, summary.error_rate, summary.f1 = 1 - error, error, 1 - error
            finish_run(store, run, summary)
    return close_with(store, folder, meta)


def finish_run(store: Store, run: RunConfig, summary: RunSummary) -> None:
    """Store ``run`` as done with ``summary`` (and a batch-1 latency of 0.1 ms)."""
    summary.ms_per_sample = 0.1
    store.finish(run.key(), Status.DONE, summary, {"stack_size": 1})


def close_with(store: Store, folder: Path, meta: dict | None) -> Path:
    """Write ``meta`` into the store, close it; the folder."""
    for key, value in (meta or {}).items():
        store.set_meta(key, value)
    store.close()
    return folder
