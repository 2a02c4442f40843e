"""Results database, resume after kill -9, concurrent sweeps, and the local backend."""

import multiprocessing
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pandas as pd
import pytest

from afbench.config import RunConfig
from afbench.errors import AfbenchError
from afbench.results import EpochRecord, RunSummary, Status
from afbench.sweep import LocalBackend, Runtime, calibrate
from afbench.sweep.grid import Grid
from afbench.sweep.study import preset
from afbench.store.database import MIGRATIONS, Store


def configs(n=3):
    return [RunConfig(activation="relu", seed=s, epochs=1) for s in range(n)]


def test_schema_is_versioned_and_wal(tmp_path):
    store = Store(tmp_path)
    assert store.schema_version == len(MIGRATIONS)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    assert Store(tmp_path).schema_version == len(MIGRATIONS)  # reopening migrates nothing


def test_newer_schema_is_refused(tmp_path):
    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / "results.sqlite")
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(AfbenchError, match="newer than this afbench"):
        Store(tmp_path)


def test_claim_skips_finished_runs_and_reclaims_dead_ones(tmp_path):
    store = Store(tmp_path)
    done, abandoned, alive = configs(3)
    assert store.claim(done)
    store.record_epoch(done.key(), EpochRecord(1, train_loss=1.0, train_acc=0.5, epoch_train_s=1.0, cum_train_s=1.0))
    store.finish(done.key(), Status.DONE, RunSummary(params=10, epochs_run=1, total_train_s=1.0, accuracy=0.9), {})
    assert not store.claim(done)
    # A run left 'running' by a process that no longer exists is redone, from scratch.
    assert store.claim(abandoned)
    store.record_epoch(abandoned.key(), EpochRecord(1, 1.0, 0.5, 1.0, 1.0))
    dead_owner = f"{socket.gethostname()}:999999999:1"  # this host, a pid that does not exist
    store.db.execute("UPDATE runs SET owner = ? WHERE key = ?", (dead_owner, abandoned.key()))
    assert store.claim(abandoned)
    assert store.db.execute("SELECT COUNT(*) FROM epochs WHERE run_key = ?", (abandoned.key(),)).fetchone()[0] == 0
    assert store.db.execute("SELECT attempts FROM runs WHERE key = ?", (abandoned.key(),)).fetchone()[0] == 2
    # A run held by a live process (this one, seen from a second connection) is left alone.
    assert store.claim(alive)
    assert not Store(tmp_path).claim(alive)


def test_failed_runs_are_retried(tmp_path):
    store = Store(tmp_path)
    config = configs(1)[0]
    store.claim(config)
    store.fail(config.key(), "boom")
    assert store.runs()[0]["status"] == "failed" and store.runs()[0]["error"] == "boom"
    assert store.claim(config)


def _claim_all(folder, keys_out):
    store = Store(folder)
    won = [c.key() for c in configs(60) if store.claim(c)]
    keys_out.put(won)


def test_two_processes_never_claim_the_same_run(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_claim_all, args=(tmp_path, queue)) for _ in range(2)]
    for w in workers:
        w.start()
    won = [queue.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    assert len(won[0]) + len(won[1]) == 60 and not set(won[0]) & set(won[1])


def test_grid_orders_seeds_outermost_and_holds_lr_out_on_validation():
    grid = Grid(RunConfig(), ("relu", "tanh"), seeds=(0, 1), lrs=(0.1, 0.01))
    cells = grid.configs()
    assert len(cells) == 8 and [c.seed for c in cells[:4]] == [0] * 4
    assert all(c.valid_fraction == 0.1 for c in cells)
    assert len({c.key() for c in cells}) == 8


def test_presets_hold_the_studies_settings():
    s1 = preset("s1-mnist")
    assert (s1["model"], s1["dataset"], s1["epochs"], s1["batch_size"], s1["lr"], s1["target"]) == (
        "lenet", "mnist", 10, 128, 1e-3, 0.98)
    assert preset("s2-mlp")["split"] == "s2" and preset("s2-mlp")["batch_size"] == 64


def test_runner_resumes_and_records_failures(tmp_path, monkeypatch):
    cells = Grid(RunConfig(epochs=2, batch_size=64), ("relu", "tanh", "elu"), seeds=(0, 1)).configs()
    from afbench.engine import train as engine
    real = engine.train

    def flaky(config, data, on_epoch=None, **options):
        if config.activation == "elu" and config.seed == 1:
            raise RuntimeError("simulated crash")
        return real(config, data, on_epoch, **options)

    monkeypatch.setattr(engine, "train", flaky)
    store = Store(tmp_path)
    quiet = Runtime(progress=False, workers=1, stack=1)  # in-process: the patched engine applies
    assert LocalBackend(quiet).execute(cells, store) == {"ran": 5, "skipped": 0, "failed": 1}
    monkeypatch.setattr(engine, "train", real)
    assert LocalBackend(quiet).execute(cells, store) == {"ran": 1, "skipped": 5, "failed": 0}
    statuses = pd.DataFrame(store.runs())["status"].value_counts().to_dict()
    assert statuses == {"done": 6}
    assert len(store.epochs()) == 12


SWEEP_SCRIPT = """
import sys
from afbench.config import RunConfig
from afbench.sweep import LocalBackend, Runtime, calibrate
from afbench.sweep.grid import Grid
from afbench.store.database import Store
if __name__ == "__main__":  # worker processes are spawned: they re-import this file
    cells = Grid(RunConfig(epochs=int(sys.argv[2]), batch_size=32), ("relu", "tanh", "sigmoid"),
                 seeds=(0, 1)).configs()
    LocalBackend(Runtime(threads=1, progress=False, workers=int(sys.argv[3]), stack=int(sys.argv[4]),
                         isolate=False)).execute(cells, Store(sys.argv[1]))  # checked here, trained in workers
"""


@pytest.mark.parametrize("stack", [1, pytest.param(2, marks=pytest.mark.slow)])  # keep the default run short
def test_kill_minus_9_then_resume_runs_each_cell_exactly_once(tmp_path, stack):
    script = tmp_path / "sweep.py"
    script.write_text(SWEEP_SCRIPT)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(script), str(out), "3", "1", str(stack)], env=env)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until some runs are done and one is mid-way
        time.sleep(0.3)
        if (out / "results.sqlite").exists():
            try:
                store = Store(out)
                counts = store.counts()
                store.close()
            except sqlite3.OperationalError:
                continue
            if counts.get("done", 0) >= 2 and counts.get("running", 0) == stack:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = Store(out)
    before = {r["key"]: r for r in store.runs()}
    assert sum(r["status"] == "running" for r in before.values()) == stack  # one run, or one stack of two
    done_before = {k for k, r in before.items() if r["status"] == "done"}
    subprocess.run([sys.executable, str(script), str(out), "3", "2", str(stack)], env=env, check=True)  # 2 workers
    after = store.runs()
    assert len(after) == 6 and all(r["status"] == "done" for r in after)
    assert all(r["attempts"] == 1 for r in after if r["key"] in done_before)  # nothing done was redone
    assert sum(r["attempts"] == 2 for r in after) == stack  # the interrupted run(s), once more
    epochs = store.db.execute("SELECT run_key, COUNT(*) FROM epochs GROUP BY run_key").fetchall()
    assert sorted(n for _, n in epochs) == [3] * 6


def test_worker_processes_run_every_cell_exactly_once(tmp_path, monkeypatch):
    """The calibration ("auto") chooses two 1-thread workers: runs train in two worker
    processes side by side, so their latency comes from a cost profile measured alone."""
    from afbench.store.cost import all_rows
    from afbench.sweep.backends import workers

    monkeypatch.setattr(calibrate, "plan", lambda runtime, sample, prepared, pending: {
        "workers": 2, "threads": 1, "cores": 2, "how": "calibrated"})
    pools, run = [], workers.Pool.run
    monkeypatch.setattr(workers.Pool, "run", lambda self, jobs, sink, count, *rest: (
        pools.append(count), run(self, jobs, sink, count, *rest))[1])
    cells = Grid(RunConfig(epochs=2, batch_size=64), ("relu", "tanh", "elu"), seeds=(0, 1)).configs()
    store = Store(tmp_path)
    counts = LocalBackend(Runtime(progress=False)).execute(cells, store)
    assert counts == {"ran": 6, "skipped": 0, "failed": 0} and pools == [2]
    runs = store.runs()
    assert len(runs) == 6 and all(r["status"] == "done" and r["attempts"] == 1 for r in runs)
    assert {r["provenance"]["threads"] for r in runs} == {1}
    assert store.meta()["scheduler"]["workers"] == 2
    # A short sweep, but its runs trained side by side: the profile measured every activation, alone.
    assert {row["activation"] for row in all_rows(store)} == {"relu", "tanh", "elu"}
    assert all(r["summary"]["ms_per_sample"] is None and "cost profile" in r["provenance"]["latency"] for r in runs)
    # Forked workers (1 thread, Linux) train exactly what this process trains.
    assert workers.start_method(1) == ("fork" if sys.platform.startswith("linux") else "spawn")
    assert workers.start_method(2) == "spawn"  # a forked child cannot use the parent's OpenMP pool
    from afbench.engine.train import train
    from afbench.sweep.prepared import DataCache

    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # as the worker trained: sums split over threads round differently
    try:
        alone = train(cells[0], DataCache(None).get(cells[0]), latency=False)
    finally:
        torch.set_num_threads(previous)
    stored = next(r for r in runs if r["key"] == cells[0].key())
    assert stored["summary"]["error_rate"] == alone.summary.error_rate
    assert stored["summary"]["test_loss"] == alone.summary.test_loss


def test_plan_never_oversubscribes(monkeypatch):
    monkeypatch.setattr(calibrate, "available_cores", lambda: 2)
    assert calibrate.plan(Runtime(threads=2), RunConfig(), None, 10)["workers"] == 1
    assert calibrate.plan(Runtime(workers=5), RunConfig(), None, 10) == {
        "workers": 2, "threads": 1, "cores": 2, "how": "given, capped to the 2 cores"}
    assert calibrate.plan(Runtime(), RunConfig(), None, 1)["workers"] == 1  # one run: all cores to it


def test_calibration_picks_the_faster_layout(monkeypatch):
    from types import SimpleNamespace

    monkeypatch.setattr(calibrate, "available_cores", lambda: 2)
    rates = {2: 10.0, 1: 6.0}  # two 1-thread workers: 12 steps/s > 10 with both cores in one
    calls = []
    monkeypatch.setattr(calibrate, "_steps_per_s", lambda config, data, threads, steps=calibrate.CALIBRATION_STEPS:
                        calls.append(steps) or rates[threads])
    big = SimpleNamespace(train=range(60_000))  # 8 runs x 10 epochs x 469 steps: minutes of work
    assert calibrate.plan(Runtime(), RunConfig(), big, 8)["workers"] == 2
    assert calls[0] == calibrate.PRIMING_STEPS < calls[1]  # the process's cold first epoch is never the one timed
    rates[1] = 4.0  # now one 2-thread process wins
    chosen = calibrate.plan(Runtime(), RunConfig(), big, 8)
    assert (chosen["workers"], chosen["threads"], chosen["how"]) == (1, 2, "calibrated")
    rates[1] = 6.0  # faster in parallel, but 2 runs of 1 epoch on 1,000 images: not worth spawning
    small = calibrate.plan(Runtime(), RunConfig(epochs=1), SimpleNamespace(train=range(1000)), 2)
    assert (small["workers"], small["how"]) == (1, "short sweep")
    # S1's table at 3 epochs: 6 x 3 x 469 steps, 77 s in one 2-thread process (110 steps/s) against 60 s in two
    # 1-thread workers (70 steps/s each): 16 s saved, more than starting a worker costs.
    rates.update({2: 110.0, 1: 70.0})
    s1 = calibrate.plan(Runtime(), RunConfig(epochs=3, batch_size=128), SimpleNamespace(train=range(60_000)), 6)
    assert (s1["workers"], s1["threads"]) == (2, 1)
    assert 6 * 3 * 469 * (1 / 110 - 1 / 140) > calibrate.WORKER_START_S


def test_runs_side_by_side_without_a_profile_time_no_latency_and_the_report_says_why(tmp_path, monkeypatch):
    """--cost-profile off with two workers: no run can time its latency alone, so none does."""
    from afbench.report import render
    from afbench.store.reading import StoreView

    monkeypatch.setattr(calibrate, "plan", lambda runtime, sample, prepared, pending: {
        "workers": 2, "threads": 1, "cores": 2, "how": "calibrated"})
    cells = Grid(RunConfig(epochs=1, batch_size=64), ("relu", "tanh"), seeds=(0, 1)).configs()
    store = Store(tmp_path)
    assert LocalBackend(Runtime(progress=False, cost="off")).execute(cells, store)["ran"] == 4
    runs = store.runs()
    store.close()
    assert all(r["summary"]["ms_per_sample"] is None and "side by side" in r["provenance"]["latency"] for r in runs)
    with StoreView(tmp_path) as view:
        report = render.build(view)
    assert not any(key.startswith("ms/sample") for key in report.comparison()[0])  # no column of dashes
    render.write(tmp_path)
    assert "No ms/sample for relu, tanh: the runs trained side by side" in (tmp_path / "summary.md").read_text()


def _hold(count, seconds, folder, log):
    os.environ["AFBENCH_SLOT_DIR"] = folder
    from afbench.sweep import slots
    with slots.reserve(count, cores=2):
        log.put(("start", time.time()))
        time.sleep(seconds)
        log.put(("end", time.time()))


def test_core_slots_keep_two_processes_from_sharing_cores(tmp_path):
    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")  # fork: no imports
    log = ctx.Queue()
    procs = [ctx.Process(target=_hold, args=(2, 1.0, str(tmp_path), log)) for _ in range(2)]
    for p in procs:
        p.start()
    events = sorted((log.get(timeout=60) for _ in range(4)), key=lambda e: e[1])
    for p in procs:
        p.join(timeout=30)
    assert [kind for kind, _ in events] == ["start", "end", "start", "end"]  # never both at once
