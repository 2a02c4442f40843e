"""Worker processes: user code (models, activations, their forward) runs here, never
in the sweep's own process, so a ``sys.exit``, ``os._exit``, a crash or a forward that
never returns fails one run with the reason, and the sweep goes on.

Only the parent writes the results database: a worker receives a job through its
pipe, trains it while holding core slots, and sends back ("started"), one ("epoch",
member, record) per epoch and ("done", results) or ("failed", text). A worker that
dies or overruns its time limit is replaced by a fresh one.

A worker is a fresh interpreter (spawn: seconds of importing torch and afbench and
loading the data) unless it trains with one thread on Linux with no GPU in use here:
then it is forked, with this process's imports and data (``start_method``).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import signal
import sys
import time
from multiprocessing.connection import Connection, wait
from typing import Any, Callable

import torch

from afbench.engine.runtime import set_threads
from afbench.sweep import slots
from afbench.sweep.backends.base import Sink, TaskFailed
from afbench.errors import AfbenchError
from afbench.sweep.jobs import Job, describe, train_job
from afbench.sweep.prepared import DataCache

POLL_S = 0.5  # how often the parent looks at time limits while no worker reports


class Interrupt(BaseException):
    """SIGINT or SIGTERM reached the sweep (or killed its workers): stop, keep what is saved."""

    def __init__(self, signal_number: int):
        super().__init__(signal_number)
        self.signal_number = signal_number


def death(code: int | None) -> str:
    """'exited with code 3' / 'was killed by signal SIGSEGV' from a process's exit code."""
    if code is not None and code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _die_with_parent() -> None:
    """Linux: a worker gets SIGKILL when its parent dies, so kill -9 of a sweep stops
    all of it and its runs are redone on resume (not finished by orphans)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start_method(threads: int | None) -> str:
    """"fork" where it is safe, else "spawn" (a fresh interpreter, no inherited state).
    Safe: a 1-thread worker (torch never enters the OpenMP pool this process may have
    started, which a forked child cannot use: what DataLoader's forked workers rely
    on), on Linux, with CUDA never initialised in this process."""
    if threads == 1 and sys.platform.startswith("linux") and not torch.cuda.is_initialized():
        return "fork"
    return "spawn"


def _main(conn: Connection, data_dir, cache: DataCache | None = None) -> None:
    """A worker's loop: one task at a time until told to stop (None) or the pipe closes.
    SIGINT is ignored (Ctrl-C reaches the whole process group; the parent decides and
    ends its workers with SIGTERM, whose default action exits without a traceback, also
    in a forked worker, which inherits the parent's handler). A forked worker shares
    the parent's loaded data (``cache``, copy-on-write)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()
    cache = cache or DataCache(data_dir)
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        kind, payload = task
        try:
            if kind == "job":
                job, threads = payload
                set_threads(threads)
                with slots.reserve(threads):
                    prepared = cache.get(job.configs[0])  # afbench's own loading: not on the run's clock
                    conn.send(("started",))
                    results = train_job(job, prepared, lambda member, record: conn.send(("epoch", member, record)))
                conn.send(("done", results))
            else:
                function, args = payload
                conn.send(("done", function(cache, *args)))
        except Exception as error:  # a run that raises is a failed run, reported with its traceback
            conn.send(("failed", describe(error), isinstance(error, AfbenchError)))


class Worker:
    """One worker process and the parent's end of its pipe: spawned, or forked for
    1-thread training (``start_method``) with the parent's ``cache`` of loaded data."""

    def __init__(self, data_dir, threads: int | None = None, cache: DataCache | None = None) -> None:
        method = start_method(threads)
        ctx = multiprocessing.get_context(method)
        self.conn, child = ctx.Pipe()
        shared = cache if method == "fork" else None  # never pickled: a spawned worker loads its own
        self.process = ctx.Process(target=_main, args=(child, data_dir, shared), daemon=True)
        # Ctrl-C while the child is still starting (importing torch) must not print its
        # traceback: an ignored SIGINT is inherited through exec, and Python then keeps it.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main_thread() else None
        try:
            self.process.start()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        child.close()
        self.job: Job | None = None
        self.since: float | None = None  # when the current job started (cores held)

    def stop(self, kill: bool = False) -> None:
        if self.process.is_alive():
            if kill:
                self.process.kill()
            else:
                try:
                    self.conn.send(None)
                except OSError:
                    pass
                self.process.join(timeout=5)
                if self.process.is_alive():
                    self.process.terminate()
        self.process.join(timeout=5)
        self.conn.close()

    def call(self, function: Callable[..., Any], args: tuple, timeout_s: float | None) -> Any:
        """Run ``function(cache, *args)`` here and return its value; TaskFailed otherwise."""
        self.conn.send(("call", (function, args)))
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = wait([self.conn, self.process.sentinel], timeout=left)
            if self.conn in ready or self.conn.poll():
                try:
                    message = self.conn.recv()
                except EOFError:
                    message = None
                if message is not None:
                    if message[0] == "done":
                        return message[1]
                    raise TaskFailed(message[1], bad_input=message[2])
            if not self.process.is_alive():
                _raise_if_interrupted(self.process.exitcode)
                raise TaskFailed(f"worker {death(self.process.exitcode)}")
            if deadline is not None and time.monotonic() >= deadline:
                raise TaskFailed(f"stopped after {timeout_s:.0f} s without an answer")


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _raise_if_interrupted(code: int | None) -> None:
    """A worker ended by SIGINT/SIGTERM was stopped with the sweep, not by its run."""
    if code in (-signal.SIGINT, -signal.SIGTERM):
        raise Interrupt(-code)


class Pool:
    """Worker processes training jobs for one sweep; replaced as they die or overrun."""

    def __init__(self, data_dir, first: Worker | None = None, cache: DataCache | None = None) -> None:
        self.data_dir, self.cache = data_dir, cache
        self.workers: list[Worker] = [first] if first else []

    def run(self, jobs, sink: Sink, count: int, threads: int, timeout_s: float | None) -> None:
        """Train what ``jobs`` yields on up to ``count`` workers; a job is claimed (drawn
        from ``jobs``) only when a worker can take it, so concurrent sweeps share the rest."""
        waiting: Job | None = None
        more = True
        while True:
            if more and waiting is None:
                waiting = next(jobs, None)
                more = waiting is not None
            idle = [w for w in self.workers if w.job is None]
            if waiting is not None and not idle and len(self.workers) < count:
                self.workers.append(Worker(self.data_dir, threads, self.cache))  # started only when there is work
                idle = self.workers[-1:]
            if waiting is not None and idle:
                idle[0].job, idle[0].since = waiting, None
                idle[0].conn.send(("job", (waiting, threads)))
                waiting = None
                continue
            busy = [w for w in self.workers if w.job is not None]
            if not busy and waiting is None:
                return
            wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=POLL_S)
            for worker in busy:
                self._serve(worker, sink, timeout_s)

    def _serve(self, worker: Worker, sink: Sink, timeout_s: float | None) -> None:
        """Pass on what ``worker`` reported; replace it when it died or overran."""
        while worker.job is not None and worker.conn.poll():
            try:
                message = worker.conn.recv()
            except (EOFError, OSError):
                break
            kind, job = message[0], worker.job
            if kind == "started":
                worker.since = time.monotonic()
                sink.started(job)
            elif kind == "epoch":
                sink.epoch(job, message[1], message[2])
            else:
                worker.job = None
                sink.finished(job, message[1]) if kind == "done" else sink.failed(job, message[1])
        if worker.job is None:
            return
        if not worker.process.is_alive():
            _raise_if_interrupted(worker.process.exitcode)
            self._replace(worker, sink, f"worker {death(worker.process.exitcode)} while training {worker.job.label}")
        elif timeout_s and worker.since is not None and time.monotonic() - worker.since > timeout_s:
            self._replace(worker, sink, f"stopped after {timeout_s:.0f} s, the per-run time limit (run_timeout), "
                                        f"while training {worker.job.label}: a forward that never returns, or "
                                        "raise --run-timeout")

    def _replace(self, worker: Worker, sink: Sink, reason: str) -> None:
        """Drop a dead or overrunning worker (a fresh one starts when a job needs it)."""
        job = worker.job
        worker.stop(kill=True)
        self.workers.remove(worker)
        sink.failed(job, reason)

    def close(self, kill: bool = False) -> None:
        for worker in self.workers:
            worker.stop(kill=kill)
        self.workers = []
