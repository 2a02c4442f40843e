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
