"""Run a list of configs into a results store: skip what is done, redo what a dead
process left, record every epoch as it ends, and keep going past failures."""

from __future__ import annotations

import ctypes
import multiprocessing
import queue
import signal
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from afbench import data as datasets
from afbench.config import RunConfig
from afbench.engine import train as engine
from afbench.engine.runtime import available_cores, resolve_device, set_threads
from afbench.sweep import slots
from afbench.sweep.store import Store


@dataclass(frozen=True)
class Runtime:
    """How to execute, not what: none of this changes a run's identity."""

    data_dir: str | Path | None = None
    threads: int | None = None  # torch threads per worker; None = decided by the plan
    progress: bool = True
    workers: int | str = "auto"  # worker processes, or "auto": calibrate (see plan())


def prepare_for(config: RunConfig, raw: datasets.ImageData) -> datasets.Prepared:
    """The tensors a run trains on: every backend prepares data through here."""
    return datasets.prepare(raw, device=config.device, split=config.split, valid_fraction=config.valid_fraction,
                            whitening=config.whitening, train_subset=config.train_subset)


def record_class_counts(store: Store, dataset: str, prepared: datasets.Prepared) -> None:
    """Samples per class and split, for the report's histogram."""
    counts = store.meta().get("class_counts", {})
    counts[dataset] = {"classes": list(prepared.classes), "counts": datasets.class_counts(prepared)}
    store.set_meta("class_counts", counts)


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
            self.prepared[key] = prepare_for(config, raw)
        return self.prepared[key]


def _load_all(configs: list[RunConfig], cache: _DataCache, store: Store) -> None:
    for config in {c.data_key() + (c.device,): c for c in configs}.values():
        record_class_counts(store, config.dataset, cache.get(config))


def resolve(configs: list[RunConfig], device: str = "auto") -> list[RunConfig]:
    """Fix the device type into each config: results on CPU and GPU are different runs."""
    resolved = resolve_device(device).type
    return [c.with_(device=resolved) for c in configs]


CALIBRATION_STEPS = 12
SPAWN_WORTH_S = 120.0  # estimated training seconds below which one process is faster than spawning workers


def _steps_per_s(config: RunConfig, prepared: datasets.Prepared, threads: int) -> float:
    """Training steps per second of ``config``'s model with ``threads`` threads."""
    torch.set_num_threads(threads)
    return CALIBRATION_STEPS / engine.time_training_steps(config, prepared, CALIBRATION_STEPS)


def plan(runtime: Runtime, sample: RunConfig, prepared: datasets.Prepared, pending: int) -> dict:
    """Workers x threads for this machine, never more threads than cores.

    Explicit settings win. "auto" on a CPU with several cores and runs times a few
    steps of the first run with all cores in one process and with one thread, and
    picks one 1-thread worker per core when that trains faster in total (measured
    here: two 1-thread LeNet processes beat one 2-thread process slightly).
    """
    cores = available_cores()
    if runtime.workers != "auto":
        workers = max(1, min(int(runtime.workers), cores, max(pending, 1)))
        return {"workers": workers, "threads": runtime.threads or max(1, cores // workers), "cores": cores,
                "how": "given"}
    if runtime.threads:  # threads given: as many workers as fit on the cores
        workers = max(1, min(cores // runtime.threads, max(pending, 1)))
        return {"workers": workers, "threads": runtime.threads, "cores": cores, "how": "from --threads"}
    if sample.device != "cpu" or cores == 1 or pending < 2:
        return {"workers": 1, "threads": cores, "cores": cores, "how": "default"}
    with slots.reserve(cores):  # measure on a quiet machine, not against another sweep
        together = _steps_per_s(sample, prepared, cores)
        alone = _steps_per_s(sample, prepared, 1)
    steps = pending * sample.epochs * -(-len(prepared.train) // sample.batch_size)
    if steps / together < SPAWN_WORTH_S:  # starting workers (torch import, data) would cost more than it saves
        return {"workers": 1, "threads": cores, "cores": cores, "how": "short sweep",
                "estimated_s": round(steps / together, 1)}
    workers = min(cores, pending)
    parallel = workers * alone  # independent processes on separate cores
    choice = {"workers": workers, "threads": 1} if parallel > 1.05 * together else {"workers": 1, "threads": cores}
    return {**choice, "cores": cores, "how": "calibrated", "steps_per_s_all_cores": round(together, 2),
            "steps_per_s_one_thread": round(alone, 2)}


def run(configs: list[RunConfig], store: Store, runtime: Runtime = Runtime()) -> dict[str, int]:
    """Execute every config not already finished in ``store``; returns what this
    call did: {"ran": ..., "skipped": ..., "failed": ...}."""
    started = time.time()
    cache = _DataCache(runtime)
    _load_all(configs, cache, store)  # bad data fails now, before any run is claimed
    store.enqueue(configs)
    finished = {r["key"] for r in store.runs() if r["status"] in ("done", "diverged")}
    pending = [c for c in configs if c.key() not in finished]
    schedule = plan(runtime, pending[0], cache.get(pending[0]), len(pending)) if pending else \
        {"workers": 1, "threads": runtime.threads or available_cores(), "how": "nothing to do"}
    store.set_meta("scheduler", schedule)
    if schedule["workers"] == 1:
        return _work(configs, store, cache, schedule["threads"], runtime.progress, started)
    return _spawn(configs, store, runtime, schedule, started)


def _work(configs: list[RunConfig], store: Store, cache: "_DataCache", threads: int, progress: bool,
          started: float, position: int = 0) -> dict[str, int]:
    """One worker: claim runs one by one and train them, holding core slots."""
    set_threads(threads)
    counts = {"ran": 0, "skipped": 0, "failed": 0}
    overall = tqdm(total=len(configs), desc="runs", unit="run", disable=not progress, position=position)
    for config in configs:
        with slots.reserve(threads):
            if not store.claim(config, retry_failed_before=started):
                counts["skipped"] += 1
                overall.update()
                continue
            outcome = _train_one(config, store, cache, progress, position + 1)
        counts[outcome] += 1
        overall.update()
    overall.close()
    return counts


def _train_one(config: RunConfig, store: Store, cache: "_DataCache", progress: bool, position: int) -> str:
    key = config.key()
    label = f"{config.activation} {config.model}/{config.dataset} seed {config.seed} lr {config.lr:g}"
    bar = tqdm(total=config.epochs, desc=label, unit="epoch", leave=False, disable=not progress, position=position)

    def on_epoch(record: dict) -> None:
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
        tqdm.write(f"run failed: {label}: {type(err).__name__}: {err}")
        return "failed"
    finally:
        bar.close()
    store.finish(key, result.status, result.summary, result.provenance)
    return "ran"


def _die_with_parent() -> None:
    """Linux: a worker gets SIGKILL when its parent dies, so kill -9 of a sweep stops
    all of it and its runs are redone on resume (not finished by orphans)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker_main(configs: list[RunConfig], folder: str, runtime: Runtime, threads: int, started: float,
                 results) -> None:
    _die_with_parent()
    store = Store(folder)
    try:
        results.put(_work(configs, store, _DataCache(runtime), threads, progress=False, started=started))
    finally:
        store.close()


def _spawn(configs: list[RunConfig], store: Store, runtime: Runtime, schedule: dict,
           started: float) -> dict[str, int]:
    """Worker processes share the list and the database; claims keep them apart."""
    ctx = multiprocessing.get_context("spawn")  # no inherited torch thread pools
    results = ctx.Queue()
    workers = [ctx.Process(target=_worker_main, args=(configs, str(store.folder), runtime, schedule["threads"],
                                                      started, results)) for _ in range(schedule["workers"])]
    for worker in workers:
        worker.start()
    total = {"ran": 0, "skipped": 0, "failed": 0}
    bar = tqdm(total=len(configs), desc=f"runs ({schedule['workers']} workers)", unit="run",
               disable=not runtime.progress)
    try:
        reported = 0
        while reported < len(workers):
            try:
                counts = results.get(timeout=1.0)
                reported += 1
                for k in total:
                    total[k] += counts[k]
            except queue.Empty:
                if not any(w.is_alive() for w in workers) and results.empty():
                    break
            done = sum(v for k, v in store.counts().items() if k in ("done", "diverged", "failed"))
            bar.n = min(done, len(configs))
            bar.refresh()
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
        bar.close()
    if reported < len(workers):
        codes = [w.exitcode for w in workers]
        raise RuntimeError(f"{len(workers) - reported} of {len(workers)} worker processes died without finishing "
                           f"(exit codes {codes}); rerun the same command to resume")
    # Each run is claimed by exactly one worker, so every worker skipped the others' runs.
    total["skipped"] -= (len(workers) - 1) * len(configs)
    return total
