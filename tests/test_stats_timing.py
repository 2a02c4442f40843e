"""Issue 29: times with the uncertainty that matters (afbench.report.timing). A cost
row applies only to the setting it was measured for; time columns carry the
seed-to-seed spread of the steps and the step time's own CI, the baseline's too."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from afbench.report import tables, timing


def runs(dataset: str, steps: list[int], activation: str = "relu") -> pd.DataFrame:
    return pd.DataFrame([{"dataset": dataset, "model": "mlp", "activation": activation, "seed": s, "status": "done",
                          "train_steps": n, "epochs_run": 2, "steps_to_target": n / 2, "config.device": "cpu",
                          "config.batch_size": 128, "provenance.threads": 1, "setting": f"mlp / {dataset}"}
                         for s, n in enumerate(steps)])


def cost_row(dataset: str, step_ms: float, activation: str = "relu", low=None, high=None) -> dict:
    return {"model": "mlp", "dataset": dataset, "activation": activation, "device": "cpu", "threads": 1,
            "batch_size": 128, "step_ms": step_ms, "step_ms_low": low or step_ms * 0.98,
            "step_ms_high": high or step_ms * 1.02, "step_ratio": 1.0, "step_ratio_low": 1.0, "step_ratio_high": 1.0}


def aggregate(frame: pd.DataFrame) -> pd.DataFrame:
    return tables.aggregate(frame.assign(**{c: 0.1 for c in ("error_rate", "accuracy", "f1", "precision",
                                                                "recall", "ms_per_sample", "total_train_s")},
                                         time_to_target_s=1.0, epoch_to_target=1.0, params=10, key="k", lr=1e-3))


def test_a_cost_row_applies_only_to_its_own_data_set():
    """The audit's case: the MLP on digits (1 ms steps) and on MNIST (20 ms); both used 20 ms."""
    frame = pd.concat([runs("digits", [100, 100]), runs("mnist", [100, 100])], ignore_index=True)
    cost = pd.DataFrame([cost_row("digits", 1.0), cost_row("mnist", 20.0)])
    out = timing.cost_times(aggregate(frame), frame, cost).set_index("dataset")
    assert out.loc["digits", "cost_train_s_mean"] == pytest.approx(0.1)
    assert out.loc["mnist", "cost_train_s_mean"] == pytest.approx(2.0)


def test_time_columns_carry_the_seed_spread_and_the_step_time_ci():
    steps = [12, 48, 30, 20]
    frame = runs("digits", steps)
    cost = pd.DataFrame([cost_row("digits", 10.0, low=9.0, high=11.0)])  # the baseline's own CI: not zero width
    out = timing.cost_times(aggregate(frame), frame, cost).iloc[0]
    mean = np.mean(steps) * 0.01
    seed_half = sps.t.ppf(0.975, 3) * np.std(steps, ddof=1) / 2 / np.mean(steps)
    step_half = (math.log(11) - math.log(9)) / 2
    half = math.hypot(seed_half, step_half)
    assert out["cost_train_s_mean"] == pytest.approx(mean)
    assert out["cost_train_s_sd"] == pytest.approx(np.std(steps, ddof=1) * 0.01)
    assert (out["cost_train_s_low"], out["cost_train_s_high"]) == pytest.approx((mean * math.exp(-half),
                                                                                 mean * math.exp(half)))
    assert out["cost_train_s_high"] / out["cost_train_s_low"] > 11 / 9  # wider than the step time's CI alone
    cell = tables._cell(out, "cost_train_s", "{:.3g}")
    assert "±" in cell and "[" in cell


def test_a_profile_that_did_not_converge_is_flagged():
    wide = {**cost_row("digits", 10.0), "step_ratio": 1.0, "step_ratio_low": 0.07, "step_ratio_high": 6.6,
            "stop": "budget"}
    assert "stopped on its budget" in timing.unsettled(wide) and "ratio CI" in timing.unsettled(wide)
    assert timing.unsettled({**cost_row("digits", 10.0), "step_ratio_low": 0.99, "step_ratio_high": 1.01,
                             "stop": "converged"}) == ""


def test_the_cost_table_shows_the_baselines_own_step_time_ci():
    point = pd.Series({**cost_row("digits", 10.0, low=9.5, high=10.5), "saved_bytes_per_sample": 100.0,
                       "error_mean": 1.0})
    row = timing.cost_rows(pd.DataFrame([point]))[0]
    assert row["step (ms) [95% CI]"] == "10 [9.5, 10.5]" and row["ratio [95% CI]"] == "1.000 [1.000, 1.000]"
