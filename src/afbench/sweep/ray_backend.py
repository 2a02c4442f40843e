"""Run a sweep on a Ray cluster (`pip install afbench[ray]`; `--backend ray`).

- One Ray task per run, with the CPUs and (fractional) GPUs it asks for.
- Only this driver writes the SQLite database: tasks return their per-epoch records
  and summary, so the database never sits on a network file system. Results are
  written as runs finish.
- Data: the driver loads each data set once, as uint8 arrays, and ships it through
  Ray's object store (4x smaller than float tensors); every task prepares it on its
  own device exactly as the local backend does, so both produce the same rows.
  Workers therefore never download anything.
- A task whose worker process dies is retried by Ray (``max_retries``, bounded); a
  run that raises is recorded as failed and the sweep goes on. The driver claims
  every run in the store before submitting it, so a crashed driver's runs are
  redone on restart and finished ones are skipped.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from tqdm import tqdm

from afbench import data as datasets
from afbench.config import RunConfig
from afbench.errors import AfbenchError
from afbench.sweep.runner import prepare_for, record_class_counts
from afbench.sweep.store import Store


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


def _execute(config_dict: dict, raw: datasets.ImageData, threads: int, compile: bool = False) -> dict:
    """Runs inside a Ray worker: prepare the data, train, return every record."""
    import torch

    from afbench.engine import train as engine

    torch.set_num_threads(max(1, threads))
    config = RunConfig.from_dict(config_dict)
    prepared = prepare_for(config, raw)
    epochs: list[dict] = []
    result = engine.train(config, prepared, on_epoch=epochs.append, compile=compile)
    provenance = {**result.provenance, "ray_node": _ray().get_runtime_context().get_node_id()}
    return {"status": result.status, "summary": result.summary, "provenance": provenance, "epochs": epochs}


def run(configs: list[RunConfig], store: Store, options: RayOptions = RayOptions(), data_dir=None,
        progress: bool = True) -> dict[str, int]:
    """Execute every unfinished config on Ray; returns {"ran", "skipped", "failed"}."""
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=options.address, runtime_env=options.runtime_env, log_to_driver=False,
                 include_dashboard=False)
    store.enqueue(configs)
    raws: dict[tuple, object] = {}  # data key -> object ref of the uint8 arrays
    remote = ray.remote(_execute).options(num_cpus=options.cpus_per_run, num_gpus=options.gpus_per_run,
                                          max_retries=options.max_retries, retry_exceptions=False)
    pending, counts = {}, {"ran": 0, "skipped": 0, "failed": 0}
    for config in configs:
        if not store.claim(config):
            counts["skipped"] += 1
            continue
        key = (config.dataset, config.image_size, config.coarse)
        if key not in raws:
            raw = datasets.load(config.dataset, data_dir, image_size=config.image_size, coarse=config.coarse)
            record_class_counts(store, config.dataset, prepare_for(config.with_(device="cpu"), raw))
            raws[key] = ray.put(raw)
        ref = remote.remote(config.to_dict(), raws[key], max(1, int(options.cpus_per_run)), options.compile)
        pending[ref] = config
    bar = tqdm(total=len(pending), desc="runs (ray)", unit="run", disable=not progress)
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            config = pending.pop(done[0])
            _record(ray, done[0], config, store, counts)
            bar.update()
    except KeyboardInterrupt:
        for ref, config in pending.items():
            ray.cancel(ref, force=True)
            store.release(config.key())
        raise
    finally:
        bar.close()
    return counts


def _record(ray, ref, config: RunConfig, store: Store, counts: dict) -> None:
    key = config.key()
    try:
        out = ray.get(ref)
    except Exception as err:  # the task raised, or its worker died more often than max_retries
        store.fail(key, f"{type(err).__name__}: {err}\n{traceback.format_exc()}")
        counts["failed"] += 1
        tqdm.write(f"run failed: {config.activation} seed {config.seed}: {type(err).__name__}")
        return
    for record in out["epochs"]:
        store.record_epoch(key, record)
    store.finish(key, out["status"], out["summary"], out["provenance"])
    counts["ran"] += 1
