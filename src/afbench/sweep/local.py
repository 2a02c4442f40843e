"""The local backend: worker processes on this machine claim runs (or stacks of
seeds) from the results database one by one, train them while holding core slots,
and record every epoch as it ends. Claims keep workers and concurrent sweeps apart."""

from __future__ import annotations

import ctypes
import multiprocessing
import queue
import signal
import time

from tqdm import tqdm

from afbench.config import RunConfig
from afbench.engine import train as engine
from afbench.engine.runtime import available_cores, set_threads
from afbench.errors import AfbenchError
from afbench.results import FINISHED, EpochRecord
from afbench.sweep import calibrate, slots
from afbench.sweep.jobs import Counts, Job, no_counts, record_failure, record_results, train_job
from afbench.sweep.options import Runtime
from afbench.sweep.prepared import DataCache
from afbench.store.database import Store


class LocalBackend:
    def __init__(self, runtime: Runtime = Runtime()) -> None:
        self.runtime = runtime
        self.schedule_used: dict | None = None  # the last plan, for the caller to show
        self.cache = DataCache(runtime.data_dir)

    def check(self, configs: list[RunConfig]) -> None:
        """Load every data set and build every model once now: bad data, or a user's
        model the activation swap cannot fully reach, fails before anything is written."""
        for config in {c.data_key() + (c.device,): c for c in configs}.values():
            self.cache.get(config)
        for config in {(c.model, c.dataset): c for c in configs}.values():
            engine.build_model(config, self.cache.get(config))

    def execute(self, configs: list[RunConfig], store: Store) -> Counts:
        """Train every config not finished in ``store``, with the calibrated plan."""
        started = time.time()
        cache = self.cache
        cache.load_all(configs, store)  # bad data fails now, before any run is claimed
        store.enqueue(configs)
        finished = {r.key for r in store.records() if r.status in FINISHED}
        pending = [c for c in configs if c.key() not in finished]
        schedule = self.schedule(pending, cache)
        store.set_meta("scheduler", schedule)
        self.schedule_used = schedule
        if pending and self.runtime.cost != "off":
            self.measure_cost(pending, cache, schedule, store)
        if schedule["workers"] == 1:
            return _work(configs, store, cache, schedule, self.runtime, started)
        return _spawn(configs, store, self.runtime, schedule, started)

    def measure_cost(self, pending: list[RunConfig], cache: DataCache, schedule: dict, store: Store) -> None:
        """The step time of every (model, activation) apart from training, under the
        sweep's own threads, before training starts (or reused from the store): what
        the report's time columns use. Its seconds and share are kept in meta.cost_profile."""
        from afbench.cost.api import profile_for_sweep

        by_data: dict[tuple, list[RunConfig]] = {}
        for config in pending:
            by_data.setdefault(config.data_key() + (config.device,), []).append(config)
        threads = schedule["threads"]
        for configs in by_data.values():
            prepared = cache.get(configs[0])
            with slots.reserve(threads):
                estimated = calibrate.estimate_s(configs[0], prepared, configs, threads)
                count = len({c.activation for c in configs}) + 1  # and the baseline the ratios are to
                budget = calibrate.cost_budget(self.runtime, estimated, count)
                if budget is None:
                    continue
                start = time.perf_counter()
                profile_for_sweep(configs, prepared, threads, store, budget_s=budget * count)  # rounds' total
                seconds = time.perf_counter() - start
            store.set_meta("cost_profile", {"seconds": round(seconds, 1), "estimated_training_s": round(estimated, 1),
                                            "share": round(seconds / max(estimated, 1e-9), 3),
                                            "budget_per_activation_s": round(budget, 1), "threads": threads})

    def schedule(self, pending: list[RunConfig], cache: DataCache) -> dict:
        if not pending:
            return {"workers": 1, "threads": self.runtime.threads or available_cores(), "how": "nothing to do"}
        sample = cache.get(pending[0])
        schedule = calibrate.plan(self.runtime, pending[0], sample, len(pending))
        schedule.update(calibrate.plan_stack(self.runtime, pending[0], sample,
                                             calibrate.largest_seed_group(pending), schedule["threads"]))
        return schedule


def _work(configs: list[RunConfig], store: Store, cache: DataCache, schedule: dict, runtime: Runtime,
          started: float, position: int = 0, progress: bool | None = None) -> Counts:
    """One worker: claim runs (or stacks of seeds) one by one and train them, holding core slots."""
    threads = set_threads(schedule["threads"])
    progress = runtime.progress if progress is None else progress
    counts = no_counts()
    overall = tqdm(total=len(configs), desc="runs", unit="run", disable=not progress, position=position)
    claimed_here: set[str] = set()
    concurrency = {"threads": threads, "concurrent_runs": schedule["workers"]}
    for config in configs:
        if config.key() in claimed_here:  # trained already, in a stack with an earlier seed
            continue
        with slots.reserve(threads):
            if not store.claim(config, retry_failed_before=started):
                counts["skipped"] += 1
                overall.update()
                continue
            group = [config] + _claim_seeds(config, configs, store, schedule.get("stack", 1) - 1, started)
            claimed_here.update(c.key() for c in group)
            outcomes = _train(Job(tuple(group), runtime.compile), store, cache, progress, position + 1, concurrency)
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


def _train(job: Job, store: Store, cache: DataCache, progress: bool, position: int, extra: dict) -> list[str]:
    """Train one job, recording each epoch as it ends and the outcome at the end."""
    bar = tqdm(total=job.configs[0].epochs * len(job.configs), desc=job.label, unit="epoch", leave=False,
               disable=not progress, position=position)
    keys = job.keys

    def on_epoch(member: int, record: EpochRecord) -> None:
        store.record_epoch(keys[member], record)
        bar.update()

    try:
        results = train_job(job, cache.get(job.configs[0]), on_epoch)
    except KeyboardInterrupt:
        for key in keys:
            store.release(key)
        raise
    except Exception as err:  # a failed job is recorded and the sweep goes on
        return record_failure(store, job, err)
    finally:
        bar.close()
    return record_results(store, job, results, extra)


def _die_with_parent() -> None:
    """Linux: a worker gets SIGKILL when its parent dies, so kill -9 of a sweep stops
    all of it and its runs are redone on resume (not finished by orphans)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker_main(configs: list[RunConfig], folder: str, runtime: Runtime, schedule: dict, started: float,
                 results) -> None:
    _die_with_parent()
    store = Store(folder)
    try:
        results.put(_work(configs, store, DataCache(runtime.data_dir), schedule, runtime, started, progress=False))
    finally:
        store.close()


def _spawn(configs: list[RunConfig], store: Store, runtime: Runtime, schedule: dict, started: float) -> Counts:
    """Worker processes share the list and the database; claims keep them apart."""
    ctx = multiprocessing.get_context("spawn")  # no inherited torch thread pools
    results = ctx.Queue()
    workers = [ctx.Process(target=_worker_main, args=(configs, str(store.folder), runtime, schedule, started,
                                                      results)) for _ in range(schedule["workers"])]
    for worker in workers:
        worker.start()
    total = no_counts()
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
