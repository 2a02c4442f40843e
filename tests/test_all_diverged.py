"""A comparison between runs that all diverged has nothing to compare: its verdict is
"diverged" with n = 0, never "equivalent" with a mean difference of 0 (two fills at
100% error), and the report says so in plain words. One side diverging keeps its
documented treatment: counted at 100% error."""

import pandas as pd
from test_stats_verdicts import store_runs

from afbench.report import render
from afbench.stats import paired as stats


def rows(errors: dict[str, list[float | None]]) -> pd.DataFrame:
    """None: a diverged run (no error rate)."""
    return pd.DataFrame([{"dataset": "d", "model": "m", "activation": a, "seed": s,
                          "status": "diverged" if e is None else "done", "error_rate": e}
                         for a, values in errors.items() for s, e in enumerate(values)])


def test_every_run_diverged_is_not_equivalent():
    out = stats.verdicts(rows({"relu": [None, None], "tanh": [None, None]}), worst=1.0).set_index("activation")
    assert out.loc["tanh", "verdict"] == "diverged"
    assert out.loc["tanh", "n"] == 0 and out.loc["tanh", "both_diverged"] == 2
    assert pd.isna(out.loc["tanh", "mean_diff"])  # not 0: nothing was measured


def test_both_diverged_on_every_seed_with_others_finished():
    out = stats.verdicts(rows({"relu": [0.10, 0.12, None], "tanh": [None, None, None],
                               "gelu": [0.10, 0.12, None]}), worst=1.0).set_index("activation")
    # tanh diverged alone on seeds 0 and 1 (counted at 100% error), with relu on seed 2 (left out)
    assert out.loc["tanh", "n"] == 2 and out.loc["tanh", "diverged"] == 2
    assert out.loc["tanh", "both_diverged"] == 1
    assert out.loc["tanh", "verdict"] != "equivalent"
    # gelu matches relu on the seeds both finished; their shared divergence is not a 0 difference
    assert out.loc["gelu", "n"] == 2 and out.loc["gelu", "both_diverged"] == 1


def test_one_side_diverging_still_counts_at_the_worst_error():
    out = stats.verdicts(rows({"relu": [0.10, 0.12, 0.11], "tanh": [None, 0.12, 0.11]}),
                         worst=1.0).set_index("activation")
    assert out.loc["tanh", "n"] == 3 and out.loc["tanh", "diverged"] == 1
    assert out.loc["tanh", "mean_diff"] > 0.2  # 100% - 10% on seed 0


def test_the_report_says_every_run_diverged(tmp_path):
    store_runs(tmp_path, {"relu": [None, None], "tanh": [None, None]})
    report = render.write(tmp_path, "relu")
    assert list(report.tests["verdict"]) == ["diverged"] and list(report.tests["n"]) == [0]
    text = " ".join(render.verdict_text(report))
    assert "every run diverged" in text and "nothing can be compared" in text
    assert "equivalent" not in text
    tests_csv = pd.read_csv(tmp_path / "tests.csv")
    assert list(tests_csv["verdict"]) == ["diverged"] and list(tests_csv["n"]) == [0]
    stats_csv = pd.read_csv(tmp_path / "summary_stats.csv").set_index("activation")
    assert stats_csv.loc["tanh", "verdict"] == "diverged (n=0)"
    assert "every run diverged" in (tmp_path / "summary.md").read_text()


def test_a_diverged_comparison_is_named_beside_finished_ones(tmp_path):
    """relu and tanh diverged on every seed, gelu finished: gelu is judged against relu's
    divergences (100% error), tanh cannot be compared at all."""
    store_runs(tmp_path, {"relu": [None, None], "tanh": [None, None], "gelu": [0.10, 0.12]})
    report = render.write(tmp_path, "relu")
    verdicts = report.tests.set_index("activation")["verdict"]
    assert verdicts["tanh"] == "diverged" and verdicts["gelu"] != "diverged"
    text = " ".join(render.verdict_text(report))
    assert "tanh cannot be compared with relu: both diverged on every seed" in text


def test_a_sweep_where_every_run_diverged_exits_non_zero(tmp_path, capsys):
    """The hostile-input review's case: --lr 1e308 on digits (1 s, in this process)."""
    from afbench.cli import main

    code = main(["run", "--activations", "relu,tanh", "--seeds", "2", "--epochs", "1", "--lr", "1e308",
                 "--out", str(tmp_path / "out"), "--no-progress", "--workers", "1", "--threads", "1",
                 "--stack", "1", "--cost-profile", "off", "--device", "cpu"])
    assert code == 1
    assert "every run diverged" in capsys.readouterr().err
    tests_csv = pd.read_csv(tmp_path / "out" / "tests.csv")
    assert list(tests_csv["verdict"]) == ["diverged"] and list(tests_csv["n"]) == [0]
    assert (tmp_path / "out" / "report.html").exists()  # the report is still written
