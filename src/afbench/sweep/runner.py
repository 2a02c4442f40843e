"""Run a list of configs into a results store: skip what is done, redo what a dead
process left, record every epoch as it ends, and keep going past failures."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from afbench import data as datasets
from afbench.config import RunConfig
from afbench.engine import train as engine
from afbench.engine.runtime import resolve_device, set_threads
from afbench.sweep.store import Store


@dataclass(frozen=True)
class Runtime:
    """How to execute, not what: none of this changes a run's identity."""

    data_dir: str | Path | None = None
    threads: int | None = None  # torch threads; None = every available core
    progress: bool = True


class _DataCache:
    """Load and prepare each distinct data set once per process."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.prepared: dict[tuple, datasets.Prepared] = {}

    def get(self, config: RunConfig) -> datasets.Prepared:
        key = config.data_key() + (config.device,)
        if key not in self.prepared:
            raw = datasets.load(config.dataset, self.runtime.data_dir, image_size=config.image_size,
                                coarse=config.coarse)
            self.prepared[key] = datasets.prepare(raw, device=config.device, split=config.split,
                                                  valid_fraction=config.valid_fraction,
                                                  whitening=config.whitening, train_subset=config.train_subset)
        return self.prepared[key]


def _load_all(configs: list[RunConfig], cache: _DataCache, store: Store) -> None:
    counts = store.meta().get("class_counts", {})
    for config in configs:
        prepared = cache.get(config)
        counts[config.dataset] = {"classes": list(prepared.classes), "counts": datasets.class_counts(prepared)}
    store.set_meta("class_counts", counts)


def resolve(configs: list[RunConfig], device: str = "auto") -> list[RunConfig]:
    """Fix the device type into each config: results on CPU and GPU are different runs."""
    resolved = resolve_device(device).type
    return [c.with_(device=resolved) for c in configs]


def run(configs: list[RunConfig], store: Store, runtime: Runtime = Runtime(),
        on_result: Callable[[RunConfig, engine.RunResult], None] | None = None) -> dict[str, int]:
    """Execute every config not already finished in ``store``. Returns counts of
    what this call did: {"ran": ..., "skipped": ..., "failed": ...}."""
    threads = set_threads(runtime.threads)
    store.set_meta("threads", threads)
    cache = _DataCache(runtime)
    _load_all(configs, cache, store)  # bad data fails now, before any run is claimed
    store.enqueue(configs)
    counts = {"ran": 0, "skipped": 0, "failed": 0}
    overall = tqdm(total=len(configs), desc="runs", unit="run", disable=not runtime.progress, position=0)
    for config in configs:
        if not store.claim(config):
            counts["skipped"] += 1
            overall.update()
            continue
        key = config.key()
        label = f"{config.activation} {config.model}/{config.dataset} seed {config.seed} lr {config.lr:g}"
        epochs_bar = tqdm(total=config.epochs, desc=label, unit="epoch", leave=False,
                          disable=not runtime.progress, position=1)

        def on_epoch(record: dict, key=key, bar=epochs_bar) -> None:
            store.record_epoch(key, record)
            bar.set_postfix(test_acc=f"{record.get('test_acc', float('nan')):.4f}")
            bar.update()

        try:
            result = engine.train(config, cache.get(config), on_epoch=on_epoch)
        except KeyboardInterrupt:
            store.release(key)
            raise
        except Exception as err:  # a failed run is recorded and the sweep goes on
            store.fail(key, f"{type(err).__name__}: {err}\n{traceback.format_exc()}")
            counts["failed"] += 1
            tqdm.write(f"run failed: {label}: {type(err).__name__}: {err}")
        else:
            store.finish(key, result.status, result.summary, result.provenance)
            counts["ran"] += 1
            if on_result:
                on_result(config, result)
        finally:
            epochs_bar.close()
        overall.update()
    overall.close()
    return counts
