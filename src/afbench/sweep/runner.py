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
from afbench.errors import AfbenchError
from afbench.sweep import slots
from afbench.sweep.store import Store


@dataclass(frozen=True)
class Runtime:
    """How to execute, not what: none of this changes a run's identity."""

    data_dir: str | Path | None = None
    threads: int | None = None  # torch threads per worker; None = decided by the plan
    progress: bool = True
    workers: int | str = "auto"  # worker processes, or "auto": calibrate (see plan())
    stack: int | str = "auto"  # seeds trained as one stack: 1 = never, k = up to k, "auto": calibrate
    compile: bool = False  # training steps through torch.compile (CUDA graphs on a GPU); see engine.train


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
MAX_STACK = 8
STACK_GAIN = 1.1  # stack only when it trains at least this much faster per run


def largest_seed_group(configs: list[RunConfig]) -> int:
    """How many runs share one stack key (differ only in their seed), at most."""
    sizes: dict[str, int] = {}
    for config in configs:
        sizes[config.stack_key()] = sizes.get(config.stack_key(), 0) + 1
    return max(sizes.values(), default=0)


def plan_stack(runtime: Runtime, sample: RunConfig, prepared: datasets.Prepared, group: int, threads: int) -> dict:
    """How many seeds to train as one stack. "auto" times a few steps of one run and
    of a stack of ``group`` seeds (at most MAX_STACK) and stacks when that trains
    STACK_GAIN faster per run (measured here: 6 MLPs stacked train 2x faster per run
    on a 2-core CPU; stacked LeNets train slower, since grouped convolutions are)."""
    if runtime.stack != "auto":
        return {"stack": max(1, min(int(runtime.stack), group or 1)), "stack_how": "given"}
    size = min(group, MAX_STACK)
    if size < 2:
        return {"stack": 1, "stack_how": "no seeds to stack"}
    torch.set_num_threads(threads)
    with slots.reserve(threads):
        alone = engine.time_training_steps(sample, prepared, CALIBRATION_STEPS)
        stacked = engine.time_training_steps(sample, prepared, CALIBRATION_STEPS, stack=size)
    gain = size * alone / stacked
    return {"stack": size if gain >= STACK_GAIN else 1, "stack_how": "calibrated", "stack_gain": round(gain, 2)}


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
    if pending:
        schedule.update(plan_stack(runtime, pending[0], cache.get(pending[0]), largest_seed_group(pending),
                                   schedule["threads"]))
    store.set_meta("scheduler", schedule)
    if schedule["workers"] == 1:
        return _work(configs, store, cache, schedule["threads"], runtime.progress, started, schedule.get("stack", 1),
                     compile=runtime.compile)
    return _spawn(configs, store, runtime, schedule, started)


def _work(configs: list[RunConfig], store: Store, cache: "_DataCache", threads: int, progress: bool,
          started: float, stack: int = 1, position: int = 0, compile: bool = False) -> dict[str, int]:
    """One worker: claim runs (or stacks of seeds) one by one and train them, holding core slots."""
    set_threads(threads)
    counts = {"ran": 0, "skipped": 0, "failed": 0}
    overall = tqdm(total=len(configs), desc="runs", unit="run", disable=not progress, position=position)
    claimed_here: set[str] = set()
    for config in configs:
        if config.key() in claimed_here:  # trained already, in a stack with an earlier seed
            continue
        with slots.reserve(threads):
            if not store.claim(config, retry_failed_before=started):
                counts["skipped"] += 1
                overall.update()
                continue
            group = [config] + _claim_seeds(config, configs, store, stack - 1, started)
            claimed_here.update(c.key() for c in group)
            if len(group) == 1:
                outcomes = [_train_one(config, store, cache, progress, position + 1, compile)]
            else:
                outcomes = _train_stack(group, store, cache, progress, position + 1, compile)
        for outcome in outcomes:
            counts[outcome] += 1
            overall.update()
    overall.close()
    return counts


def _claim_seeds(config: RunConfig, configs: list[RunConfig], store: Store, wanted: int,
                 started: float) -> list[RunConfig]:
    """Claim up to ``wanted`` more seeds of ``config`` to train in its stack."""
    group: list[RunConfig] = []
    for other in configs:
        if len(group) >= wanted:
            break
        if other.stack_key() == config.stack_key() and other.key() != config.key() \
                and store.claim(other, retry_failed_before=started):
            group.append(other)
    return group


def _train_stack(group: list[RunConfig], store: Store, cache: "_DataCache", progress: bool,
                 position: int, compile: bool) -> list[str]:
    keys = [c.key() for c in group]
    first = group[0]
    label = f"{first.activation} {first.model}/{first.dataset} seeds {','.join(str(c.seed) for c in group)} stacked"
    bar = tqdm(total=first.epochs * len(group), desc=label, unit="epoch", leave=False, disable=not progress,
               position=position)

    def on_epoch(member: int, record: dict) -> None:
        store.record_epoch(keys[member], record)
        bar.update()

    try:
        results = engine.train_stack(group, cache.get(first), on_epoch=on_epoch, compile=compile)
    except KeyboardInterrupt:
        for key in keys:
            store.release(key)
        raise
    except Exception as err:  # the whole stack failed: recorded for each run, and the sweep goes on
        for key in keys:
            store.fail(key, f"{type(err).__name__}: {err}\n{traceback.format_exc()}")
        tqdm.write(f"stack failed: {label}: {type(err).__name__}: {err}")
        return ["failed"] * len(group)
    finally:
        bar.close()
    for key, result in zip(keys, results):
        store.finish(key, result.status, result.summary, result.provenance)
    return ["ran"] * len(group)


def _train_one(config: RunConfig, store: Store, cache: "_DataCache", progress: bool, position: int,
               compile: bool) -> str:
    key = config.key()
    label = f"{config.activation} {config.model}/{config.dataset} seed {config.seed} lr {config.lr:g}"
    bar = tqdm(total=config.epochs, desc=label, unit="epoch", leave=False, disable=not progress, position=position)

    def on_epoch(record: dict) -> None:
        store.record_epoch(key, record)
        bar.set_postfix(test_acc=f"{record.get('test_acc', float('nan')):.4f}")
        bar.update()

    try:
        result = engine.train(config, cache.get(config), on_epoch=on_epoch, compile=compile)
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


def _worker_main(configs: list[RunConfig], folder: str, runtime: Runtime, threads: int, stack: int,
                 started: float, results) -> None:
    _die_with_parent()
    store = Store(folder)
    try:
        results.put(_work(configs, store, _DataCache(runtime), threads, progress=False, started=started,
                          stack=stack, compile=runtime.compile))
    finally:
        store.close()


def _spawn(configs: list[RunConfig], store: Store, runtime: Runtime, schedule: dict,
           started: float) -> dict[str, int]:
    """Worker processes share the list and the database; claims keep them apart."""
    ctx = multiprocessing.get_context("spawn")  # no inherited torch thread pools
    results = ctx.Queue()
    workers = [ctx.Process(target=_worker_main, args=(configs, str(store.folder), runtime, schedule["threads"],
                                                      schedule.get("stack", 1), started, results)) for _ in range(schedule["workers"])]
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
        raise AfbenchError(f"{len(workers) - reported} of {len(workers)} worker processes died without finishing "
                           f"(exit codes {codes}); rerun the same command to resume")
    # Each run is claimed by exactly one worker, so every worker skipped the others' runs.
    total["skipped"] -= (len(workers) - 1) * len(configs)
    return total
