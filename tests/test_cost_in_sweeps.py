"""Issue 13, second half: a sweep measures (or reuses) its cost profile, and the tables
take their times from it: optimizer steps x the measured step time, with its CI."""

import pandas as pd
import pytest

from afbench.config import RunConfig
from afbench.report import render, timing
from afbench.sweep import Grid, LocalBackend, Runtime, calibrate, execute
from afbench.store.database import Store


def test_a_sweep_measures_its_cost_profile_and_the_tables_use_it(tmp_path):
    grid = Grid(RunConfig(epochs=1, latency_samples=5, probe_size=64), ("relu", "tanh"), seeds=(0,))
    backend = LocalBackend(Runtime(progress=False, workers=1, stack=1, cost="on", threads=1))
    execute(grid, tmp_path, backend, device="cpu")
    store = Store(tmp_path)
    cost = timing.load_cost(store.db)
    assert {"relu", "tanh"} <= set(cost["activation"])
    assert store.meta()["cost_profile"]["share"] > 0
    store.close()
    report = render.write(tmp_path, "relu")
    row = next(r for r in report.comparison() if r["activation"] == "tanh")
    tanh = cost[cost["activation"] == "tanh"].iloc[-1]
    assert tanh["threads"] == 1 and tanh["threads_from"] == "training" and tanh["baseline"] == "relu"
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert runs["ms_per_sample"].isna().all()  # the profile timed the latency: the runs did not time it again
    steps = runs[runs["activation"] == "tanh"]["train_steps"].mean()
    if tanh["step_flag"]:  # a busy machine disturbed the measurement: no figure is published
        assert row["train (s, steps x step time)"] == "-" and pd.isna(tanh["step_ms"])
    else:
        shown = float(row["train (s, steps x step time)"].split(" [")[0])
        assert shown == pytest.approx(steps * tanh["step_ms"] / 1000, rel=0.01)  # steps x the measured step time
    assert "measured apart from training" in (tmp_path / "summary.md").read_text()
    # Resuming reuses the stored profile: nothing new is measured.
    before = len(timing.load_cost(Store(tmp_path).db))
    execute(grid, tmp_path, backend, device="cpu")
    assert len(timing.load_cost(Store(tmp_path).db)) == before


def test_runs_time_their_own_latency_unless_a_profile_covers_their_setting(tmp_path, monkeypatch):
    """Two batch sizes are two settings: a profile measured for one (the other's group was
    skipped) leaves the other's runs to time their latency themselves."""
    from afbench.sweep.backends import tasks

    measure = tasks.cost_profile
    monkeypatch.setattr(tasks, "cost_profile", lambda cache, groups, *rest: measure(cache, groups[:1], *rest))
    cells = [RunConfig(epochs=1, batch_size=b, activation=a, latency_samples=5, probe_size=64)
             for b in (64, 128) for a in ("relu", "tanh")]
    store = Store(tmp_path)
    LocalBackend(Runtime(progress=False, workers=1, stack=1, cost="on", threads=1)).execute(cells, store)
    assert len({row["batch_size"] for row in timing.load_cost(store.db).to_dict("records")}) == 1
    assert all(r["summary"]["ms_per_sample"] > 0 for r in store.runs())


def test_a_gpu_sweep_given_threads_trains_in_one_process(monkeypatch):
    monkeypatch.setattr(calibrate, "available_cores", lambda: 16)
    assert calibrate.plan(Runtime(threads=4), RunConfig(device="cuda"), None, 10)["workers"] == 1
    assert calibrate.plan(Runtime(threads=4), RunConfig(device="cpu"), None, 10)["workers"] == 4


def test_short_sweeps_skip_the_profile_and_long_ones_spend_about_five_percent():
    assert calibrate.cost_budget(Runtime(cost="auto"), 30.0, 4) is None
    assert calibrate.cost_budget(Runtime(cost="off"), 1e6, 4) is None
    assert calibrate.cost_budget(Runtime(cost="auto"), 600.0, 6) == pytest.approx(5.0)  # 5% of 600 s over 6
    assert calibrate.cost_budget(Runtime(cost="on"), 10.0, 4) == 1.0  # at least 1 s per activation


def test_raw_wall_clocks_are_flagged_when_runs_trained_differently():
    runs = pd.DataFrame({"status": ["done"] * 2, "provenance.threads": [1, 2], "provenance.stack_size": [1, 1],
                         "provenance.compiled": [False, False], "provenance.concurrent_runs": [1, 1]})
    assert "different threads" in timing.wall_clock_caveat(runs)
    alike = runs.assign(**{"provenance.threads": [2, 2]})
    assert timing.wall_clock_caveat(alike) is None


def test_the_sweeps_profile_is_measured_against_its_baseline(tmp_path):
    grid = Grid(RunConfig(epochs=1, latency_samples=5, probe_size=64, train_subset=256), ("tanh", "elu"),
                seeds=(0,))
    backend = LocalBackend(Runtime(progress=False, workers=1, stack=1, cost="on", threads=1))
    execute(grid, tmp_path, backend, device="cpu", baseline="elu")
    store = Store(tmp_path)
    cost = timing.load_cost(store.db)
    store.close()
    assert set(cost["activation"]) == {"tanh", "elu"}  # no relu measured: it is not the baseline
    assert set(cost["baseline"]) == {"elu"}
    elu = cost[cost["activation"] == "elu"].iloc[-1]
    assert elu["step_flag"] or elu["step_ratio"] == 1.0
