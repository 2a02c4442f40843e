"""The one sweep driver every backend runs under: it enqueues the runs, plans, measures
the cost profile, claims each job as the backend asks for the next, records every epoch
and outcome, and releases what an interruption leaves unfinished. Only this process
writes the results database.

Faults say so and lose nothing: a database that cannot be written (disk full, made
read-only) or a results folder deleted mid-sweep stops the sweep with one AfbenchError
saying what was kept and how to resume; SIGINT and SIGTERM stop it with
``errors.Interrupted`` and no run left marked running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import sys
import threading
import time
from typing import Iterator

from tqdm import tqdm

from afbench.config import RunConfig
from afbench.cost import api as cost
from afbench.errors import AfbenchError, Interrupted
from afbench.results import FINISHED
from afbench.store.cost import save_cost
from afbench.store.database import Store
from afbench.sweep import calibrate
from afbench.sweep.backends import tasks
from afbench.sweep.backends.base import Backend, StoreFault, TaskFailed
from afbench.sweep.backends.workers import Interrupt
from afbench.sweep.jobs import Counts, Job, no_counts
from afbench.sweep.prepared import record_class_counts



class ProgressBar(tqdm):
    """No monitor thread: the bar moves with every run anyway, and a process without
    other threads may fork safely (the report draws figures in a forked child,
    report.pngs). A subclass, so that a library user's own tqdm bars keep theirs."""
    monitor_interval = 0


RUN_TIMEOUT_FACTOR = 20  # default per-run time limit: this many times the calibrated estimate of a run ...
MIN_RUN_TIMEOUT_S = 60.0  # ... and never less than a minute (a busy machine is slower than its calibration)
# provenance["latency"] of runs that did not time their own batch-1 latency
LATENCY_FROM_PROFILE = "not timed in the run: the sweep's cost profile measured it alone"
LATENCY_BESIDE = ("not timed in the run: runs trained side by side, with no cost profile to measure it alone "
                  "(afbench cost measures it)")
COST_TIMEOUT_S = 900.0  # the cost profile's task: budgets are at most 12 s per activation, plus warm-ups


class Recorder:
    """The sink backends report to: every write goes to the store through ``write``."""

    def __init__(self, store: Store, configs: list[RunConfig]) -> None:
        self.store, self.total, self.plan = store, len(configs), {}
        self.inode = os.stat(store.path).st_ino
        self.counts = no_counts()
        self.running: set[str] = set()  # claimed here, not yet finished: released on interruption
        self.finished_before: set[str] = set()
        self.saved = 0  # finished runs of this sweep in the store (before it started, and since)
        self.bar = ProgressBar(disable=True)

    def start(self, plan: dict, progress: bool) -> None:
        """Training begins under ``plan``: show progress over every run of the sweep."""
        self.plan = plan
        workers = plan.get("workers") or 0
        self.bar = ProgressBar(total=self.total, desc="runs" + (f" ({workers} workers)" if workers > 1 else ""),
                        unit="run", disable=not progress)

    def write(self, action, *args):
        """Do one database write; a fault ends the sweep with what was kept and how to resume."""
        try:
            if os.stat(self.store.path).st_ino != self.inode:
                raise FileNotFoundError
        except FileNotFoundError:
            raise StoreFault(f"the results folder {self.store.folder} was deleted or moved while the sweep ran: "
                             f"the {self.saved} runs saved in it went with it and nothing more could be saved. "
                             "Rerun the same command to run the sweep again") from None
        try:
            return action(*args)
        except (sqlite3.Error, OSError) as error:
            raise StoreFault(f"cannot write the results database {self.store.path}: {error} (a full disk, or a "
                             f"file or folder made read-only?). Kept: the {self.saved} of {self.total} runs saved "
                             "before it; the runs in progress are lost. Free space or restore write access, then "
                             "rerun the same command to resume: saved runs are not trained again") from None

    def started(self, job: Job) -> None:
        pass

    def epoch(self, job: Job, member: int, record) -> None:
        self.write(self.store.record_epoch, job.keys[member], record)

    def finished(self, job: Job, results: list) -> None:
        extra = self.plan.get("provenance", {})
        for key, result in zip(job.keys, results):
            self.write(self.store.finish, key, result.status, result.summary, {**result.provenance, **extra})
            self._settled(key, "ran")

    def failed(self, job: Job, reason: str) -> None:
        """Every run of a job that raised, died or overran is marked failed with the reason;
        the sweep goes on, and the next sweep retries them."""
        for key in job.keys:
            self.write(self.store.fail, key, reason)
            self._settled(key, "failed")
        tqdm.write(f"run failed: {job.label}: {reason.splitlines()[0]}", file=sys.stderr)

    def skipped(self) -> None:
        self.counts["skipped"] += 1
        self.bar.update()

    def _settled(self, key: str, outcome: str) -> None:
        self.running.discard(key)
        self.counts[outcome] += 1
        self.saved += outcome == "ran"
        self.bar.update()

    def release_running(self) -> None:
        """Give claimed runs back to the queue (their epochs go): a rerun trains them from the start."""
        for key in sorted(self.running):
            with contextlib.suppress(Exception):
                self.store.release(key)
        self.running.clear()


def claims(configs: list[RunConfig], store: Store, recorder: Recorder, stack: int, started: float,
           by_activation: bool = False, apart: set[str] = frozenset()) -> Iterator[Job]:
    """Jobs claimed one by one as the backend asks: a run, or up to ``stack`` runs that
    differ only in their seed (and, ``by_activation``, their activation, except the
    activations ``apart``, which stack only their own seeds), that no other process
    holds. A run that failed since ``started`` is not retried in this sweep; finished
    runs and runs alive elsewhere are skipped."""
    def same(config: RunConfig) -> str:
        return config.fuse_key() if by_activation and config.activation not in apart else config.stack_key()

    taken: set[str] = set()
    for config in configs:
        if config.key() in taken:  # trained already, in a stack with an earlier seed
            continue
        if not recorder.write(store.claim, config, started):
            recorder.skipped()
            continue
        group = [config]
        for other in configs:
            if len(group) >= stack:
                break
            if same(other) == same(config) and other.key() not in taken | {config.key()} \
                    and recorder.write(store.claim, other, started):
                group.append(other)
        taken.update(c.key() for c in group)
        recorder.running.update(c.key() for c in group)
        yield Job(tuple(group), recorder.plan.get("compile", False), recorder.plan.get("run_latency", True))


@contextlib.contextmanager
def _on_stop_signals(handler) -> Iterator[None]:
    """SIGINT and SIGTERM handled by ``handler`` inside the block, in the main thread
    (elsewhere no signal can land: nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def _raise_interrupt(signum, frame):
    raise Interrupt(signum)


def stop_signals():
    """SIGINT and SIGTERM raise ``Interrupt`` in this (the main) thread while the sweep runs."""
    return _on_stop_signals(_raise_interrupt)


def stop_signals_ignored():
    """SIGINT and SIGTERM ignored inside the block: the sweep is already stopping, and its
    workers and claimed runs must be let go of whole."""
    return _on_stop_signals(signal.SIG_IGN)


def default_baseline(configs: list[RunConfig]) -> str:
    """relu when the sweep trains it, else its first activation."""
    names = list(dict.fromkeys(c.activation for c in configs))
    return "relu" if "relu" in names else names[0]


def check_and_drive(backend: Backend, configs: list[RunConfig], store: Store, baseline: str | None = None) -> Counts:
    """``backend.check`` then ``drive``: what a backend's ``execute`` does."""
    backend.check(configs)
    return drive(backend, configs, store, baseline or backend.runtime.baseline or default_baseline(configs))


def drive(backend: Backend, configs: list[RunConfig], store: Store, baseline: str) -> Counts:
    """Train every config not finished in ``store`` on ``backend``; returns what it did."""
    started = time.time()
    recorder = Recorder(store, configs)
    with stop_signals():
        try:
            recorder.write(_enqueue, store, configs, recorder)
            for config in {c.data_key() + (c.device,): c for c in configs}.values():
                recorder.write(record_class_counts, store, config.dataset, backend.data(config))
            pending = [c for c in configs if c.key() not in recorder.finished_before]
            plan = _plan(backend, pending)
            recorder.write(store.set_meta, "scheduler", {k: v for k, v in plan.items() if k != "provenance"})
            recorder.start(plan, backend.runtime.progress)
            # A run times its own batch-1 latency only alone: where no cost profile measured it, and no
            # other run trains beside it (side by side, with --cost-profile off, nothing measures it).
            profiled = bool(pending) and _cost_profile(backend, pending, recorder, plan, baseline)
            plan["run_latency"] = not profiled and not calibrate.side_by_side(plan)
            if not plan["run_latency"]:  # each run's provenance says why it has no ms_per_sample
                plan.setdefault("provenance", {})["latency"] = LATENCY_FROM_PROFILE if profiled else LATENCY_BESIDE
            fuse = plan.get("stack_by") == calibrate.FUSED
            backend.run(claims(configs, store, recorder, plan.get("stack", 1), started, fuse,
                               set(plan.get("stack_apart", {}))), recorder, plan)
        except (Interrupt, KeyboardInterrupt) as stop:
            raise Interrupted(recorder.saved, len(configs), getattr(stop, "signal_number", signal.SIGINT)) from None
        finally:
            with stop_signals_ignored():  # a second Ctrl-C (or the group's copy of it) must not cut the cleanup
                backend.close(kill=True)
                recorder.release_running()
                recorder.bar.close()
    return recorder.counts


def _enqueue(store: Store, configs: list[RunConfig], recorder: Recorder) -> None:
    """Queue the sweep's runs; note which are finished already; release runs an earlier
    sweep of this same process left running when a fault stopped it."""
    runs = store.runs()
    recorder.finished_before = {r["key"] for r in runs if r["status"] in {s.value for s in FINISHED}}
    recorder.saved = sum(c.key() in recorder.finished_before for c in configs)
    for run in runs:
        if run["status"] == "running" and run["owner"] == store.owner:
            store.release(run["key"])
    store.enqueue(configs)


def _one_shape(pending: list[RunConfig]) -> bool:
    """Do all runs train the calibrated run's model on its data for as many steps? Only
    then does its timed job say how long any job should take."""
    return len({(c.workload, c.model, c.dataset, c.epochs, c.batch_size, c.train_subset, c.image_size)
                for c in pending}) <= 1


def _plan(backend: Backend, pending: list[RunConfig]) -> dict:
    """The backend's plan, with the per-run time limit: ``run_timeout`` when given, else
    RUN_TIMEOUT_FACTOR x the calibrated seconds of one job, at least a minute, where
    every run has the calibrated one's shape (a sweep of several models or budgets gets
    no automatic limit: a LeNet's time says nothing of a transformer's)."""
    plan = backend.plan(pending)
    given = backend.runtime.run_timeout
    if given is not None and not given > 0:
        raise AfbenchError(f"run_timeout must be a positive number of seconds, got {given}: give seconds, or leave "
                           "it out for 20x the calibrated time of a run")
    if given:
        plan["run_timeout_s"] = float(given)
    elif plan.get("run_s") and _one_shape(pending):
        plan["run_timeout_s"] = round(max(MIN_RUN_TIMEOUT_S, RUN_TIMEOUT_FACTOR * plan["run_s"]), 1)
    plan["compile"] = backend.runtime.compile
    return plan


def _cost_profile(backend: Backend, pending: list[RunConfig], recorder: Recorder, plan: dict,
                  baseline: str) -> bool:
    """Step times and batch-1 latency of every (model, activation) apart from training,
    before it starts, with the sweep's threads and ``baseline`` as the reference (or
    reused from the store): the report's time and latency columns use them. What it
    cost is kept in meta.cost_profile. True when a profile covers every pending run."""
    if backend.runtime.cost == "off" or calibrate.too_short_for_cost(backend.runtime, plan, len(pending)):
        return False
    store, threads, needed = recorder.store, plan["threads"], []
    by_data: dict[tuple, list[RunConfig]] = {}
    for config in pending:
        by_data.setdefault(config.data_key() + (config.device,), []).append(config)
    for group in by_data.values():
        shape = backend.data(group[0]).input_shape
        needed += [(first, wanted, shape) for first, wanted in cost.sweep_groups(group, baseline)]

    def lacking() -> list[tuple]:
        return [(first, wanted) for first, wanted, shape in needed
                if cost.stored_profile(store, first, wanted, baseline, shape, first.device, threads) is None]

    missing = lacking()
    if not missing:
        return True
    try:
        per_run_s = plan["run_s"] / plan.get("stack", 1) if plan.get("run_s") and _one_shape(pending) else None
        rows, spent = backend.call(tasks.cost_profile, missing, pending, baseline, threads, backend.runtime,
                                   calibrate.side_by_side(plan), per_run_s, timeout_s=COST_TIMEOUT_S)
    except TaskFailed as failure:  # the user's model fails here too: its runs will say why
        tqdm.write(f"note: no cost profile: {failure.reason.splitlines()[0]}", file=sys.stderr)
        return False
    if rows:
        recorder.write(save_cost, store, rows)
        recorder.write(store.set_meta, "cost_profile", spent)
    return not lacking()  # every group's profile stored, as the report will look it up
