"""Results databases of a non-image workload for the report's tests, written directly
(no training): regression runs whose test mse (their primary metric) the test chooses."""

from __future__ import annotations

from pathlib import Path

from afbench.config import RunConfig
from afbench.results import EpochRecord, RunSummary
from afbench.store.database import Store
from report_sweeps import close_with, finish_run


def fake_workload_sweep(folder: Path, values: dict[str, list[float]], metric: str = "mse",
                        higher_is_better: bool = False, workload: str = "regression", dataset: str = "special:j0",
                        epochs: int = 2, meta: dict | None = None, **config) -> Path:
    """Per activation, one finished run per seed whose final test ``metric`` is the given value."""
    store = Store(folder)
    for activation, per_seed in values.items():
        for seed, value in enumerate(per_seed):
            run = RunConfig(activation=activation, seed=seed, device="cpu", epochs=epochs, workload=workload,
                            dataset=dataset, model="mlp", **config)
            store.claim(run)
            for epoch in range(1, epochs + 1):
                store.record_epoch(run.key(), EpochRecord(epoch, 0.5, float("nan"), 1.0 * epoch, 1.0 * epoch,
                                                          train_steps=10 * epoch, test_loss=value,
                                                          test_metric=value))
            summary = RunSummary(params=1000, epochs_run=epochs, total_train_s=1.0, train_steps=10 * epochs,
                                 test_loss=value, primary_metric=metric, primary_value=value,
                                 higher_is_better=higher_is_better, metrics={metric: value, "loss": value})
            finish_run(store, run, summary)
    return close_with(store, folder, meta)
