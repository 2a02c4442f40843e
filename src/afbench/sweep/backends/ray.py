"""Run a sweep on a Ray cluster (`pip install afbench[ray]`; `--backend ray`).

- One Ray task per run, with the CPUs and (fractional) GPUs it asks for.
- Only the driver (``backends.driver``) writes the SQLite database: tasks return their
  per-epoch records and summary, so the database never sits on a network file system.
  Results are written as runs finish. The cost profile runs as one task too.
- Data: the driver loads each data set once, as uint8 arrays, and ships it through
  Ray's object store (4x smaller than float tensors); every task prepares it on its
  own device exactly as the local backend does, so both produce the same rows.
  Workers therefore never download anything.
- Your model and workload files (``--model PATH.py:NAME``, ``--workload PATH.py:NAME``)
  travel with the tasks, checked against their hashes: workers need not see PATH. A
  ``package.module`` model, workload or activation must be importable on every node
  (installed, or through ``runtime_env``).
- A task whose worker process dies is retried by Ray (``max_retries``, bounded); a
  run that raises is recorded as failed and the sweep goes on. The driver claims
  every run in the store before submitting it, so a crashed driver's runs are
  redone on restart and finished ones are skipped. A run over ``run_timeout`` (given:
  Ray has no calibration to derive one from) is stopped inside its task, recorded as
  failed with the reason, and the sweep goes on. The limit lands at the run's next
  Python step (SIGALRM in the task's process), so code stuck inside one C call is
  stopped only when that call returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from afbench import data as datasets
from afbench import models, workloads
from afbench.config import RunConfig
from afbench.errors import AfbenchError
from afbench.models import user
from afbench.store.database import Store
from afbench.sweep.backends import tasks
from afbench.sweep.backends.base import CALL_TIMEOUT_S, TaskFailed, time_limit
from afbench.sweep.backends.driver import check_and_drive
from afbench.sweep.jobs import Counts, Job, train_job
from afbench.sweep.options import Runtime
from afbench.sweep.prepared import load_raw, prepare_for


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # "auto", "ray://host:port", or None: start a local instance
    cpus_per_run: float = 1.0  # also the torch thread count of each task
    gpus_per_run: float = 0.0  # fractions let small models share a GPU
    max_retries: int = 2  # re-executions when a worker process dies
    runtime_env: dict | None = None  # passed to ray.init (e.g. env_vars, working_dir)
    compile: bool = False  # training steps through torch.compile in each task; see engine.train


def _ray():
    try:
        import ray
    except ImportError:
        raise AfbenchError("the Ray backend needs Ray: pip install 'afbench[ray]'") from None
    return ray


def user_files(configs: list[RunConfig]) -> dict[str, bytes]:
    """identity -> bytes of each user model and workload file the sweep trains, read on the driver."""
    idents = {c.model for c in configs if models.is_user_model(c.model) and c.model not in models.MODELS}
    idents |= {c.workload for c in configs if workloads.is_user_workload(c.workload)}
    files = {ident: user.source(ident) for ident in sorted(idents)}
    return {ident: data for ident, data in files.items() if data is not None}


def _execute(job: Job, raw: datasets.ImageData, threads: int, files: dict[str, bytes],
             timeout_s: float | None = None):
    """Runs inside a Ray worker: prepare the data, train, return the results (epochs included)."""
    import torch

    for ident, data in files.items():
        user.provide(ident, data)
    torch.set_num_threads(max(1, threads))
    with time_limit(timeout_s, f"training {job.label}"):
        results = train_job(job, prepare_for(job.configs[0], raw))
    node = _ray().get_runtime_context().get_node_id()
    for result in results:
        result.provenance.update(ray_node=node, threads=max(1, threads))
    return results


class ShippedData:
    """The cache a task gets on a Ray node: the driver's uint8 arrays, prepared there."""

    def __init__(self, raws: dict) -> None:
        self.raws, self.prepared = raws, {}

    def get(self, config: RunConfig) -> datasets.Prepared:
        key = config.data_key() + (config.device,)
        if key not in self.prepared:
            self.prepared[key] = prepare_for(config, self.raws[_raw_key(config)])
        return self.prepared[key]


def _call(task, raws: dict, files: dict[str, bytes], args: tuple):
    for ident, data in files.items():
        user.provide(ident, data)
    return task(ShippedData(raws), *args)


def _raw_key(config: RunConfig) -> tuple:
    return config.dataset, config.image_size, config.coarse


class RayBackend:
    """One Ray task per job; the driver loads the data and ships it (see the module docstring)."""

    name = "ray"

    def __init__(self, options: RayOptions = RayOptions(), data_dir: str | Path | None = None,
                 progress: bool = True, runtime: Runtime | None = None) -> None:
        self.options = options
        self.runtime = runtime or Runtime(data_dir, threads=max(1, int(options.cpus_per_run)), progress=progress,
                                          compile=options.compile)
        self.raws: dict[tuple, datasets.ImageData] = {}  # loaded once on the driver, shipped to the tasks
        self.files: dict[str, bytes] = {}  # user model and workload files, read on the driver by ``check``
        self.prepared: dict[tuple, datasets.Prepared] = {}

    def _init(self):
        ray = _ray()
        if not ray.is_initialized():
            ray.init(address=self.options.address, runtime_env=self.options.runtime_env, log_to_driver=False,
                     include_dashboard=False)
        return ray

    def execute(self, configs: list[RunConfig], store: Store, baseline: str | None = None) -> Counts:
        """Check, then train every unfinished config into ``store`` (``driver.check_and_drive``)."""
        return check_and_drive(self, configs, store, baseline)

    def check(self, configs: list[RunConfig]) -> None:
        """Every data set loads on the driver, and every user model and workload file is read there
        (tasks receive both from the driver)."""
        for config in configs:
            self.data(config)
        self.files = user_files(configs)
        tasks.check_where_it_runs(self, configs)  # user code runs in a task: its exit is not the driver's

    def data(self, config: RunConfig) -> datasets.Prepared:
        """``config``'s data prepared on the driver's CPU (class counts, shapes)."""
        key = config.data_key()
        if key not in self.prepared:
            if _raw_key(config) not in self.raws:
                self.raws[_raw_key(config)] = load_raw(config, self.runtime.data_dir)
            self.prepared[key] = prepare_for(config.with_(device="cpu"), self.raws[_raw_key(config)])
        return self.prepared[key]

    def plan(self, pending: list[RunConfig]) -> dict:
        threads = max(1, int(self.options.cpus_per_run))
        return {"workers": None, "threads": threads, "stack": 1, "how": "ray: one task per run",
                "cpus_per_run": self.options.cpus_per_run, "gpus_per_run": self.options.gpus_per_run,
                "provenance": {"concurrent_runs": None}}

    def call(self, task, *args, timeout_s: float | None = None):
        """``task`` as one Ray task with the resources of a run (the cost profile is measured
        where runs train)."""
        ray = self._init()
        remote = ray.remote(_call).options(num_cpus=self.options.cpus_per_run, num_gpus=self.options.gpus_per_run,
                                           max_retries=0)
        ref = remote.remote(task, self.raws, self.files, args)
        try:
            return ray.get(ref, timeout=timeout_s or self.runtime.run_timeout or CALL_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError as error:
            # Only a task still running is cancelled: cancelling one that has just finished races Ray's
            # handling of its reply, which aborted the driver here (ray-project/ray#54785's kind of race).
            ray.cancel(ref, force=True)
            raise TaskFailed(f"{type(error).__name__}: {error}") from None
        except Exception as error:
            cause = getattr(error, "cause", None)  # what the task raised, inside Ray's wrapper
            if isinstance(cause, AfbenchError):
                raise TaskFailed(f"{type(cause).__name__}: {cause}", bad_input=True) from None
            raise TaskFailed(f"{type(error).__name__}: {error}") from None

    def run(self, jobs, sink, plan: dict) -> None:
        """One task per job, all submitted at once (Ray schedules them); results recorded as they finish."""
        ray = self._init()
        options = self.options
        jobs = list(jobs)  # claimed all at once: Ray queues what the cluster cannot start yet
        files = ray.put(self.files)
        refs = {key: ray.put(raw) for key, raw in self.raws.items()}
        remote = ray.remote(_execute).options(num_cpus=options.cpus_per_run, num_gpus=options.gpus_per_run,
                                              max_retries=options.max_retries, retry_exceptions=False)
        pending = {}
        for job in jobs:
            pending[remote.remote(job, refs[_raw_key(job.configs[0])], plan["threads"], files,
                                  plan.get("run_timeout_s"))] = job
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(done[0])
                try:
                    results = ray.get(done[0])
                except Exception as error:  # the task raised, or its worker died more often than max_retries
                    sink.failed(job, f"{type(error).__name__}: {error}")
                    continue
                for member, result in enumerate(results):
                    for record in result.epochs:
                        sink.epoch(job, member, record)
                sink.finished(job, results)
        finally:  # stop what still runs; a task that has just finished is not cancelled (see ``call``)
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0) if pending else ([], [])
            for ref in set(pending) - set(ready):
                ray.cancel(ref, force=True)

    def close(self, kill: bool = False) -> None:
        pass  # Ray stays up for the next sweep of this process; tasks are cancelled by ``run``
