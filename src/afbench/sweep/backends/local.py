"""The local backend: jobs train on this machine, in worker processes, or in this
process when that is safe and saves starting one.

Worker processes (``workers``) run every job of a sweep that holds user code (a
user's model, an activation given as module:Name) and of every sweep with several
workers: a user's ``sys.exit``, ``os._exit``, crash or endless forward then fails one
run, not the sweep. A sweep of built-in models and activations with one worker
trains in this process (starting a worker costs a few seconds of imports)."""

from __future__ import annotations

from typing import Any, Callable, Iterator

from afbench import data as datasets
from afbench.config import RunConfig
from afbench.engine.runtime import available_cores, set_threads
from afbench.errors import AfbenchError
from afbench.store.database import Store
from afbench.sweep import calibrate, slots
from afbench.sweep.backends import tasks
from afbench.sweep.backends.base import CALL_TIMEOUT_S, RunTimeout, Sink, StoreFault, TaskFailed, time_limit
from afbench.sweep.backends.driver import check_and_drive
from afbench.sweep.backends.workers import Pool, Worker
from afbench.sweep.jobs import Counts, Job, describe, train_job
from afbench.sweep.options import Runtime
from afbench.sweep.prepared import DataCache



class LocalBackend:
    """Jobs on this machine: worker processes (user code, or several workers) or this process."""

    name = "local"

    def __init__(self, runtime: Runtime = Runtime()) -> None:
        self.runtime = runtime
        self.cache = DataCache(runtime.data_dir)  # this process's copy: class counts, in-process training
        self.isolate = runtime.isolate is True  # decided per sweep in ``check`` when "auto"
        self.schedule_used: dict | None = None  # the last plan, for the caller to show
        self._worker: Worker | None = None  # the worker that ran the checks, reused for training
        self._pool: Pool | None = None

    def execute(self, configs: list[RunConfig], store: Store, baseline: str | None = None) -> Counts:
        """Check, then train every unfinished config into ``store`` (``driver.check_and_drive``)."""
        return check_and_drive(self, configs, store, baseline)

    def check(self, configs: list[RunConfig]) -> None:
        """Bad data, or a model the activation swap cannot fully reach, fails now. With user
        code the models are built in a worker: a user's exit there is a failed run later."""
        if self.runtime.isolate == "auto":
            self.isolate = tasks.uses_user_code(configs) or self.runtime.workers not in ("auto", 1)
        if not self.isolate:
            try:
                with time_limit(self.runtime.run_timeout or CALL_TIMEOUT_S, "checking the user code"):
                    tasks.check(self.cache, configs)
            except RunTimeout:
                pass  # code that hangs: each of its runs fails at its own time limit, the sweep goes on
            return
        for config in {c.data_key() + (c.device,): c for c in configs}.values():
            self.cache.get(config)  # data is afbench's own code: load it here, with its errors
        tasks.check_where_it_runs(self, configs)

    def plan(self, pending: list[RunConfig]) -> dict:
        """Workers x threads and stack size, calibrated (``tasks.plan``) where user code may run."""
        cores = available_cores()
        if not pending:  # given settings are capped as calibrate.plan caps them, though nothing runs
            given = self.runtime.threads or cores
            schedule = {"workers": 1, "threads": min(given, cores), "cores": cores,
                        "how": f"nothing to do; capped to the {cores} cores" if given > cores else "nothing to do"}
        else:
            try:
                schedule = self.call(tasks.plan, self.runtime, pending, calibrate.largest_stack_group(pending))
            except TaskFailed as failure:  # the user's model failed in it: its runs will say how
                schedule = {"workers": 1, "threads": min(self.runtime.threads or cores, cores), "stack": 1,
                            "cores": cores, "how": f"not calibrated: {failure.reason.splitlines()[0]}"}
        self.schedule_used = dict(schedule)
        schedule["provenance"] = {"threads": schedule["threads"], "concurrent_runs": schedule["workers"]}
        return schedule

    def data(self, config: RunConfig) -> datasets.Prepared:
        return self.cache.get(config)

    def call(self, task: Callable[..., Any], *args: Any, timeout_s: float | None = None) -> Any:
        """``task(cache, *args)`` in a worker when the sweep holds user code (within
        ``timeout_s``, default the run_timeout or CALL_TIMEOUT_S), else here."""
        if not self.isolate:
            try:
                with time_limit(timeout_s or self.runtime.run_timeout, f"{task.__name__} in this process"):
                    return task(self.cache, *args)
            except Exception as error:
                raise TaskFailed(describe(error), isinstance(error, AfbenchError)) from error
        if self._worker is None or not self._worker.process.is_alive():
            self._worker = Worker(self.runtime.data_dir)
        try:
            return self._worker.call(task, args, timeout_s or self.runtime.run_timeout or CALL_TIMEOUT_S)
        except TaskFailed:
            self._worker.stop(kill=True)
            self._worker = None
            raise

    def run(self, jobs: Iterator[Job], sink: Sink, plan: dict) -> None:
        threads, timeout_s = plan["threads"], plan.get("run_timeout_s")
        if self.isolate or calibrate.side_by_side(plan):  # several runs at once: one process each
            self._pool = Pool(self.runtime.data_dir, self._worker, self.cache)
            self._worker = None
            self._pool.run(jobs, sink, plan["workers"], threads, timeout_s)
            return
        set_threads(threads)
        for job in jobs:
            with slots.reserve(threads):
                sink.started(job)
                try:
                    with time_limit(timeout_s, f"training {job.label}"):
                        results = train_job(job, self.cache.get(job.configs[0]),
                                            lambda member, record: sink.epoch(job, member, record))
                except StoreFault:
                    raise
                except Exception as error:  # a failed job is recorded and the sweep goes on
                    sink.failed(job, describe(error))
                    continue
            sink.finished(job, results)

    def close(self, kill: bool = False) -> None:
        for pool in [self._pool] if self._pool else []:
            pool.close(kill=kill)
        if self._worker is not None:
            self._worker.stop(kill=kill)
        self._pool = self._worker = None
