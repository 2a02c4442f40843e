"""The tables' ms/sample (batch-1 latency) comes from the cost profile, with its 95% CI,
where a profile was measured for the runs' setting; elsewhere the runs' own value stays,
headed as measured in the run. A run times its latency while other runs may train
beside it (one S1 run: elu 1.00 ms against relu 0.68 ms, a gap the profile does not
show), so the two sources never share a column."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from afbench.cost import timing as cost_timing
from afbench.cost.profile import _timed_columns


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
