"""Issue 29: verdicts that cannot be bent. Like compared with like, divergence counted,
advice the exact test can satisfy, the Holm family stated, either direction of metric.
References: scipy (t intervals, permutation tests), enumeration by hand."""

import io
import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from afbench.config import RunConfig
from afbench.report import render
from afbench.results import EpochRecord, RunSummary, Status
from afbench.stats import paired as stats
from afbench.stats import settings
from afbench.store.database import Store

BASE = [0.10, 0.12, 0.11, 0.13, 0.10, 0.12, 0.11, 0.14]


def store_runs(folder, errors: dict[str, list[float | None]], **config):
    """Runs with the given test error per seed (None: diverged), under ``config``."""
    store = Store(folder)
    for activation, values in errors.items():
        for seed, error in enumerate(values):
            run = RunConfig(activation=activation, seed=seed, device="cpu", **config)
            store.claim(run)
            store.record_epoch(run.key(), EpochRecord(1, 0.5, 0.8, 1.0, 1.0, train_steps=10, test_loss=0.4,
                                                      test_acc=1 - (error or 0.9)))
            summary = RunSummary(params=1000, epochs_run=1, total_train_s=1.0, train_steps=10)
            if error is not None:
                summary.accuracy, summary.error_rate, summary.f1 = 1 - error, error, 1 - error
            store.finish(run.key(), Status.DONE if error is not None else Status.DIVERGED, summary, {"stack_size": 1})
    store.close()
    return folder


def build(folder, baseline="relu"):
    """The report's content without writing files (figures are the slow part)."""
    store = Store(folder)
    try:
        return render.build(store, baseline)
    finally:
        store.close()


def rows(errors: dict[str, list[float]], **extra) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": "d", "model": "m", "activation": a, "seed": s, "status": "done",
                          "error_rate": e, **extra} for a, values in errors.items() for s, e in enumerate(values)])


# ---- like with like --------------------------------------------------------------------

def test_runs_with_other_epochs_are_another_setting_never_pooled(tmp_path):
    """The audit's case: --epochs 1 --seeds 3, then --epochs 3 --seeds 3 into one folder."""
    store_runs(tmp_path, {"relu": [0.40, 0.45, 0.42], "tanh": [0.41, 0.47, 0.44]}, epochs=1)
    store_runs(tmp_path, {"relu": [0.05, 0.06, 0.055], "tanh": [0.052, 0.063, 0.058]}, epochs=3)
    report = render.write(tmp_path, "relu")
    assert sorted(report.aggregate["done"]) == [3, 3, 3, 3]  # never 6
    assert set(report.aggregate["setting"]) == {"mlp / digits, epochs=1", "mlp / digits, epochs=3"}
    relu = report.aggregate[report.aggregate["activation"] == "relu"].set_index("setting")["error_rate_mean"]
    assert relu["mlp / digits, epochs=1"] == pytest.approx(100 * np.mean([0.40, 0.45, 0.42]))
    assert list(report.tests["n"]) == [3, 3]
    assert {r["setting"] for r in report.comparison()} == {"epochs=1", "epochs=3"}
    text = " ".join(render.verdict_text(report))
    assert "holds 2 settings of mlp / digits (epochs=1; epochs=3)" in text
    assert "On mlp / digits, epochs=1 (3 finished seeds per activation)" in text and "6 finished" not in text
    stats_csv = pd.read_csv(tmp_path / "summary_stats.csv")
    assert set(stats_csv.loc[stats_csv.activation == "tanh", "verdict"]) == {"undecided (n=3)"}


def test_one_setting_keeps_the_plain_label_and_a_tuned_learning_rate_is_not_a_setting():
    frame = pd.DataFrame({"dataset": ["d"] * 4, "model": ["m"] * 4, "config.epochs": [3] * 4,
                          "config.lr": [0.1, 0.01, 0.1, 0.01], "config.seed": [0, 0, 1, 1],
                          "config.activation": ["relu", "relu", "tanh", "tanh"], "config.valid_fraction": [0.1] * 4})
    assert list(settings.label(frame)) == ["m / d"] * 4
    assert settings.several(frame) == []
    untuned = frame.assign(**{"config.valid_fraction": [0.0] * 4})  # nothing to choose a rate on: two settings
    assert list(settings.label(untuned)) == ["m / d, lr=0.1", "m / d, lr=0.01"] * 2


def test_verdicts_pool_nothing_across_settings():
    frame = pd.concat([rows({"relu": BASE, "tanh": [b + 0.03 for b in BASE]}, **{"config.batch_size": 64}),
                       rows({"relu": BASE, "tanh": [b - 0.03 for b in BASE]}, **{"config.batch_size": 128})])
    out = stats.verdicts(frame, "error_rate", "relu").set_index("setting")
    assert out.loc["m / d, batch_size=64", "verdict"] == "worse" and out["n"].tolist() == [8, 8]
    assert out.loc["m / d, batch_size=128", "verdict"] == "better"


# ---- divergence --------------------------------------------------------------------------

def test_a_diverged_seed_counts_at_the_worst_error_not_as_a_missing_pair():
    """Survivors alone: tanh 2 pp better on every finished seed. With its 3 diverged
    seeds counted at 100% error it is not better, and the sentence says so."""
    base = BASE + [0.12, 0.13, 0.11]
    tanh = [b - 0.02 for b in base]
    tanh[1] = tanh[4] = tanh[6] = None
    frame = rows({"relu": base, "tanh": tanh})
    frame.loc[frame["error_rate"].isna(), "status"] = "diverged"
    out = stats.verdicts(frame, "error_rate", "relu", worst=1.0).set_index("activation")
    assert out.loc["tanh", "n"] == 11 and out.loc["tanh", "diverged"] == 3
    diff = np.array([(1.0 if t is None else t) - b for t, b in zip(tanh, base)])
    assert out.loc["tanh", "mean_diff"] == pytest.approx(diff.mean())
    assert out.loc["tanh", "verdict"] != "better"
    survivors = stats.verdicts(frame[frame["status"] == "done"], "error_rate", "relu").set_index("activation")
    assert survivors.loc["tanh", "verdict"] == "better"  # what the old report said


def test_diverging_on_9_of_20_seeds_is_neither_best_nor_bold_alone(tmp_path):
    """The audit's case: the survivors' mean was the lowest, so it became the best and
    relu lost its bold. Now the sentence counts the divergences and relu stays top."""
    rng = np.random.default_rng(4)
    base = list(0.10 + 0.003 * rng.standard_normal(20))
    tanh = [None if i % 2 and i < 18 else b - 0.005 for i, b in enumerate(base)]
    report = build(store_runs(tmp_path, {"relu": base, "tanh": tanh}))
    text = " ".join(render.verdict_text(report))
    assert "tanh diverged on 9 of 20 seeds" in text and "counted at 100% error" in text
    cells = {r["activation"]: r["error (%)"] for r in report.comparison()}
    assert cells["relu"].startswith("**") and not cells["tanh"].startswith("**")
    assert report.tests.set_index("activation").loc["tanh", "verdict"] == "worse"


# ---- advice the test can satisfy --------------------------------------------------------

def smallest_holm_p(n: int, m: int) -> float:
    """Every difference of one sign, enumerated with itertools; Holm's first step."""
    hits = sum(abs(sum(signs)) == n for signs in itertools.product((1, -1), repeat=n))
    return min(1.0, m * hits / 2 ** n)


@pytest.mark.parametrize("m", [1, 2, 5, 7])
def test_seeds_needed_is_the_fewest_at_which_holm_can_reject(m):
    needed = stats.seeds_needed(m, 0.05)
    assert smallest_holm_p(needed, m) < 0.05 <= smallest_holm_p(needed - 1, m)
    assert stats.seeds_needed(1, 0.05) == 6


def test_five_seeds_advise_what_the_test_needs_not_five_more(tmp_path):
    base = BASE[:5]
    report = build(store_runs(tmp_path, {"relu": base, "tanh": [b + 0.01 for b in base]}))
    text = " ".join(render.verdict_text(report))
    assert "needs at least 6 seeds for 1 comparison (--seeds 6)" in text
    assert "--seeds 5" not in text and "the data rule out differences beyond ±" in text
    assert "Top group: cannot rank (with 2 activations and 5 seeds no difference can reach p < 0.05)" in text
    assert all("**" not in r["error (%)"] for r in report.comparison())


def test_the_ci_beside_a_holm_p_is_simultaneous_or_labelled():
    errors = {"relu": BASE, "tanh": [b + 0.03 + 0.002 * i for i, b in enumerate(BASE)],
              "elu": [b + 0.001 * (-1) ** i for i, b in enumerate(BASE)], "gelu": [b + 0.01 for b in BASE]}
    out = stats.verdicts(rows(errors), "error_rate", "relu").set_index("activation")
    diff = np.asarray(errors["tanh"]) - np.asarray(BASE)
    ci = sps.ttest_1samp(diff, 0).confidence_interval(1 - 0.05 / 3)  # Bonferroni over the 3 comparisons
    assert (out.loc["tanh", "sim_low"], out.loc["tanh", "sim_high"]) == pytest.approx((ci.low, ci.high))
    from afbench.report.verdict import verdict_lines

    agg = pd.DataFrame([{"setting": "m / d", "dataset": "d", "model": "m", "activation": a, "done": 8}
                        for a in errors])
    text = " ".join(verdict_lines(agg, out.reset_index(), {}, {}, "relu", 0.001))
    assert "98.3% CI" in text and "simultaneous over the 3 comparisons" in text and "(unadjusted)" in text


# ---- one family --------------------------------------------------------------------------

def test_holm_across_all_settings_on_request():
    p = [0.004, 0.012]
    frame = pd.concat([rows({"relu": BASE, "tanh": [b + 0.03 for b in BASE]}, **{"config.epochs": 1}),
                       rows({"relu": BASE, "tanh": [b + 0.03 for b in BASE]}, **{"config.epochs": 3})])
    apart = stats.verdicts(frame, "error_rate", "relu")
    together = stats.verdicts(frame, "error_rate", "relu", family="all")
    assert list(apart["family"]) == [1, 1] and list(together["family"]) == [2, 2]
    assert list(together["p_holm"]) == pytest.approx(stats.holm(list(apart["p_permutation"])))
    assert stats.holm(p) == pytest.approx([0.008, 0.012])  # by hand: 2 x 0.004, then max(0.008, 0.012)


def test_the_family_is_stated(tmp_path):
    store_runs(tmp_path, {"relu": BASE, "tanh": [b + 0.03 for b in BASE]}, epochs=1)
    store_runs(tmp_path, {"relu": BASE, "tanh": [b + 0.03 for b in BASE]}, epochs=2)
    text = " ".join(render.verdict_text(build(tmp_path)))
    assert "within each setting (2 families)" in text and "up to 10% for the whole report" in text


# ---- intervals within what a difference can be ------------------------------------------

# 3 seeds with wildly different errors: tanh's 95% t interval reaches +173 pp, an impossible difference
WILD = {"relu": [0.10, 0.10, 0.10], "tanh": [0.90, 0.10, 0.95], "elu": [0.10, 0.10, 0.12]}
ENDS = ["ci_low", "ci_high", "sim_low", "sim_high"]


def test_an_error_difference_is_never_reported_beyond_100_pp_and_the_tests_stay_exact():
    raw = sps.ttest_1samp(np.subtract(WILD["tanh"], WILD["relu"]), 0).confidence_interval(0.95)
    assert raw.high > 1  # the case: the unclipped interval ends beyond +100 pp
    out = stats.verdicts(rows(WILD), "error_rate", "relu").set_index("activation")
    assert ((out[ENDS] >= -1) & (out[ENDS] <= 1)).all().all() and (out["margin_supported"] <= 1).all()
    assert out.loc["tanh", "ci_high"] == 1 and out.loc["tanh", "ci_low"] == pytest.approx(raw.low)  # -63 pp: kept
    # the same numbers as a metric without a range (PSNR): nothing clipped, every test and verdict the same
    free = stats.verdicts(rows(WILD).rename(columns={"error_rate": "psnr"}), "psnr", "relu").set_index("activation")
    assert free.loc["tanh", "ci_high"] == pytest.approx(raw.high) and free.loc["tanh", "margin_supported"] > 1
    assert out.drop(columns=ENDS + ["margin_supported"]).equals(free.drop(columns=ENDS + ["margin_supported"]))
    assert out[ENDS].equals(free[ENDS].clip(-1, 1))


def test_one_family_over_settings_scales_the_unclipped_interval_then_clips():
    frame = pd.concat([rows(WILD, **{"config.epochs": 1}), rows(WILD, **{"config.epochs": 3})])
    out = stats.verdicts(frame, "error_rate", "relu", family="all")
    free = stats.verdicts(frame.rename(columns={"error_rate": "psnr"}), "psnr", "relu", family="all")
    assert out[ENDS].equals(free[ENDS].clip(-1, 1)) and list(out["verdict"]) == list(free["verdict"])
    elu = out[out["activation"] == "elu"].iloc[0]
    assert -1 < elu["sim_low"] < elu["ci_low"] < elu["ci_high"] < elu["sim_high"] < 1  # narrow: untouched


def test_the_verdict_text_says_no_impossible_difference():
    from afbench.report.verdict import verdict_lines

    out = stats.verdicts(rows(WILD), "error_rate", "relu")
    agg = pd.DataFrame([{"setting": "m / d", "dataset": "d", "model": "m", "activation": a, "done": 3}
                        for a in WILD])
    text = " ".join(verdict_lines(agg, out, {}, {}, "relu", 0.001))
    assert "tanh +55.00 pp, 95% CI -63.49 to +100.00 (unadjusted)" in text and "173" not in text
    assert "±100 pp for tanh" in text and "e+02" not in text


# ---- direction ---------------------------------------------------------------------------

@pytest.mark.parametrize("higher_is_better", [False, True])
def test_direction_decides_better_and_worse(higher_is_better):
    frame = rows({"relu": BASE, "tanh": [b + 0.03 for b in BASE]}).rename(columns={"error_rate": "psnr"})
    out = stats.verdicts(frame, "psnr", "relu", higher_is_better=higher_is_better).set_index("activation")
    assert out.loc["tanh", "verdict"] == ("better" if higher_is_better else "worse")
    assert out.loc["tanh", "mean_diff"] == pytest.approx(0.03)


def test_a_diverged_run_counts_at_the_worst_value_in_either_direction():
    frame = rows({"relu": [1.0, 2.0, 3.0], "tanh": [1.5, None, 3.5]}).rename(columns={"error_rate": "psnr"})
    frame.loc[frame["psnr"].isna(), "status"] = "diverged"
    high, _ = stats.seed_table(frame, "psnr", higher_is_better=True)
    low, _ = stats.seed_table(frame, "psnr", higher_is_better=False)
    assert high.loc[1, "tanh"] == 1.0 and low.loc[1, "tanh"] == 3.5
    assert stats.seed_table(frame.assign(status="failed"), "psnr")[0].empty  # a crash is not the activation's


def test_the_report_corrects_across_all_settings_on_request(tmp_path):
    store_runs(tmp_path, {"relu": BASE, "tanh": [b + 0.03 for b in BASE]}, epochs=1)
    store_runs(tmp_path, {"relu": BASE, "tanh": [b + 0.03 for b in BASE]}, epochs=2)
    store = Store(tmp_path)
    try:
        report = render.build(store, "relu", family="all")
    finally:
        store.close()
    assert list(report.tests["family"]) == [2, 2]
    assert "Holm corrects over all 2 comparisons with relu across the 2 settings" in " ".join(
        render.verdict_text(report))


def test_the_legend_states_the_level_tested():
    from afbench.report.verdict import marks_legend

    assert "p < 0.05" in marks_legend("relu")
    assert "p < 0.05" not in marks_legend("relu", 0.05, {"looks": [3, 6, 9, 14, 20]})
    assert "5 looks, 5% familywise" in marks_legend("relu", 0.05, {"looks": [3, 6, 9, 14, 20]})


def test_the_seed_count_is_a_range_when_activations_differ():
    """'(9 seeds per activation)' counted the most seeds any activation finished."""
    from afbench.report.verdict import verdict_lines

    agg = pd.DataFrame([{"setting": "m / d", "dataset": "d", "model": "m", "activation": a, "done": n}
                        for a, n in (("relu", 9), ("tanh", 3), ("elu", 9))])
    assert "On m / d (3 to 9 finished seeds per activation)" in " ".join(
        verdict_lines(agg, pd.DataFrame(), {}, {}, "relu", 0.001))


def test_merge_keeps_a_15_epoch_and_a_2_epoch_study_apart(tmp_path):
    from afbench.store.merge import merge

    store_runs(tmp_path / "long", {"relu": BASE, "tanh": [b + 0.03 for b in BASE]}, epochs=15)
    store_runs(tmp_path / "short", {"relu": BASE, "tanh": [b + 0.05 for b in BASE]}, epochs=2)
    merge([tmp_path / "long", tmp_path / "short"], tmp_path / "out")
    tests = build(tmp_path / "out").tests.set_index("setting")
    assert list(tests["n"]) == [8, 8]
    assert tests.loc["mlp / digits, epochs=15", "mean_diff"] == pytest.approx(0.03)
    assert tests.loc["mlp / digits, epochs=2", "mean_diff"] == pytest.approx(0.05)


def test_a_decided_verdict_beside_an_interval_over_zero_says_which_decides():
    """8 of 10 seeds a little worse and one far worse: the exact permutation test finds it
    worse (p = 10/1024 by enumeration), while the t interval, widened by the outlier, includes 0."""
    import numpy as np
    from scipy import stats as sps

    from afbench.stats.paired import interval_note, paired_comparison

    diffs = np.array([0.004, 0.006, 0.005, 0.003, 0.007, 0.004, 0.006, 0.005, -0.004, 0.077])
    signs = np.array(np.meshgrid(*[[-1, 1]] * 10)).reshape(10, -1).T  # all 1,024 sign patterns
    extreme = (np.abs(signs @ diffs) >= abs(diffs.sum()) - 1e-12).sum()
    assert extreme == 10  # the two-sided exact p is 10/1024, written out here
    assert paired_comparison(np.zeros(10), diffs).p_permutation == pytest.approx(extreme / 1024)
    low, high = sps.t.interval(0.95, len(diffs) - 1, loc=diffs.mean(), scale=sps.sem(diffs))
    assert low < 0 < high  # scipy's t interval includes 0
    assert "exact permutation test" in interval_note("worse", low, high)
    assert interval_note("undecided", low, high) == "" and interval_note("worse", 0.001, 0.02) == ""
    assert interval_note("worse", float("nan"), float("nan")) == ""


def test_ranks_take_one_block_per_setting_and_count_diverged_runs_at_100_percent(tmp_path):
    """The review's cases. Reference: scipy's Friedman test on the settings' means by hand."""
    from scipy.stats import friedmanchisquare

    a = {"relu": [0.10, 0.11, 0.12], "gelu": [0.20, 0.21, 0.22], "tanh": [0.30, 0.31, 0.32]}
    b = {"relu": [0.50, 0.51, 0.52], "gelu": [0.05, 0.06, 0.07], "tanh": [0.02, 0.03, 0.04]}
    store_runs(tmp_path / "settings", a, epochs=2)
    store_runs(tmp_path / "settings", b, epochs=5)
    store_runs(tmp_path / "settings", a, epochs=2, model="lenet")
    ranks = build(tmp_path / "settings").ranks
    assert ranks["blocks"] == 3  # mlp epochs=2, mlp epochs=5, lenet: never two settings averaged into one
    assert dict(ranks["average_ranks"]) == pytest.approx({"relu": 5 / 3, "gelu": 2.0, "tanh": 7 / 3})
    means = [[np.mean(s[name]) for s in (a, b, a)] for name in ("relu", "gelu", "tanh")]
    assert ranks["p"] == pytest.approx(friedmanchisquare(*means).pvalue)
    # tanh: one finished run at 5% and seven diverged, in every data set: 88.1% with them, not 5%
    for dataset in ("digits", "iris", "wine"):
        store_runs(tmp_path / "diverged", {"relu": [0.02 + 0.001 * s for s in range(8)],
                                           "gelu": [0.03 + 0.001 * s for s in range(8)],
                                           "tanh": [0.05] + [None] * 7}, dataset=dataset)
    ranks = build(tmp_path / "diverged").ranks
    assert dict(ranks["average_ranks"]) == pytest.approx({"relu": 1.0, "gelu": 2.0, "tanh": 3.0})


def test_a_seed_run_again_with_other_latency_samples_counts_once(tmp_path):
    """The review's case: the same 4 seeds again with --latency-samples 50. Still 4
    seeds: n = 4, and the smallest exact p 2/2^4 cannot reach 0.05, as the text says."""
    relu, gelu = [0.10, 0.11, 0.12, 0.13], [0.15, 0.17, 0.16, 0.18]
    store_runs(tmp_path, {"relu": relu, "gelu": gelu})
    store_runs(tmp_path, {"relu": relu, "gelu": gelu}, latency_samples=50)
    report = build(tmp_path)
    assert list(report.aggregate["done"]) == [4, 4] and list(report.tests["n"]) == [4]
    assert report.tests["p_permutation"].iloc[0] == pytest.approx(2 / 16)
    text = " ".join(render.verdict_text(report))
    assert "With 4 seeds no comparison can reach p < 0.05" in text
    assert "8 runs repeat a seed of an activation in its setting" in text
    summary = pd.read_csv(io.BytesIO(render.files(report)["summary.csv"]))
    assert summary["counted"].sum() == 8 and len(summary) == 16  # every run listed, each seed counted once


def test_activations_run_at_different_untuned_learning_rates_are_never_compared(tmp_path):
    """The review's case: relu at lr 1e-3, gelu at 1e-1, no validation to tune on. The
    difference is the rate's as much as the activation's: two settings, no verdict."""
    store_runs(tmp_path, {"relu": [0.10, 0.12, 0.11, 0.13, 0.10, 0.12]}, lr=1e-3)
    store_runs(tmp_path, {"gelu": [0.20, 0.22, 0.21, 0.23, 0.20, 0.22]}, lr=1e-1)
    report = build(tmp_path)
    assert set(report.runs["setting"]) == {"mlp / digits, lr=0.001", "mlp / digits, lr=0.1"}
    assert report.tests.empty
    text = " ".join(render.verdict_text(report))
    assert "worse" not in text and "only relu ran in this setting" in text
    # tuned (each activation at both rates, chosen on validation): the rate is no setting
    tuned = tmp_path / "tuned"
    for lr in (1e-3, 1e-1):
        store_runs(tuned, {"relu": [0.10, 0.12, 0.11], "gelu": [0.20, 0.22, 0.21]}, lr=lr, valid_fraction=0.1)
    from afbench.report import tables
    from afbench.store.reading import StoreView

    with StoreView(tuned) as view:
        assert set(tables.runs_frame(view.records())["setting"]) == {"mlp / digits"}


def test_with_family_all_the_seeds_advice_counts_every_settings_comparisons(tmp_path):
    """Holm over 4 comparisons at 7 seeds cannot go below 4 x 2/2^7 = 0.0625 (by hand):
    the advice must say 8 seeds, not promise that more of the same would do."""
    rng = np.random.default_rng(7)
    for epochs in (2, 5):
        base = 0.1 + 0.01 * rng.standard_normal(7)
        store_runs(tmp_path, {"relu": list(base), "gelu": list(base + 0.003), "tanh": list(base + 0.004)},
                   epochs=epochs)
    store = Store(tmp_path)
    try:
        report = render.build(store, "relu", family="all")
    finally:
        store.close()
    assert set(report.tests["family"]) == {4} and report.tests["p_holm"].min() == pytest.approx(4 * 2 / 2 ** 7)
    text = " ".join(render.verdict_text(report))
    assert "needs at least 8 seeds for 4 comparisons" in text and "more seeds (--seeds auto) would" not in text


def test_a_tuned_sweep_beside_two_untuned_rates_keeps_those_rates_apart():
    """The review's case: --lr 0.05, then --lr 0.005, then --lr 0.01,0.001 --valid-fraction
    0.1 into one folder. The tuned sweep is one setting; the untuned rates stay two."""
    rows = [{"dataset": "d", "model": "m", "activation": a, "config.lr": lr, "config.valid_fraction": vf,
             "config.seed": 0} for lr, vf in ((0.05, 0.0), (0.005, 0.0), (0.01, 0.1), (0.001, 0.1))
            for a in ("relu", "tanh")]
    labels = dict(zip([(r["config.lr"], r["activation"]) for r in rows], settings.label(pd.DataFrame(rows))))
    assert labels[(0.05, "relu")] == labels[(0.05, "tanh")] == "m / d, valid_fraction=0.0, lr=0.05"
    assert labels[(0.005, "relu")] == "m / d, valid_fraction=0.0, lr=0.005"
    assert labels[(0.01, "relu")] == labels[(0.001, "tanh")] == "m / d, valid_fraction=0.1"


def test_a_setting_without_every_activation_is_no_friedman_block(tmp_path):
    """The review's oddity: 'Across 1 settings ... p = nan'. Two settings, one lacking
    tanh: one complete block, so no ranking across settings is claimed."""
    store_runs(tmp_path, {"relu": [0.10, 0.11, 0.12], "gelu": [0.20, 0.21, 0.22], "tanh": [0.3, 0.31, 0.32]},
               epochs=2)
    store_runs(tmp_path, {"relu": [0.10, 0.11, 0.12], "gelu": [0.20, 0.21, 0.22]}, epochs=5)
    report = build(tmp_path)
    assert report.ranks == {}
    assert "Across" not in " ".join(render.verdict_text(report))


def test_a_report_of_an_unfinished_sweep_says_its_verdicts_rest_on_the_finished_runs(tmp_path):
    from afbench.config import RunConfig

    store_runs(tmp_path, {"relu": [0.10, 0.11, 0.12], "tanh": [0.2, 0.21, 0.22]})
    store = Store(tmp_path)
    store.enqueue([RunConfig(activation=a, seed=3, device="cpu") for a in ("relu", "tanh")])  # interrupted before
    store.close()
    text = " ".join(render.verdict_text(build(tmp_path)))
    assert "2 runs of this folder are not finished (queued, running or failed)" in text
