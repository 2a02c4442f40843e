"""The tables' ms/sample (batch-1 latency) comes from the cost profile, with its 95% CI,
where a profile was measured for the runs' setting; elsewhere the runs' own value stays,
headed as measured in the run. A run times its latency while other runs may train
beside it, so the two sources never share a column."""

import math
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from afbench.cost import timing as cost_timing
from afbench.cost.profile import _timed_columns
from afbench.report import render, tables, timing
from afbench.store.database import Store
from afbench.store.reading import StoreView

from report_sweeps import fake_sweep

FIXTURES = Path(__file__).parent / "fixtures"
SMALL_V1 = Path(__file__).resolve().parents[1] / "src" / "afbench" / "suite" / "baselines" / "small-v1.sqlite"
ERRORS = {"relu": [0.10, 0.12, 0.11], "tanh": [0.13, 0.14, 0.12]}
PROFILED, IN_RUN = "ms/sample (cost profile)", "ms/sample (in run)"


# ---- the profile's CI ---------------------------------------------------------------------------

def _rounds(latencies: list[float]) -> cost_timing.Rounds:
    """Rounds of one activation whose per-round batch-1 latencies are ``latencies`` (ms)."""
    per_round = [{"step_ms": 2.0, "forward_ms": 0.8, "backward_ms": 1.0, "optimizer_ms": 0.2, "latency_ms": ms,
                  "latency_batch_ms": 1.5, "latency_mean_ms": ms, "latency_batch_mean_ms": 1.5}
                 for ms in latencies]
    return cost_timing.Rounds(["relu"], "relu", orders=[["relu"]] * len(latencies), times={"relu": per_round})


def _t_interval_of_logs(values: list[float]) -> tuple[float, float, float]:
    """Written apart from the code under test: scipy's t interval of the mean log, mapped back."""
    logs = np.log(values)
    low, high = sps.t.interval(0.95, len(logs) - 1, loc=logs.mean(), scale=sps.sem(logs))
    return math.exp(logs.mean()), math.exp(low), math.exp(high)


def test_the_latency_ci_is_the_t_interval_of_the_per_round_log_latencies():
    latencies = [0.31, 0.29, 0.35, 0.30, 0.33, 0.28, 0.32]
    row = _timed_columns(_rounds(latencies), "relu", None, None)
    centre, low, high = _t_interval_of_logs(latencies)
    assert (row["latency_ms"], row["latency_ms_low"], row["latency_ms_high"]) == pytest.approx((centre, low, high))
    assert row["latency_ms_low"] <= float(np.median(latencies)) <= row["latency_ms_high"]
    assert row["latency_ms_low"] < row["latency_ms"] < row["latency_ms_high"]


def test_the_latency_ci_narrows_with_more_rounds():
    pattern = [0.31, 0.29, 0.35, 0.30]
    few, many = (_timed_columns(_rounds(pattern * k), "relu", None, None) for k in (2, 8))
    assert few["latency_ms"] == pytest.approx(many["latency_ms"])  # same values, so the same centre
    assert many["latency_ms_high"] - many["latency_ms_low"] < (few["latency_ms_high"] - few["latency_ms_low"]) / 2


def test_a_split_of_fast_and_stalled_rounds_keeps_the_latency_inside_its_own_ci():
    """60 rounds at 1 ms, 40 stalled at 2 ms: the median (1 ms) lies outside the CI of the
    geometric mean, so the profile publishes the geometric mean with its CI, as for the step."""
    row = _timed_columns(_rounds([1.0] * 60 + [2.0] * 40), "relu", None, None)
    assert row["latency_ms_low"] <= row["latency_ms"] <= row["latency_ms_high"]
    assert row["latency_ms_low"] > 1.0


# ---- the report ---------------------------------------------------------------------------------

def _profile_row(activation: str, latency_ms: float, with_ci: bool = True) -> dict:
    """A cost row for fake_sweep's setting (mlp on digits, cpu, batch 128); without the CI
    as rows measured before it was stored."""
    row = {"activation": activation, "model": "mlp", "dataset": "digits", "input_shape": "1x8x8", "device": "cpu",
           "threads": 1, "batch_size": 128, "afbench_version": "0.2.0", "profile_id": "p", "measured_at": 1.0,
           "optimizer": "adam", "norm": None, "match_params": False, "step_ms": 1.0, "step_ms_low": 0.98,
           "step_ms_high": 1.02, "step_ratio": 1.0, "step_ratio_low": 1.0, "step_ratio_high": 1.0,
           "saved_bytes_per_sample": 100.0, "latency_ms": latency_ms}
    if with_ci:
        row.update(latency_ms_low=latency_ms * 0.95, latency_ms_high=latency_ms * 1.05)
    return row


def _report(folder: Path, profile_rows: list[dict]):
    fake_sweep(folder, ERRORS)  # every run timed 0.1 ms/sample itself
    if profile_rows:
        store = Store(folder)
        store.save_cost(profile_rows)
        store.close()
    with StoreView(folder) as view:
        return render.build(view)


def _rows(report) -> dict[str, dict]:
    return {row["activation"]: row for row in report.comparison()}


def test_the_table_takes_the_profiles_latency_and_ci_where_a_profile_matches(tmp_path):
    report = _report(tmp_path, [_profile_row("relu", 0.2), _profile_row("tanh", 0.4)])
    rows = _rows(report)
    assert rows["relu"][PROFILED] == "0.2 [0.19, 0.21]" and rows["tanh"][PROFILED] == "0.4 [0.38, 0.42]"
    assert IN_RUN not in rows["relu"] and "ms/sample" not in rows["relu"]  # one source, named


def test_the_table_keeps_the_runs_latency_headed_in_run_where_no_profile_matches(tmp_path):
    report = _report(tmp_path, [])
    rows = _rows(report)
    assert rows["relu"][IN_RUN] == "0.1000 ± 0.0000" and PROFILED not in rows["relu"]


def test_a_profile_of_some_activations_gives_two_columns_never_one_mixed(tmp_path):
    report = _report(tmp_path, [_profile_row("relu", 0.2)])
    rows = _rows(report)
    assert (rows["relu"][PROFILED], rows["relu"][IN_RUN]) == ("0.2 [0.19, 0.21]", "-")
    assert (rows["tanh"][PROFILED], rows["tanh"][IN_RUN]) == ("-", "0.1000 ± 0.0000")


def test_a_profile_of_another_setting_does_not_stand_in(tmp_path):
    report = _report(tmp_path, [{**_profile_row("relu", 0.2), "batch_size": 32, "profile_id": "b32"}])
    assert IN_RUN in _rows(report)["relu"] and PROFILED not in _rows(report)["relu"]


def test_the_report_files_name_the_source_and_runs_csv_keeps_each_runs_own_value(tmp_path):
    fake_sweep(tmp_path, ERRORS)
    store = Store(tmp_path)
    store.save_cost([_profile_row("relu", 0.2), _profile_row("tanh", 0.4)])
    store.close()
    render.write(tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    assert PROFILED in summary and "0.2 [0.19, 0.21]" in summary and IN_RUN not in summary
    assert "geometric mean over rounds and its 95% CI" in summary
    assert (pd.read_csv(tmp_path / "runs.csv")["ms_per_sample"] == 0.1).all()
    stats_csv = pd.read_csv(tmp_path / "summary_stats.csv").set_index("activation")
    assert stats_csv.loc["tanh", "cost_latency_ms_mean"] == pytest.approx(0.4)
    assert stats_csv.loc["tanh", "ms_per_sample_mean"] == pytest.approx(0.1)  # the runs' own, under its own name


def _sweep_with_threads(folder: Path, threads: list[int] | dict[str, list[int]], failed: bool = False,
                        profiles: tuple[int, ...] = (1,)) -> None:
    """Runs of relu and tanh (one per entry of ``threads``, the threads each trained with;
    a dict gives each activation its own) that timed no latency themselves, as in a sweep
    whose profile measured it; with ``failed``, one more run that failed (no provenance at
    all). ``profiles``: the thread counts profiles were measured with (at t threads every
    time and latency is t times the 1-thread one, so a mix would show)."""
    from afbench.config import RunConfig
    from afbench.results import EpochRecord, RunSummary, Status

    store = Store(folder)
    for activation in ("relu", "tanh"):
        for seed, count in enumerate(threads[activation] if isinstance(threads, dict) else threads):
            run = RunConfig(activation=activation, seed=seed, device="cpu", epochs=1)
            store.claim(run)
            store.record_epoch(run.key(), EpochRecord(1, 0.5, 0.9, 1.0, 1.0, train_steps=10, test_loss=0.1,
                                                      test_acc=0.9))
            summary = RunSummary(params=1000, epochs_run=1, total_train_s=1.0, train_steps=10)
            summary.accuracy, summary.error_rate, summary.f1 = 0.9, 0.1 + seed / 100, 0.9
            store.finish(run.key(), Status.DONE, summary, {"stack_size": 1, "threads": count,
                                                           "latency": "not timed in the run"})
    if failed:
        run = RunConfig(activation="relu", seed=len(threads), device="cpu", epochs=1)
        store.claim(run)
        store.fail(run.key(), "RuntimeError: boom")
    for t in profiles:
        store.save_cost([{**_profile_row(name, ms * t), "threads": t, "step_ms": t, "step_ms_low": 0.98 * t,
                          "step_ms_high": 1.02 * t, "profile_id": f"p{t}"} for name, ms in (("relu", 0.2), ("tanh", 0.4))])
    store.close()


def test_a_failed_run_beside_them_does_not_hide_the_profiles_latency(tmp_path):
    """A failed run has no provenance, so the runs' threads read as floats (1.0): still the profile's 1."""
    _sweep_with_threads(tmp_path, [1, 1, 1], failed=True)
    with StoreView(tmp_path) as view:
        rows = _rows(render.build(view))
    assert rows["relu"][PROFILED] == "0.2 [0.19, 0.21]" and rows["tanh"][PROFILED] == "0.4 [0.38, 0.42]"


def test_runs_of_two_layouts_take_the_profile_of_the_one_it_was_measured_for(tmp_path):
    """--seeds auto's later rounds (or a second sweep) may train with 2 threads where the first
    trained two 1-thread workers and measured its profile with 1 thread."""
    _sweep_with_threads(tmp_path, [1, 2, 2])
    with StoreView(tmp_path) as view:
        rows = _rows(render.build(view))
    assert rows["relu"][PROFILED] == "0.2 [0.19, 0.21]"


def test_every_row_of_a_setting_takes_profiles_of_one_thread_count(tmp_path):
    """relu went on for more --seeds auto rounds with 2 threads, tanh stopped after the
    1-thread round: each row's own most common count would give relu the 2-thread times
    and tanh the 1-thread ones, a 2x gap from the threads alone."""
    _sweep_with_threads(tmp_path, {"relu": [1, 1, 1, 2, 2, 2, 2], "tanh": [1, 1, 1]}, profiles=(1, 2))
    with StoreView(tmp_path) as view:
        rows = _rows(render.build(view))
    assert rows["relu"][PROFILED] == "0.2 [0.19, 0.21]" and rows["tanh"][PROFILED] == "0.4 [0.38, 0.42]"


def test_runs_that_left_their_latency_to_a_profile_gone_since_are_named_with_that_reason(tmp_path):
    _sweep_with_threads(tmp_path, [1, 1], profiles=())  # one run at a time, the profile not stored (merged away)
    render.write(tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    assert "No ms/sample for relu, tanh: the runs left it to the cost profile" in summary
    assert "side by side, where no run" not in summary and PROFILED not in summary and IN_RUN not in summary


# ---- databases from before the latency CI --------------------------------------------------------

def test_cost_rows_without_the_latency_ci_still_report_the_profiles_latency(tmp_path):
    report = _report(tmp_path, [_profile_row("relu", 0.2, with_ci=False), _profile_row("tanh", 0.4, with_ci=False)])
    rows = _rows(report)
    assert (rows["relu"][PROFILED], rows["tanh"][PROFILED]) == ("0.2", "0.4")


def test_the_0_2_0_database_reports_its_profiles_latency(tmp_path):
    """The fixture's cost rows (1 thread) were measured before the latency CI; its runs
    trained with 2 threads, so the rows are moved to 2 threads to match them here."""
    folder = tmp_path / "out"
    folder.mkdir()
    shutil.copy(FIXTURES / "results-v0.2.0.sqlite", folder / "results.sqlite")
    db = sqlite3.connect(folder / "results.sqlite")
    stored = dict(db.execute("SELECT activation, json_extract(record, '$.latency_ms') FROM cost").fetchall())
    assert not db.execute("SELECT COUNT(*) FROM cost WHERE json_extract(record, '$.latency_ms_low') "
                          "IS NOT NULL").fetchone()[0]
    db.execute("UPDATE cost SET threads = 2, record = json_set(record, '$.threads', 2)")
    db.commit()
    db.close()
    render.write(folder)
    with StoreView(folder) as view:
        rows = _rows(render.build(view))
    assert {a: r[PROFILED] for a, r in rows.items()} == {a: f"{ms:.3g}" for a, ms in stored.items()}
    assert PROFILED in (folder / "summary.md").read_text()


def test_the_shipped_small_v1_baselines_still_read(tmp_path):
    shutil.copy(SMALL_V1, tmp_path / "results.sqlite")
    with StoreView(tmp_path) as view:
        runs = tables.runs_frame(view.records())
        cost = timing.load_cost(view)
    aggregate = tables.aggregate(runs[runs["status"] == "done"])
    out = timing.cost_latency(timing.cost_times(aggregate, runs, cost), runs, cost)
    assert len(out) == len(aggregate) > 0
    assert tables.latency_columns(out) == timing.IN_RUN_LATENCY  # no profile stored: the runs' own, so headed


def test_a_profile_whose_every_step_time_was_withheld_reports_without_times(tmp_path):
    """A busy machine can withhold every row's step figures (stored as null): the report
    is written all the same, with no cost-based times and the rows' latency kept."""
    withheld = {"step_ms": None, "step_ms_low": None, "step_ms_high": None, "step_ratio": None,
                "step_ratio_low": None, "step_ratio_high": None, "step_flag": "its rounds vary by 423%"}
    fake_sweep(tmp_path, ERRORS)
    store = Store(tmp_path)
    store.save_cost([{**_profile_row(a, 0.2), **withheld} for a in ("relu", "tanh")])
    store.close()
    render.write(tmp_path)
    stats_csv = pd.read_csv(tmp_path / "summary_stats.csv")
    assert stats_csv["cost_train_s_mean"].isna().all()
    assert (tmp_path / "summary.md").exists()
