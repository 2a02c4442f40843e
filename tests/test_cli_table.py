"""The console's comparison table, on a report made by hand: what it shows, and that it fits."""

from types import SimpleNamespace

import pandas as pd

from afbench.cli.table import format_compact


def _report(names: list[str], means: list[float], sds: list[float], times: list[float], verdicts: dict[str, str]):
    aggregate = pd.DataFrame({"dataset": "digits", "model": "mlp", "activation": names, "runs": 10, "done": 10,
                              "diverged": 0, "params": 1234567, "error_rate_mean": means, "error_rate_sd": sds})
    kept = pd.DataFrame([{"dataset": "digits", "model": "mlp", "activation": n, "status": "done",
                          "total_train_s": t * stack, "provenance.stack_size": stack}
                         for n, t in zip(names, times) for stack in (1, 2, 2)])  # each run's share: t
    tests = pd.DataFrame([{"dataset": "digits", "model": "mlp", "activation": n, "verdict": v}
                          for n, v in verdicts.items()])
    return SimpleNamespace(aggregate=aggregate, kept=kept, tests=tests, baseline=names[0])


def test_the_columns_that_decide_with_one_precision():
    report = _report(["relu", "sigmoid", "gelu"], [2.6101, 3.5, 2.666], [0.4, 0.6049, 0.5], [1.0, 2.5, 1.2],
                     {"sigmoid": "worse", "gelu": "undecided"})
    rows, legend = format_compact(report)
    table = {line.split()[0]: line for line in rows if line.split() and line.split()[0] in ("relu", "sigmoid",
                                                                                            "gelu")}
    assert "2.61 ± 0.40" in table["relu"] and "baseline" in table["relu"] and "1.00" in table["relu"]
    assert "3.50 ± 0.60" in table["sigmoid"] and "▲ worse" in table["sigmoid"] and "2.50" in table["sigmoid"]
    assert "2.67 ± 0.50" in table["gelu"] and "? undecided" in table["gelu"] and "1.20" in table["gelu"]
    assert all("1,234,567" in line for line in table.values())
    assert any("▲ worse" in line for line in legend)


def test_long_names_get_an_alias_and_every_row_fits_80_columns():
    formula = "x * sigmoid(1.5 * x) + 0.25 * tanh(x) * exp(-x * x)"
    report = _report(["relu", formula], [12.345, 100.5], [1.0, 10.25], [1.0, 30.0], {formula: "better"})
    rows, legend = format_compact(report)
    assert all(len(line) <= 80 for line in rows)
    assert any(line.startswith("a1 ") and "▼ better" in line for line in rows)
    assert f"a1 = {formula}" in legend
    assert any("100.5 ± 10.2" in line for line in rows) or any("100.5 ± 10.3" in line for line in rows)
    assert any("12.3 ± 1.0" in line for line in rows)  # one precision per column: 1 decimal once a mean is >= 100


def test_each_setting_gets_its_own_block_verdicts_and_times():
    """A folder with runs of two settings (epochs 1 and 3): one block each, headed by what
    tells them apart; a verdict or time of one setting never shows in the other's."""
    settings = {"mlp / digits, epochs=1": ("worse", 3.0), "mlp / digits, epochs=3": ("better", 0.5)}
    aggregate = pd.DataFrame([{"setting": s, "dataset": "digits", "model": "mlp", "activation": a, "runs": 3,
                               "done": 3, "params": 100, "error_rate_mean": 5.0, "error_rate_sd": 1.0}
                              for s in settings for a in ("relu", "tanh")])
    kept = pd.DataFrame([{"setting": s, "dataset": "digits", "model": "mlp", "activation": a, "status": "done",
                          "total_train_s": (time if a == "tanh" else 1.0) * (1 if s.endswith("1") else 10)}
                         for s, (_, time) in settings.items() for a in ("relu", "tanh") for _ in range(3)])
    tests = pd.DataFrame([{"setting": s, "dataset": "digits", "model": "mlp", "activation": "tanh", "verdict": v}
                          for s, (v, _) in settings.items()])
    rows, _ = format_compact(SimpleNamespace(aggregate=aggregate, kept=kept, tests=tests, baseline="relu"))
    headings = [line for line in rows if line.startswith("mlp on digits")]
    assert [h.split(":")[0] for h in headings] == ["mlp on digits (epochs=1)", "mlp on digits (epochs=3)"]
    tanh = [line for line in rows if line.startswith("tanh")]
    assert "▲ worse" in tanh[0] and "3.00" in tanh[0]
    assert "▼ better" in tanh[1] and "0.50" in tanh[1]


def test_a_setting_with_its_own_metric_shows_that_metric_and_its_verdicts():
    """Regression (mse, lower is better): the column is the mse, not an empty test error."""
    aggregate = pd.DataFrame([{"setting": "mlp / special:j0", "dataset": "special:j0", "model": "mlp",
                               "activation": a, "runs": 3, "done": 3, "params": 10, "error_rate_mean": float("nan"),
                               "error_rate_sd": float("nan")} for a in ("relu", "tanh")])
    kept = pd.DataFrame([{"setting": "mlp / special:j0", "dataset": "special:j0", "model": "mlp", "activation": a,
                          "status": "done", "total_train_s": 1.0, "primary_metric": "mse", "primary_value": v}
                         for a, values in (("relu", (0.01, 0.02, 0.03)), ("tanh", (0.5, 0.5, 0.5))) for v in values])
    workload_tests = pd.DataFrame([{"setting": "mlp / special:j0", "dataset": "special:j0", "model": "mlp",
                                    "activation": "tanh", "verdict": "worse"}])
    report = SimpleNamespace(aggregate=aggregate, kept=kept, tests=pd.DataFrame(), workload_tests=workload_tests,
                             baseline="relu")
    rows, _ = format_compact(report)
    assert rows[0].startswith("mlp on special:j0: test mse over seeds")
    assert "test mse" in rows[1] and "test error" not in rows[1]
    relu = next(line for line in rows if line.startswith("relu"))
    tanh = next(line for line in rows if line.startswith("tanh"))
    assert "0.02 ± 0.01" in relu and "0.5 ± 0" in tanh and "▲ worse" in tanh


def test_a_diverged_comparison_is_explained_under_the_table():
    report = _report(["relu", "tanh"], [2.0, 3.0], [0.1, 0.2], [1.0, 1.0], {"tanh": "diverged"})
    rows, legend = format_compact(report)
    assert any(line.startswith("tanh") and "diverged" in line for line in rows)
    assert any(line.startswith("diverged: no seed where both it and the baseline finished") for line in legend)
    _, plain = format_compact(_report(["relu", "tanh"], [2.0, 3.0], [0.1, 0.2], [1.0, 1.0], {"tanh": "worse"}))
    assert not any(line.startswith("diverged") for line in plain)


def test_the_console_verdict_of_a_mostly_diverged_activation_is_the_reports(tmp_path):
    """The review's case: tanh finished one seed and diverged on seven. The report says
    worse (8 pairs, diverged at 100%: p = 2/2^8); the console row must not stay blank."""
    from afbench.cli.table import compact_rows
    from test_stats_verdicts import build, store_runs

    store_runs(tmp_path, {"relu": [0.10, 0.12, 0.11, 0.13, 0.10, 0.12, 0.11, 0.14], "tanh": [0.2] + [None] * 7})
    report = build(tmp_path)
    assert report.tests.set_index("activation").loc["tanh", "verdict"] == "worse"
    rows = {row["activation"]: row for row in compact_rows(report)[0][2]}
    assert rows["tanh"]["verdict"] == "worse" and rows["tanh"]["n"] == 1


def test_runs_too_short_for_their_clocks_get_no_time_ratio_and_the_legend_says_why():
    """The hostile-input review's case: three identical reruns of a 0.2 s sweep gave tanh
    1.15, 0.01 and 0.93 times relu's. Under a second of training a ratio is noise."""
    report = _report(["relu", "tanh"], [2.6, 3.0], [0.4, 0.5], [0.17, 0.0016], {"tanh": "worse"})
    rows, legend = format_compact(report)
    tanh = next(line for line in rows if line.startswith("tanh"))
    assert "0.01" not in tanh and " - " in tanh
    assert any("too short for their own clocks" in line for line in legend)


def test_a_long_setting_heading_wraps_within_80_columns():
    aggregate = pd.DataFrame([{"setting": "mlp / digits, epochs=1, batch_size=128", "dataset": "digits",
                               "model": "mlp", "activation": a, "runs": 3, "done": 3, "diverged": 0, "params": 100,
                               "error_rate_mean": 5.0, "error_rate_sd": 1.0} for a in ("relu", "tanh")])
    report = SimpleNamespace(aggregate=aggregate, kept=pd.DataFrame(), tests=pd.DataFrame(), baseline="relu")
    rows, _ = format_compact(report)
    assert all(len(line) <= 80 for line in rows) and rows[0].startswith("mlp on digits (epochs=1, batch_size=128)")
