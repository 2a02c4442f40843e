"""Run a sweep on a Ray cluster (`pip install afbench[ray]`; `--backend ray`).

- One Ray task per run, with the CPUs and (fractional) GPUs it asks for.
- Only this driver writes the SQLite database: tasks return their per-epoch records
  and summary, so the database never sits on a network file system. Results are
  written as runs finish.
- Data: the driver loads each data set once, as uint8 arrays, and ships it through
  Ray's object store (4x smaller than float tensors); every task prepares it on its
  own device exactly as the local backend does, so both produce the same rows.
  Workers therefore never download anything.
- Your model file (``--model PATH.py:NAME``) travels with the tasks, checked against
  its hash: workers need not see PATH. A ``package.module`` model or activation must
  be importable on every node (installed, or through ``runtime_env``).
- A task whose worker process dies is retried by Ray (``max_retries``, bounded); a
  run that raises is recorded as failed and the sweep goes on. The driver claims
  every run in the store before submitting it, so a crashed driver's runs are
  redone on restart and finished ones are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from afbench import data as datasets
from afbench import models
from afbench.models import user
from afbench.config import RunConfig
from afbench.errors import AfbenchError
from afbench.sweep.jobs import Counts, Job, no_counts, record_failure, record_results, train_job
from afbench.sweep.prepared import load_raw, prepare_for, record_class_counts
from afbench.store.database import Store


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


def model_files(configs: list[RunConfig]) -> dict[str, bytes]:
    """identity -> bytes of each user model file the sweep trains, read on the driver."""
    idents = {c.model for c in configs if models.is_user_model(c.model) and c.model not in models.MODELS}
    files = {ident: user.source(ident) for ident in sorted(idents)}
    return {ident: data for ident, data in files.items() if data is not None}


def _execute(job: Job, raw: datasets.ImageData, threads: int, files: dict[str, bytes]):
    """Runs inside a Ray worker: prepare the data, train, return the results (epochs included)."""
    import torch

    for ident, data in files.items():
        user.provide(ident, data)
    torch.set_num_threads(max(1, threads))
    results = train_job(job, prepare_for(job.configs[0], raw))
    node = _ray().get_runtime_context().get_node_id()
    for result in results:
        result.provenance.update(ray_node=node, threads=max(1, threads))
    return results


class RayBackend:
    def __init__(self, options: RayOptions = RayOptions(), data_dir: str | Path | None = None,
                 progress: bool = True) -> None:
        self.options, self.data_dir, self.progress = options, data_dir, progress

    def execute(self, configs: list[RunConfig], store: Store) -> Counts:
        """Execute every unfinished config on Ray, one task per run."""
        ray = _ray()
        options = self.options
        if not ray.is_initialized():
            ray.init(address=options.address, runtime_env=options.runtime_env, log_to_driver=False,
                     include_dashboard=False)
        store.enqueue(configs)
        files = ray.put(model_files(configs))
        raws: dict[tuple, object] = {}  # data key -> object ref of the uint8 arrays
        remote = ray.remote(_execute).options(num_cpus=options.cpus_per_run, num_gpus=options.gpus_per_run,
                                              max_retries=options.max_retries, retry_exceptions=False)
        pending, counts = {}, no_counts()
        for config in configs:
            if not store.claim(config):
                counts["skipped"] += 1
                continue
            key = (config.dataset, config.image_size, config.coarse)
            if key not in raws:
                raw = load_raw(config, self.data_dir)
                record_class_counts(store, config.dataset, prepare_for(config.with_(device="cpu"), raw))
                raws[key] = ray.put(raw)
            job = Job((config,), options.compile)
            pending[remote.remote(job, raws[key], max(1, int(options.cpus_per_run)), files)] = job
        bar = tqdm(total=len(pending), desc="runs (ray)", unit="run", disable=not self.progress)
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(done[0])
                for outcome in self._record(ray, done[0], job, store):
                    counts[outcome] += 1
                bar.update()
        except KeyboardInterrupt:
            for ref, job in pending.items():
                ray.cancel(ref, force=True)
                for key in job.keys:
                    store.release(key)
            raise
        finally:
            bar.close()
        return counts

    @staticmethod
    def _record(ray, ref, job: Job, store: Store) -> list[str]:
        try:
            results = ray.get(ref)
        except Exception as err:  # the task raised, or its worker died more often than max_retries
            return record_failure(store, job, err)
        for key, result in zip(job.keys, results):
            for record in result.epochs:
                store.record_epoch(key, record)
        return record_results(store, job, results, {"concurrent_runs": None})
