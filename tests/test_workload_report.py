"""A non-image workload's report says its own primary metric (mse, bpc, psnr) in every
file it writes, as the console table does: the comparison table, --wide, summary.csv,
summary_stats.csv, tests.csv and --json."""

import pandas as pd
import pytest

from afbench.cli.run import verdicts
from afbench.cli.table import compact_rows, format_wide
from afbench.report import render
from workload_sweeps import fake_workload_sweep

RELU = [0.50, 0.52, 0.49, 0.51, 0.55, 0.50, 0.53]  # 7 seeds: one sign on every seed decides 2 comparisons
VALUES = {"relu": RELU, "tanh": [v + 0.2 + 0.01 * i for i, v in enumerate(RELU)],  # worse on every seed
          "gelu": [v + (0.01 if i % 2 else -0.01) for i, v in enumerate(RELU)]}  # undecided


def test_every_file_of_a_workload_report_holds_its_metric_and_verdicts(tmp_path):
    report = render.write(fake_workload_sweep(tmp_path, VALUES))
    console = {r["activation"]: r for _, metric, rows in compact_rows(report) for r in rows}
    # the comparison table (summary.md, report.html, summary.tex and --wide) has an mse column, marked
    table = report.table()
    assert "mse" in table.columns and "error (%)" not in table.columns and "F1" not in table.columns
    records = {r["activation"]: r for r in table.records()}
    assert records["tanh"]["mse"] == f"{console['tanh']['mean']:.4g} ± {console['tanh']['sd']:.4g} ▲"
    assert records["tanh"]["vs baseline"] == "worse" and records["gelu"]["vs baseline"] == "undecided"
    wide = format_wide(report)
    assert "| mse |" in wide[0] and any("▲" in line and "| tanh |" in line for line in wide)
    markdown = (tmp_path / "summary.md").read_text()
    assert "| mse |" in markdown and "| error (%) |" not in markdown
    assert "mse" in (tmp_path / "summary.tex").read_text() and "<th>mse</th>" in (tmp_path / "report.html").read_text()
    # the interval of the workload's tests, in the metric's units
    tests = report.workload_tests.set_index("activation")
    assert f"{tests.loc['tanh', 'sim_low']:+.4g} to {tests.loc['tanh', 'sim_high']:+.4g}" in markdown
    # summary.csv, summary_stats.csv and tests.csv
    runs = pd.read_csv(tmp_path / "summary.csv")
    assert set(runs["primary_metric"]) == {"mse"} and runs["primary_value"].notna().all()
    stats = pd.read_csv(tmp_path / "summary_stats.csv").set_index("activation")
    assert stats.loc["tanh", "primary_value_mean"] == pytest.approx(console["tanh"]["mean"])
    assert stats.loc["tanh", "verdict"] == "worse (n=7)" and stats.loc["relu", "verdict"] == "baseline"
    written = pd.read_csv(tmp_path / "tests.csv").set_index("activation")
    assert set(written["metric"]) == {"mse"} and written.loc["tanh", "verdict"] == "worse"
    # --json
    json = {v["activation"]: v for v in verdicts(report)}
    assert json["tanh"]["verdict"] == "worse" and json["tanh"]["metric"] == "mse"
    assert json["gelu"]["verdict"] == "undecided"



def test_a_workload_s_figures_and_captions_name_its_metric(tmp_path):
    import warnings

    import matplotlib.pyplot as plt

    from afbench.report import document, gallery

    report = render.build(render.StoreView(fake_workload_sweep(tmp_path, VALUES)))
    # cost against the metric: the mse on the y axis, never an empty "test error (%)" one
    report.cost = pd.DataFrame([{"model": "mlp", "dataset": "special:j0", "activation": a, "device": "cpu",
                                 "threads": 1, "step_ms": 1.0, "step_ratio": r, "step_ratio_low": r * 0.9,
                                 "step_ratio_high": r * 1.1, "saved_bytes_per_sample": 1024.0}
                                for a, r in (("relu", 1.0), ("tanh", 1.5), ("gelu", 2.0))])
    (figure,) = gallery._cost(report)
    assert figure.caption.startswith("Test mse against cost")
    drawn = figure.draw()
    assert drawn.axes[0].get_ylabel() == "test mse" and len(drawn.axes[0].lines) > 0
    plt.close(drawn)
    # the report's cost table beside it: the mse, headed so, never an empty "error (%)"
    points = render.timing.cost_points(report.aggregate, report.cost)
    table = document.cost_table(points, report.runs)
    assert table.columns[-1] == "mse" and "error (%)" not in table.columns
    means = {row[1].value: row[-1].value for row in table.rows}
    assert means["tanh"] == pytest.approx(sum(VALUES["tanh"]) / len(VALUES["tanh"]))  # the mean over seeds
    # no classes (a language model's windows): no empty histogram, no legend warning
    report.meta["class_counts"] = {"special:j0": {"classes": ["a", "b"], "counts": {}}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not [f for f in gallery._shapes_and_data(report) if f.name.startswith("classes")]
    # time to target and the marks' legend name the metric
    report.aggregate["time_to_target_s_mean"] = 1.0
    (target,) = gallery._targets(report)
    assert "the test mse at or below the target" in target.caption and "accuracy" not in target.caption
    legend = document.marks_text(report.aggregate, report.runs)
    assert "on the test mse:" in legend and "on the error" not in legend
    assert document.marks_text(report.aggregate.drop(columns="primary_metric"), report.runs) == document.MARKS


def test_an_undecided_workload_verdict_says_how_many_seeds_the_exact_test_needs(tmp_path):
    from afbench.report.verdict import too_few_seeds

    three = {a: v[:3] for a, v in VALUES.items()}
    report = render.build(render.StoreView(fake_workload_sweep(tmp_path, three)))
    text = " ".join(render.verdict_text(report))
    assert "tanh: undecided" in text
    assert too_few_seeds(2, 3, 0.05) in text and "needs at least 7 seeds for 2 comparisons (--seeds 7)" in text


def test_seeds_auto_on_a_workload_states_its_margin_in_the_metric_it_tested(tmp_path):
    """The sweep's looks test one metric (design ``metric``): the test error, which mse runs
    lack (no '±0.1 pp' promise for them), or the workload's own, whose margin is in its units."""
    from afbench.stats.sequential import Design

    error_design = {**Design(looks=(3, 6)).to_dict(), "baseline": "relu"}
    report = render.build(render.StoreView(fake_workload_sweep(tmp_path / "a", VALUES,
                                                               meta={"sequential": error_design})))
    text = " ".join(render.verdict_text(report))
    assert "equivalence means within ±0.1 pp" not in text
    assert "--seeds auto decided on the test error, which the mse runs do not have" in text
    own_design = {**Design(looks=(3, 6), metric="mse").to_dict(), "baseline": "relu"}
    report = render.build(render.StoreView(fake_workload_sweep(tmp_path / "b", VALUES,
                                                               meta={"sequential": own_design})))
    assert "equivalence means within ±0.001 mse." in " ".join(render.verdict_text(report))


def test_seeds_auto_decides_a_workload_on_its_own_metric_without_a_margin():
    from afbench.cli.run import _decided_on
    from afbench.config import RunConfig

    assert _decided_on(RunConfig(workload="regression", dataset="special:j0"), 0.1) == \
        {"metric": "mse", "higher_is_better": False, "equivalence": 0.0}
    assert _decided_on(RunConfig(), 0.1) == {"metric": "error_rate", "higher_is_better": False, "equivalence": 0.001}


def test_the_sweep_reads_a_workload_metric_from_the_summary():
    from afbench.results import RunSummary
    from afbench.sweep.execute import _value

    summary = RunSummary(params=1, epochs_run=1, total_train_s=1.0, train_steps=1, error_rate=0.25,
                         metrics={"mse": 0.5})
    assert _value(summary, "mse") == 0.5 and _value(summary, "error_rate") == 0.25 and _value(None, "mse") is None


def test_a_workload_decided_by_seeds_auto_is_judged_by_its_looks_replayed(tmp_path):
    """Six seeds, every difference the same sign: a fixed-design Holm test over 2 would not
    be what the sweep did. The report replays the looks (3, 6) at the design's levels."""
    from afbench.stats.sequential import Design

    values = {"relu": [1.0, 1.1, 0.9, 1.0, 1.05, 0.95], "tanh": [2.0, 2.1, 1.9, 2.0, 2.05, 1.95],
              "elu": [1.0, 1.2, 0.8, 1.1, 0.9, 1.0]}
    design = {**Design(looks=(3, 6), metric="mse", margin=0.0).to_dict(), "baseline": "relu"}
    report = render.build(render.StoreView(fake_workload_sweep(tmp_path, values, meta={"sequential": design})))
    tests = report.workload_tests.set_index("activation")
    assert set(tests["look"]) == {1} and (tests["n"] == 6).all()  # decided at the second look, by its level
    text = " ".join(render.verdict_text(report))
    assert "at look 2, not enough for the group-sequential design with Holm" in text and "adjusted p" not in text
    assert "against the level" not in text  # undecided: no level is promised that its p seems to pass
    assert "equivalence means nothing: no margin is defined in mse" in text


def test_a_folder_with_a_workload_and_images_counts_both_families(tmp_path):
    """Holm corrects within each setting: one classification setting and one regression
    setting are two families, up to 10% for the report, never '1 comparison ... 5%'."""
    from report_sweeps import fake_sweep

    folder = fake_workload_sweep(tmp_path, VALUES)
    fake_sweep(folder, {"relu": [0.10, 0.11, 0.12], "tanh": [0.12, 0.13, 0.14]})
    text = " ".join(render.verdict_text(render.build(render.StoreView(folder))))
    assert "(2 families)" in text and "up to 10% for the whole report" in text
    alone = " ".join(render.verdict_text(render.build(render.StoreView(fake_workload_sweep(tmp_path / "w", VALUES)))))
    assert "Holm corrects over all 2 comparisons with relu" in alone


def test_the_width_note_speaks_of_parameters_only_where_the_model_has_more():
    """A gated unit doubles the width before it: more parameters in an MLP (a note), none
    in a model that keeps its size by design (charlm's transformer: 438,968 against relu's
    438,884, under 1% more: no note)."""
    import pandas as pd

    from afbench.report.tables import width_note

    kept_size = pd.DataFrame({"activation": ["relu", "swiglu"], "params": [438_884, 438_968]})
    assert width_note("swiglu", False, kept_size, "relu") == ""
    doubled = pd.DataFrame({"activation": ["relu", "swiglu"], "params": [109_386, 218_378]})
    assert width_note("swiglu", False, doubled, "relu") == \
        "2x the width before each activation: 100% more parameters than relu (use --match-params)"
    assert width_note("swiglu", True, doubled, "relu") == "" and width_note("relu", False, doubled, "relu") == ""
    assert "more parameters (use --match-params)" in width_note("swiglu", False)  # nothing to compare with


def test_a_workload_design_never_replays_the_image_runs_beside_it(tmp_path):
    """A folder holding a --seeds auto regression sweep (design on mse, no margin) and a
    fixed 8-seed image sweep: the images keep their fixed-design tests (worse on all 8
    seeds: exact p = 2/256, Holm over 1), never mse looks."""
    from report_sweeps import fake_sweep

    from afbench.stats.sequential import Design

    design = {**Design(looks=(3, 6), metric="mse", margin=0.0).to_dict(), "baseline": "relu"}
    folder = fake_workload_sweep(tmp_path, VALUES, meta={"sequential": design})
    fake_sweep(folder, {"relu": [0.10 + 0.001 * i for i in range(8)], "gelu": [0.13 + 0.001 * i for i in range(8)]})
    report = render.build(render.StoreView(folder))
    gelu = report.tests.set_index("activation").loc["gelu"]
    assert gelu["verdict"] == "worse" and gelu["p_holm"] == pytest.approx(2 / 256)
    text = " ".join(render.verdict_text(report))
    assert "the test error runs do not have" in text and "fixed-design Holm tests of the test error" in text


def test_an_interrupted_workload_sweep_is_told_to_continue_not_to_raise_max_seeds(tmp_path):
    from afbench.stats.sequential import Design

    values = {a: v[:3] for a, v in {"relu": [1.0, 1.1, 0.9], "gelu": [1.5, 1.0, 1.4]}.items()}
    design = {**Design(looks=(3, 6, 9, 14, 20), metric="mse", margin=0.0).to_dict(), "baseline": "relu"}
    report = render.build(render.StoreView(fake_workload_sweep(tmp_path, values, meta={"sequential": design})))
    text = " ".join(render.verdict_text(report))
    assert "Undecided after 3 of at most 20 seeds: rerun the same command" in text and "larger --max-seeds" not in text
    assert "(unadjusted)" in text  # the plain 95% CI beside a p tested at the look's level


def test_several_learning_rates_without_validation_are_refused_in_any_setting():
    """One setting validated, another with two rates and no validation accuracy: the
    second has nothing to choose by and is refused, not given its rate by a 0 fill."""
    import pandas as pd

    from afbench.errors import AfbenchError
    from afbench.report.tables import select_learning_rates

    rows = []
    for setting, valid in (("a", 0.9), ("b", None)):
        for lr in (0.1, 0.01):
            for seed in (0, 1):
                rows.append({"setting": setting, "dataset": "digits", "model": "mlp", "activation": "relu",
                             "lr": lr, "seed": seed, "status": "done", "valid_acc": valid})
    with pytest.raises(AfbenchError, match=r"several learning rates \(0.01, 0.1\)"):
        select_learning_rates(pd.DataFrame(rows))
    kept, best = select_learning_rates(pd.DataFrame([r for r in rows if r["setting"] == "a"]))
    assert len(best) == 1 and len(kept) == 2


def test_family_all_over_two_metrics_counts_two_families(tmp_path):
    from report_sweeps import fake_sweep

    folder = fake_workload_sweep(tmp_path, VALUES)
    fake_sweep(folder, {"relu": [0.10, 0.11, 0.12], "tanh": [0.12, 0.13, 0.14]})
    text = " ".join(render.verdict_text(render.build(render.StoreView(folder), family="all")))
    assert "(2 families)" in text and "up to 10% for the whole report" in text and "at most 5% for" not in text
