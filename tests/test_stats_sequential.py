"""Issue 29: --seeds auto as a group-sequential design (afbench.stats.sequential), and
the report replaying it with the sweep's own margin and levels. References: a Monte
Carlo simulation of the Brownian motion the boundaries assume; the spending functions
written out here from Lan and DeMets (1983)."""

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from afbench.report import render
from afbench.stats import sequential
from afbench.store.database import Store
from test_stats_verdicts import build, store_runs


def crossing_rates(levels, looks, paths=200_000, seed=0):
    """Cumulative share of Brownian paths (information n / n_max) whose |z| crosses
    the boundary of each look's two-sided nominal level, simulated."""
    rng = np.random.default_rng(seed)
    t = np.asarray(looks, float) / looks[-1]
    steps = rng.standard_normal((paths, len(t))) * np.sqrt(np.diff(t, prepend=0.0))
    z = np.abs(np.cumsum(steps, axis=1)) / np.sqrt(t)
    bounds = np.array([sps.norm.isf(level / 2) if level > 0 else np.inf for level in levels])
    return np.mean(np.maximum.accumulate(z > bounds, axis=1), axis=0)


@pytest.mark.parametrize("spending,reference", [
    ("obrien-fleming", lambda t, a: 2 - 2 * sps.norm.cdf(sps.norm.isf(a / 2) / np.sqrt(t))),
    ("pocock", lambda t, a: a * np.log(1 + (np.e - 1) * t))])
def test_boundaries_spend_alpha_as_the_spending_function_says(spending, reference):
    looks = (3, 6, 9, 14, 20)
    levels = sequential.nominal_levels(0.05, looks, spending, exact_floor=False)
    simulated = crossing_rates(levels, looks)
    expected = reference(np.asarray(looks) / 20, 0.05)
    assert simulated == pytest.approx(expected, abs=4 * math.sqrt(0.05 / 200_000) + 2e-4)


def test_one_look_is_the_plain_level_and_looks_the_exact_test_cannot_use_carry_their_alpha():
    assert sequential.nominal_levels(0.05, (20,)) == pytest.approx((0.05,), rel=1e-4)
    floor = sequential.nominal_levels(0.05, (3, 6, 9, 14, 20))
    free = sequential.nominal_levels(0.05, (3, 6, 9, 14, 20), exact_floor=False)
    assert floor[:3] == (0.0, 0.0, 0.0)  # 2/2^9 = 0.0039 is above what O'Brien-Fleming spends by 9 seeds
    assert all(f >= g - 1e-12 for f, g in zip(floor[3:], free[3:]))
    assert floor[-1] > free[-1]  # the unused share reaches the last look
    assert sequential.seed_rounds(20) == [3, 6, 9, 14, 20] and sequential.seed_rounds(8) == [3, 6, 8]


def auto_frame(diffs: dict[str, list[float]], base=None) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    base = base if base is not None else list(0.1 + 0.002 * rng.standard_normal(20))
    rows = [{"dataset": "d", "model": "m", "activation": "relu", "seed": s, "status": "done", "error_rate": b}
            for s, b in enumerate(base)]
    for name, values in diffs.items():
        rows += [{"dataset": "d", "model": "m", "activation": name, "seed": s, "status": "done",
                  "error_rate": base[s] + d} for s, d in enumerate(values)]
    return pd.DataFrame(rows)


def test_replay_decides_at_the_first_look_whose_level_the_exact_test_can_reach():
    frame = auto_frame({"tanh": [0.01] * 14})  # worse on every seed; stopped at 14 by the sweep
    out = sequential.replay(frame, "relu", sequential.Design()).set_index("activation")
    assert out.loc["tanh", "verdict"] == "worse" and out.loc["tanh", "n"] == 14 and out.loc["tanh", "look"] == 3
    assert out.loc["tanh", "level"] == pytest.approx(sequential.nominal_levels(0.05, (3, 6, 9, 14, 20))[3])
    flipped = sequential.replay(frame, "relu", sequential.Design(higher_is_better=True)).set_index("activation")
    assert flipped.loc["tanh", "verdict"] == "better"  # a higher PSNR is better


def test_an_unfinished_look_leaves_the_comparison_open():
    frame = auto_frame({"tanh": [0.003 * (-1) ** s for s in range(11)]})  # the sweep is filling the 14 look
    out = sequential.replay(frame, "relu", sequential.Design()).set_index("activation")
    assert out.loc["tanh", "verdict"] == "undecided" and out.loc["tanh", "n"] == 9


def test_replay_reports_intervals_within_100_pp_and_decides_as_before():
    """3 seeds with wildly different errors: the replayed look's t intervals reach past
    +100 pp; the reported ends stop there, the verdict and p are the same as unclipped."""
    frame = auto_frame({"tanh": [0.80, 0.0, 0.85]}, base=[0.1, 0.1, 0.1])
    design = sequential.Design(looks=(3,))
    out = sequential.replay(frame, "relu", design).iloc[0]
    free = sequential.replay(frame.rename(columns={"error_rate": "psnr"}), "relu",
                             sequential.Design(looks=(3,), metric="psnr")).iloc[0]
    assert free["ci_high"] > 1 and free["equivalence_high"] > 1 and free["margin_supported"] > 1
    assert out["ci_high"] == 1 and out["equivalence_high"] == 1 and out["margin_supported"] == 1
    assert out["ci_low"] == free["ci_low"] > -1  # within the range: untouched
    assert (out["verdict"], out["p_permutation"], out["p_holm"]) == (free["verdict"], free["p_permutation"],
                                                                     free["p_holm"])


def stored_auto_sweep(folder, diffs, margin, looks=(3, 6, 9, 14, 20)):
    rng = np.random.default_rng(1)
    base = list(0.1 + 0.002 * rng.standard_normal(looks[-1]))
    store_runs(folder, {"relu": base, **{a: [b + d for b, d in zip(base, v)] for a, v in diffs.items()}})
    store = Store(folder)
    store.set_meta("sequential", {**sequential.Design(margin=margin, looks=looks).to_dict(), "baseline": "relu"})
    store.close()
    return build(folder)


def test_the_report_uses_the_margin_and_levels_the_sweep_used(tmp_path):
    """The audit's case: --equivalence 4 stopped tanh as equivalent, and the report,
    at its own ±0.1 pp, called it undecided and suggested more seeds."""
    rng = np.random.default_rng(2)
    report = stored_auto_sweep(tmp_path, {"tanh": list(0.004 * rng.standard_normal(14))}, margin=0.04)
    assert report.tests.set_index("activation").loc["tanh", "verdict"] == "equivalent"
    text = " ".join(render.verdict_text(report))
    assert "within ±4 pp" in text and "spent alpha = 0.05 over the looks" in text and "more seeds" not in text


def test_stopped_at_the_cap_says_so_and_what_the_data_still_allow(tmp_path):
    rng = np.random.default_rng(3)
    report = stored_auto_sweep(tmp_path, {"tanh": list(0.003 * rng.standard_normal(20))}, margin=0.001)
    tanh = report.tests.set_index("activation").loc["tanh"]
    assert tanh["verdict"] == "undecided" and tanh["n"] == 20
    text = " ".join(render.verdict_text(report))
    assert "--seeds auto stopped tanh at its maximum of 20 seeds" in text
    assert f"beyond ±{100 * tanh['margin_supported']:.2g} pp for tanh" in text and "would decide" not in text
    low, high = tanh["equivalence_low"], tanh["equivalence_high"]
    diff = report.kept.pivot_table(index="seed", columns="activation", values="error_rate")
    diff = (diff["tanh"] - diff["relu"]).to_numpy()
    ci = sps.ttest_1samp(diff, 0).confidence_interval(1 - 2 * tanh["equivalence_level"])
    assert (low, high) == pytest.approx((ci.low, ci.high))  # TOST at the look's level, by scipy
    free = sequential.nominal_levels(0.05, (3, 6, 9, 14, 20), exact_floor=False)[-1]
    assert tanh["equivalence_level"] == pytest.approx(free)  # the t test has no 2/2^n floor


@pytest.mark.slow
def test_familywise_false_verdicts_stay_at_5_percent_by_simulation():
    sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
    from sequential import LOOKS, sequential_sweep, sweep_data  # bench/sequential.py

    rng = np.random.default_rng(5)
    design, sweeps = sequential.Design(looks=LOOKS, draws=1000), 300
    false = sum(any(v in ("worse", "better") for v in sequential_sweep(sweep_data(rng, 0.0), design)[0])
                for _ in range(sweeps))
    assert false / sweeps <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / sweeps)


def test_a_level_is_kept_only_where_holms_step_down_reached_the_comparison():
    """Holm by hand: the smallest p fails its level alpha/3, so the step-down stops and
    the two comparisons after it were never tested against any level."""
    design = sequential.Design(looks=(6,))
    all_worse = np.full(6, 0.01)  # exact sign-flip p = 2/64 = 0.031 > 0.05 / 3
    noisy = np.array([0.01, -0.02, 0.03, -0.01, 0.02, -0.03])
    out = sequential.decide([noisy, all_worse, noisy * 2], design, look=0, comparisons=3, rejected=0)
    first = int(np.argmin([row["p_permutation"] for row in out]))
    assert first == 1 and out[1]["p_permutation"] == pytest.approx(2 / 64)
    assert out[1]["level"] == pytest.approx(design.levels(0.05 / 3)[0]) and out[1]["verdict"] == "undecided"
    assert math.isnan(out[0]["level"]) and math.isnan(out[2]["level"])
    passed = sequential.decide([all_worse], design, look=0, comparisons=1, rejected=0)[0]  # 2/64 < 0.05: decided
    assert passed["verdict"] == "worse" and passed["level"] == pytest.approx(0.05)


def test_a_design_judges_only_the_settings_its_sweep_ran(tmp_path):
    """The review's case: --seeds auto at epochs=1 (stopped at 3 seeds), then --seeds 8 at
    epochs=2 into the same folder. The 8-seed setting is a fixed design: every difference
    positive, exact p = 2/2^8 (enumeration by hand), worse; never replayed at 3 seeds."""
    from afbench.config import RunConfig
    from afbench.stats import settings

    store_runs(tmp_path, {"relu": [0.10, 0.12, 0.11], "sigmoid": [0.2, 0.1, 0.3]}, epochs=1)
    worse = [0.21, 0.25, 0.30, 0.22, 0.35, 0.28, 0.24, 0.26]
    store_runs(tmp_path, {"relu": [0.02] * 8, "sigmoid": worse}, epochs=2)
    design = sequential.Design(looks=(3,))
    mine = [settings.identity(RunConfig(activation="relu", seed=0, device="cpu", epochs=1).to_dict())]
    store = Store(tmp_path)
    store.set_meta("sequential", {**design.to_dict(), "baseline": "relu", "settings": mine})
    store.close()
    tests = build(tmp_path).tests.set_index("setting")
    fixed = tests.loc["mlp / digits, epochs=2"]
    assert fixed["n"] == 8 and fixed["verdict"] == "worse" and pd.isna(fixed.get("look"))
    assert fixed["p_permutation"] == pytest.approx(2 / 2 ** 8)
    looked = tests.loc["mlp / digits, epochs=1"]
    assert looked["n"] == 3 and looked["look"] == 0
    text = " ".join(render.verdict_text(build(tmp_path)))
    assert "--seeds auto stopped sigmoid" in text and "--seeds auto (on mlp / digits, epochs=1) looked" in text


def test_an_equivalent_look_shows_the_interval_it_decided_on(tmp_path):
    """The review's case: equivalence at a look is decided on the t interval at 1 - 2 x
    the look's level (scipy here), so the sentence shows that one, not a 95% CI."""
    rng = np.random.default_rng(5)
    report = stored_auto_sweep(tmp_path, {"gelu": list(0.0012 * rng.standard_normal(20))}, margin=0.001)
    gelu = report.tests.set_index("activation").loc["gelu"]
    assert gelu["verdict"] == "equivalent"
    diff = report.kept.pivot_table(index="seed", columns="activation", values="error_rate")
    diff = (diff["gelu"] - diff["relu"]).to_numpy()[:int(gelu["n"])]
    ci = sps.ttest_1samp(diff, 0).confidence_interval(1 - 2 * gelu["equivalence_level"])
    text = " ".join(render.verdict_text(report))
    shown = f"{100 * (1 - 2 * gelu['equivalence_level']):.4g}% CI {100 * ci.low:+.2f} to {100 * ci.high:+.2f}"
    assert shown in text and "the equivalence test's, at its look's level" in text


def test_the_forest_figure_draws_the_interval_each_look_decided_on(tmp_path):
    """As the text: a --seeds auto comparison's bar is its look's equivalence interval."""
    import matplotlib

    matplotlib.use("Agg")
    from afbench.report import figures

    rng = np.random.default_rng(5)
    report = stored_auto_sweep(tmp_path, {"gelu": list(0.0012 * rng.standard_normal(20))}, margin=0.001)
    gelu = report.tests.set_index("activation").loc["gelu"]
    fig = figures.plot_forest(report.tests, "relu", 0.001, "t")
    bar = fig.axes[0].lines[1].get_xdata()  # lines[0] is the baseline's 0
    assert tuple(bar) == pytest.approx((100 * gelu["equivalence_low"], 100 * gelu["equivalence_high"]))
    assert "the interval each --seeds auto look decided on" in fig.axes[0].get_xlabel()


def test_a_design_is_never_rejudged_by_another_sweep_or_a_merge(tmp_path, capsys):
    """The reviews' cases. Into a folder whose --seeds auto sweep decided relu vs tanh,
    another auto sweep of another setting (--epochs, an untuned --lr), with other
    activations or another --max-seeds, or fixed seeds of its setting, would re-judge its
    verdicts; so would merging it with another folder's runs of its setting. Each is
    refused (exit 2) with study.toml unchanged, also beside a design an older afbench
    stored without its settings; the same sweep again is accepted."""
    import json
    import sqlite3

    from afbench.cli import main

    def run(out, *extra, activations="relu,tanh"):
        return main(["run", "--activations", activations, "--train-subset", "200", "--out", str(out),
                     "--no-progress", "--quiet", "--cost-profile", "off", *extra])

    first, auto = tmp_path / "first", ("--seeds", "auto", "--max-seeds", "3")
    assert run(first, "--epochs", "1", *auto) == 0
    toml = (first / "study.toml").read_text()
    capsys.readouterr()
    refused = [(("--epochs", "2", *auto), "relu,tanh", "of other settings"),
               (("--epochs", "1", "--lr", "0.01", *auto), "relu,tanh", "of other settings"),
               (("--epochs", "1", *auto), "relu,gelu", "other activations"),
               (("--epochs", "1", "--seeds", "auto", "--max-seeds", "6"), "relu,tanh", "other --max-seeds"),
               (("--epochs", "1", *auto, "--equivalence", "0.5"), "relu,tanh", "other --equivalence"),
               (("--epochs", "1", "--seeds", "4"), "relu,tanh", "fixed seeds added to it")]
    for extra, activations, said in refused:
        assert run(first, *extra, activations=activations) == 2
        assert said in " ".join(capsys.readouterr().err.split())
        assert (first / "study.toml").read_text() == toml
    assert run(first, "--epochs", "1", *auto) == 0  # the same sweep again: resumed, not refused
    fixed = tmp_path / "fixed"
    assert run(fixed, "--epochs", "1", "--seeds", "2") == 0
    capsys.readouterr()
    assert main(["merge", str(first), str(fixed), "--out", str(tmp_path / "m")]) == 2
    assert "Report them apart" in " ".join(capsys.readouterr().err.split()) and not (tmp_path / "m").exists()
    db = sqlite3.connect(first / "results.sqlite")  # as an older afbench stored it: no settings
    with db:
        (value,) = db.execute("SELECT value FROM meta WHERE key = 'sequential'").fetchone()
        old = {k: v for k, v in json.loads(value).items() if k not in ("settings", "activations")}
        db.execute("UPDATE meta SET value = ? WHERE key = 'sequential'", (json.dumps(old),))
    db.close()
    assert run(first, "--epochs", "2", *auto) == 2
