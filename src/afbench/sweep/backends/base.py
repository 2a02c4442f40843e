"""What a backend is: the one protocol the sweep's driver talks to.

The driver (``driver.drive``) enqueues, claims, records and releases; a backend only
says where and how the work runs. Everything that may run a user's code (model and
activation imports, the calibration's timed steps, the cost profile, training) goes
through a backend's ``call`` or ``run``, so a backend that runs it in other processes
(local worker processes, Ray tasks) keeps the sweep alive when that code exits or hangs.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Protocol, runtime_checkable

from afbench import data as datasets
from afbench.config import RunConfig
from afbench.results import EpochRecord
from afbench.errors import AfbenchError
from afbench.sweep.jobs import Job
from afbench.sweep.options import Runtime


class Sink(Protocol):
    """Where a backend reports what its jobs did; the driver records it in the store."""

    def started(self, job: Job) -> None: ...  # the job holds its cores now: its time limit starts

    def epoch(self, job: Job, member: int, record: EpochRecord) -> None: ...

    def finished(self, job: Job, results: list) -> None: ...  # engine.RunResult per member

    def failed(self, job: Job, reason: str) -> None: ...  # first line: what happened; then any traceback


@runtime_checkable
class Backend(Protocol):
    """How a sweep's work runs. Registered by name in ``afbench.sweep.backends.BACKENDS``."""

    name: str
    runtime: Runtime

    def check(self, configs: list[RunConfig]) -> None:
        """Fail now, before a results database exists, on what can be known bad (data, models)."""

    def data(self, config: RunConfig) -> datasets.Prepared:
        """``config``'s data as the driver may read it (class counts, shapes); never trained on here."""

    def plan(self, pending: list[RunConfig]) -> dict:
        """How the pending runs will execute: "workers", "threads", "stack", "how", and
        optionally "run_s" (calibrated seconds of one job) and "provenance" (stored with runs)."""

    def call(self, task: Callable[..., Any], *args: Any, timeout_s: float | None = None) -> Any:
        """``task(cache, *args)`` where the backend runs user code; raises ``TaskFailed``."""

    def run(self, jobs: Iterator[Job], sink: Sink, plan: dict) -> None:
        """Train every job ``jobs`` yields (it claims them lazily), reporting to ``sink``."""

    def close(self) -> None:
        """Stop whatever the backend started (worker processes); idempotent."""


CALL_TIMEOUT_S = 300.0  # a check or calibration where user code runs that takes longer is taken as hung


class TaskFailed(Exception):
    """A backend's ``call`` did not return: the task raised, its process died or timed out.
    ``bad_input``: it raised an AfbenchError (the message names the problem and the fix)."""

    def __init__(self, reason: str, bad_input: bool = False):
        super().__init__(reason)
        self.reason, self.bad_input = reason, bad_input

    @property
    def headline(self) -> str:
        first = self.reason.split("\n", 1)[0]
        return first.split(": ", 1)[1] if self.bad_input and ": " in first else first


class StoreFault(AfbenchError):
    """The results database could not be written (disk full, read-only, deleted): the
    sweep stops; the message says what was kept and how to resume."""


class RunTimeout(TimeoutError):
    pass


@contextmanager
def time_limit(seconds: float | None, doing: str):
    """A run over its limit is interrupted (SIGALRM) at its next Python step, in the
    process that trains it (this one, or a Ray task's worker); off the main thread, where
    no signal can land, the caller's own watch is the only limit."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise RunTimeout(f"stopped after {seconds:.0f} s, the per-run time limit (run_timeout), while {doing}")

    # torch imports its compiler on the first optimizer (1-2 s): an alarm inside that import would
    # leave the module half made, and every later run of this process would fail on it.
    import torch._dynamo  # noqa: F401
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
