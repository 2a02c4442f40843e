"""The report judges every workload in its own primary metric and direction."""

import numpy as np
import pandas as pd
import pytest

from afbench.report import tables


def _runs(metric: str, higher_is_better: bool, values: dict[str, list[float]]) -> pd.DataFrame:
    rows = [{"key": f"{a}{seed}", "activation": a, "model": "mlp", "dataset": "special:j0", "seed": seed,
             "lr": 1e-3, "status": "done", "error_rate": None, "primary_metric": metric,
             "higher_is_better": higher_is_better, "primary_value": v}
            for a, vs in values.items() for seed, v in enumerate(vs)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("higher_is_better, verdict", [(True, "better"), (False, "worse")])
def test_a_higher_value_is_better_or_worse_as_the_metric_says(higher_is_better, verdict):
    relu = [20.0, 21.0, 19.5, 20.5, 22.0, 20.2]
    sine = [r + d for r, d in zip(relu, [1.0, 2.0, 1.5, 0.5, 1.2, 0.8])]  # higher on every seed
    tests = tables.workload_tests(_runs("psnr", higher_is_better, {"relu": relu, "sine": sine}), "relu")
    row = tests.iloc[0]
    assert row["verdict"] == verdict and row["metric"] == "psnr"
    assert row["mean_diff"] == pytest.approx(np.mean(np.subtract(sine, relu)))
    assert row["p_holm"] == pytest.approx(2 / 2 ** 6)  # exact sign-flip: only all-plus and all-minus as extreme


def test_classification_runs_are_left_to_the_error_tests():
    runs = pd.concat([_runs("bpc", False, {"relu": [2.0, 2.1], "gelu": [1.9, 2.0]}),
                      _runs(None, None, {"relu": [0.1, 0.1], "gelu": [0.1, 0.1]}).assign(dataset="digits")])
    assert list(tables.is_classification(runs)) == [False] * 4 + [True] * 4
    tests = tables.workload_tests(runs, "relu")
    assert list(tests["dataset"]) == ["special:j0"] and list(tests["verdict"]) == ["undecided"]


def test_the_verdict_line_prints_the_interval_of_its_holm_p_or_says_there_is_none():
    """Beside a Holm p over 2 comparisons: the simultaneous (97.5%) t interval, checked with
    scipy; one seed: no interval, never 'CI +nan to +nan'."""
    from scipy import stats as scipy_stats

    from afbench.report.render import workload_lines

    relu = [1.0, 1.2, 0.9, 1.1, 1.05]
    values = {"relu": relu, "tanh": [r + d for r, d in zip(relu, [0.1, 0.3, 0.2, 0.25, 0.15])],
              "gelu": [r - 0.01 for r in relu]}
    text = " ".join(workload_lines(tables.workload_tests(_runs("mse", False, values), "relu")))
    diff = np.array([0.1, 0.3, 0.2, 0.25, 0.15])
    low, high = scipy_stats.t.interval(0.975, len(diff) - 1, loc=diff.mean(), scale=scipy_stats.sem(diff))
    assert f"97.5% CI {low:+.3g} to {high:+.3g}, simultaneous over the 2 comparisons" in text
    one = " ".join(workload_lines(tables.workload_tests(_runs("mse", False, {"relu": [1.0], "tanh": [1.1]}), "relu")))
    assert "no interval from one seed" in one and "nan" not in one and "1 seed)" in one


def test_another_metric_s_intervals_are_never_clipped_to_an_error_s_range():
    """Only an error rate has a range (a difference within +-100 pp): an mse difference
    of 4 keeps its interval; the suite clips a classification workload's only."""
    from afbench.suite import score

    runs = _runs("mse", False, {"relu": [1.0, 1.0, 1.0], "tanh": [5.0, 1.0, 9.0]})
    row = tables.workload_tests(runs, "relu").iloc[0]
    assert row["mean_diff"] == pytest.approx(4.0) and row["ci_high"] > 10 and row["ci_low"] < -1
    mse = score._tests(runs, "relu", 0.01, False, 9.0, "mse").loc["tanh"]
    assert mse["ci_high"] == pytest.approx(row["ci_high"])
    errors = runs.assign(primary_value=runs["primary_value"] / 10)  # 0.1 and 0.5, 0.1, 0.9: error rates
    error = score._tests(errors, "relu", 0.01, False, 1.0, "error_rate").loc["tanh"]
    assert error["ci_high"] == 1 and error["ci_low"] == pytest.approx(row["ci_low"] / 10)


def test_without_a_margin_identical_values_are_undecided_never_equivalent():
    import pandas as pd

    from afbench.stats import paired
    from afbench.stats.sequential import Design, replay

    rows = [{"dataset": "special:j0", "model": "mlp", "activation": a, "seed": s, "status": "done", "mse": 0.5}
            for a in ("relu", "tanh") for s in range(6)]
    frame = pd.DataFrame(rows)
    fixed = paired.verdicts(frame, "mse", "relu", equivalence=0.0)
    assert list(fixed["verdict"]) == ["undecided"]
    looked = replay(frame, "relu", Design(looks=(3, 6), metric="mse", margin=0.0))
    assert list(looked["verdict"]) == ["undecided"]
    assert list(paired.verdicts(frame, "mse", "relu", equivalence=0.01)["verdict"]) == ["equivalent"]


def test_a_workload_verdict_line_gives_its_own_settings_means():
    """The review's case: regression at epochs 1 and 5 in one folder. Each line's means
    are its setting's (by hand), and the heading names the setting."""
    import pandas as pd

    from afbench.report import render, tables

    values = {(1, "relu"): [0.9, 1.0, 1.1, 1.0, 0.95, 1.05, 1.0, 0.98], (1, "gelu"): [0.8] * 8,
              (5, "relu"): [0.10, 0.11, 0.10, 0.12, 0.09, 0.11, 0.10, 0.12],
              (5, "gelu"): [0.12, 0.13, 0.12, 0.14, 0.11, 0.13, 0.12, 0.14]}
    runs = pd.DataFrame([{"key": f"{e}-{a}-{s}", "activation": a, "model": "mlp", "dataset": "friedman1", "seed": s,
                          "status": "done", "primary_metric": "mse", "higher_is_better": False, "primary_value": v,
                          "config.epochs": e} for (e, a), vs in values.items() for s, v in enumerate(vs)])
    tests = tables.workload_tests(runs, "relu").set_index("setting")
    late = tests.loc["mlp / friedman1, epochs=5"]
    assert late["mean"] == pytest.approx(sum(values[(5, "gelu")]) / 8)
    assert late["baseline_mean"] == pytest.approx(sum(values[(5, "relu")]) / 8)
    assert late["verdict"] == "worse"
    text = "\n".join(render.workload_lines(tables.workload_tests(runs, "relu")))
    assert "On mlp / friedman1, epochs=5: test mse" in text and "gelu: worse, mse 0.1263" in text
