"""The suite (issue 27): a new activation trained alone and judged, paired by seed,
against stored baselines; the same verdicts with the baseline retrained here; pairing
refused across versions or devices; scores checked against scipy and hand counts."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

import headless

import afbench
from afbench.cli import main
from afbench.errors import AfbenchError
from afbench.store.database import Store
from afbench.store.merge import merge
from afbench.suite import baselines, leaderboard, score
from afbench.suite.definition import load_suite, parse_suite, suite_names
from afbench.suite.runner import configs_for, run_suite
from afbench.sweep import Runtime

TINY = """name = "tiny"
version = 1
baseline = "relu"
seeds = 3
baselines = ["relu", "tanh"]

[workloads.digits]
workload = "classification"
equivalence = 0.01
[workloads.digits.grid]
datasets = ["digits"]
models = ["mlp"]
[workloads.digits.settings]
epochs = 2
batch_size = 64
latency_samples = 5

[workloads.regression]
workload = "regression"
equivalence = 0.001
[workloads.regression.settings]
epochs = 4
latency_samples = 5

[workloads.inr]
workload = "inr"
equivalence = 0.25
[workloads.inr.settings]
epochs = 2
latency_samples = 5
"""
QUIET = Runtime(progress=False, workers=1, threads=1, stack=1, cost="off")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("suite")
    path = folder / "tiny.toml"
    path.write_text(TINY)
    suite = load_suite(str(path))
    stored = folder / "stored"
    outcome = run_suite(suite, None, stored, mode="none", runtime=QUIET)
    assert outcome.counts["failed"] == 0
    return {"path": path, "suite": suite, "stored": stored, "folder": folder}


@pytest.fixture(scope="module")
def judged(tiny):
    """silu judged against the stored runs, once: tests that change a folder copy it."""
    out = tiny["folder"] / "judged"
    outcome = run_suite(tiny["suite"], ("silu",), out, mode="stored", runtime=QUIET, stored=tiny["stored"])
    return {"out": out, "counts": outcome.counts}


def copy_of(judged, tmp_path):
    return Path(shutil.copytree(judged["out"], tmp_path / "copy"))


# ---- the definition ----------------------------------------------------------------------------


def test_the_shipped_suites_load_and_small_covers_every_task_family():
    assert suite_names()[0] == "small"
    small = load_suite("small")
    families = {w.study.settings.workload for w in small.workloads}
    assert families == {"classification", "charlm", "inr", "pinn", "regression"}
    assert len(small.seeds) >= 10 and {"relu", "gelu", "silu", "mish", "tanh"} <= set(small.baselines)
    assert next(w for w in small.workloads if w.name == "charlm").gated == ("geglu", "swiglu", "reglu")
    assert load_suite("full").version >= 1


@pytest.mark.parametrize("change, message", [
    (("equivalence = 0.01\n[workloads.digits.grid]", "equivalence = 0.01\nepochs = 3\n[workloads.digits.grid]"),
     r"line 10: \[workloads.digits\] epochs: unknown key"),
    (('models = ["mlp"]', 'models = ["mlp"]\nseeds = 5'), r"\[workloads.digits.grid\] seeds: set by the suite"),
    (("epochs = 2", "epochs = 0"), r"line 14: \[workloads.digits.settings\] epochs: .*>= 1"),
    (('baseline = "relu"', 'baseline = "elu"'), r"line 3: baseline: 'elu' is not among the suite's baselines"),
    (('workload = "regression"', 'workload = "regresion"'), r"\[workloads.regression\] workload: .*regression"),
])
def test_a_wrong_suite_file_names_the_line_and_the_key(change, message):
    with pytest.raises(AfbenchError, match=message):
        parse_suite(TINY.replace(*change), "tiny.toml")


def test_two_entries_of_one_workload_are_refused():
    twice = TINY + '\n[workloads.again]\nworkload = "regression"\n'
    with pytest.raises(AfbenchError, match="'regression' and 'again' train the same workload"):
        parse_suite(twice, "tiny.toml")


# ---- judging only what is new ------------------------------------------------------------------


def test_a_new_activation_trains_alone_and_pairs_with_the_stored_runs(tiny, judged):
    suite, out = tiny["suite"], judged["out"]
    assert judged["counts"]["ran"] == 3 * 3  # 3 workloads x 3 seeds of silu: nothing else trained
    runs = afbench.load(out)
    assert sorted(runs["activation"].unique()) == ["relu", "silu", "tanh"]
    result = score.score(out, suite, ("silu",))
    assert [w.name for w in result.workloads] == ["digits", "regression", "inr"]
    for w in result.workloads:
        assert int(w.tests.loc["silu", "n"]) == 3  # every seed paired with a stored relu run
        assert list(w.tests.index) == ["silu"]  # the new activation's family: itself only
        assert set(w.board.index) == {"silu", "tanh"}
    line = score.verdict_line(result, "silu")
    assert line.startswith("silu: ") and "of 3 workloads" in line and "step time not measured here" in line


def test_the_stored_runs_give_the_same_verdicts_as_the_baseline_retrained_here(tiny, judged, tmp_path):
    suite = tiny["suite"]
    stored_out, local_out = judged["out"], tmp_path / "local"
    outcome = run_suite(suite, ("silu",), local_out, mode="local", runtime=QUIET)
    assert outcome.counts["ran"] == 3 * 2 * 3  # relu trained here next to silu
    local, kept = afbench.load(local_out), afbench.load(tiny["stored"])
    relu = lambda f: f[f["activation"] == "relu"].set_index(["dataset", "seed"])["primary_value"].sort_index()
    pd.testing.assert_series_equal(relu(local), relu(kept))  # the same computation, to the bit
    a, b = score.score(stored_out, suite, ("silu",)), score.score(local_out, suite, ("silu",))
    for x, y in zip(a.workloads, b.workloads):
        assert x.tests.loc["silu", "verdict"] == y.tests.loc["silu", "verdict"]
        assert x.tests.loc["silu", "p_holm"] == y.tests.loc["silu", "p_holm"]
    assert score.verdict_line(a, "silu") == score.verdict_line(b, "silu")


def test_stored_runs_of_another_torch_or_device_are_never_paired(tiny, monkeypatch, tmp_path):
    suite = tiny["suite"]
    with pytest.raises(AfbenchError, match="made on cpu, this run trains on cuda.*--baselines local"):
        baselines.check_pairable(suite, "cuda:0", tiny["stored"])
    monkeypatch.setattr(baselines.torch, "__version__", "2.99.0+cpu")
    with pytest.raises(AfbenchError, match=r"torch 2\.99\.0\+cpu.*another minor version"):
        run_suite(suite, ("silu",), tmp_path / "x", mode="stored", runtime=QUIET, stored=tiny["stored"])
    assert not (tmp_path / "x" / "results.sqlite").exists()  # refused before anything was written
    monkeypatch.setattr(baselines.torch, "__version__", "2.99.7")
    later = parse_suite(TINY.replace("version = 1", "version = 2"), "tiny.toml")
    with pytest.raises(AfbenchError, match="made for suite tiny v1, this is tiny v2"):
        baselines.check_pairable(later, "cpu", tiny["stored"])


def test_stored_that_is_no_suite_results_says_which_flag_and_what_to_give(tiny, tmp_path):
    suite = tiny["suite"]
    text = tmp_path / "notes.txt"
    text.write_text("not a database")
    with pytest.raises(AfbenchError, match=r"--stored .*notes\.txt.*Give the results folder"):
        baselines.check_pairable(suite, "cpu", text)
    plain = tmp_path / "plain"  # an afbench run's folder: results, but of no suite
    assert main(["run", "--activations", "relu", "--epochs", "1", "--seeds", "1", "--out", str(plain),
                 "--no-progress", "--quiet"]) == 0
    with pytest.raises(AfbenchError, match="not a suite's results"):
        baselines.check_pairable(suite, "cpu", plain)


def test_stored_runs_of_other_settings_under_the_same_version_are_refused(tiny):
    edited = parse_suite(TINY.replace("epochs = 2", "epochs = 3", 1), "edited.toml")  # digits; version left at 1
    with pytest.raises(AfbenchError, match="they lack 3 of the runs of relu this suite pairs with"):
        baselines.check_pairable(edited, "cpu", tiny["stored"])


def test_runs_made_under_another_torch_already_in_the_folder_refuse_new_ones(tiny, judged, monkeypatch):
    monkeypatch.setattr(baselines.torch, "__version__", "2.99.0+cpu")
    with pytest.raises(AfbenchError, match=r"already holds runs that would not pair.*Give another --out"):
        run_suite(tiny["suite"], ("elu",), judged["out"], mode="none", runtime=QUIET)


def test_one_folder_never_mixes_stored_and_local_baselines(tiny, judged, tmp_path):
    out = judged["out"]
    with pytest.raises(AfbenchError, match="was run with --baselines stored"):
        run_suite(tiny["suite"], ("silu",), out, mode="local", runtime=QUIET)


# ---- scores against independent references -----------------------------------------------------


def _means(out, suite):
    """Lower-is-better means per data set and activation, written apart from score.py:
    PSNR (higher is better) negated for ranks."""
    runs = afbench.load(out)
    runs = runs[runs["status"] == "done"]
    means = runs.pivot_table(index="dataset", columns="activation", values="primary_value", aggfunc="mean")
    return means, means.mul([-1 if d == "china-128" else 1 for d in means.index], axis=0)


def test_ranks_and_friedman_match_scipy_and_profiles_match_a_hand_count(tiny, judged):
    suite = tiny["suite"]
    out = judged["out"]
    result = score.score(out, suite, ("silu",))
    raw, oriented = _means(out, suite)
    names = list(result.ranks["average_ranks"])
    expected = scipy_stats.friedmanchisquare(*[oriented[a] for a in names])
    assert result.ranks["p"] == pytest.approx(expected.pvalue)
    ranks = oriented[names].rank(axis=1).mean()
    for name in names:
        assert result.ranks["average_ranks"][name] == pytest.approx(ranks[name])
    # Dolan-More on positive costs: the error and the MSE as they are, PSNR as best / value
    cost = raw[names].copy()
    cost.loc["china-128"] = cost.loc["china-128"].max() / cost.loc["china-128"]
    cost.loc[["digits", "special:j0"]] = cost.loc[["digits", "special:j0"]].div(
        cost.loc[["digits", "special:j0"]].min(axis=1), axis=0)
    ratio = cost
    for name in names:
        assert result.profile.loc[1.0, name] == pytest.approx((ratio[name] <= 1.0).mean())
        assert result.profile.loc[1.5, name] == pytest.approx((ratio[name] <= 1.5).mean())


def test_a_diverged_seed_counts_at_the_worst_value_and_is_never_equivalent(tiny, judged, tmp_path):
    from afbench.store.database import Store

    suite, out = tiny["suite"], copy_of(judged, tmp_path)
    runs = afbench.load(out)
    key = runs[(runs["activation"] == "silu") & (runs["dataset"] == "special:j0") & (runs["seed"] == 0)]["key"].iloc[0]
    store = Store(out)
    try:
        with store.transaction() as db:  # as a run that blew up would be stored
            db.execute("UPDATE runs SET status = 'diverged' WHERE key = ?", (key,))
    finally:
        store.close()
    result = score.score(out, suite, ("silu",))
    w = next(w for w in result.workloads if w.name == "regression")
    done = runs[(runs["dataset"] == "special:j0") & (runs["status"] == "done")]
    worst = done["primary_value"].max()  # MSE: the worst finished value of the workload, any activation
    silu = done[(done["activation"] == "silu") & (done["seed"] != 0)]["primary_value"]
    assert w.means["silu"] == pytest.approx((silu.sum() + worst) / 3)
    assert w.tests.loc["silu", "diverged"] == 1 and w.tests.loc["silu", "verdict"] != "equivalent"


def test_runs_of_another_batch_size_in_the_folder_never_count(tiny, judged, tmp_path):
    suite, out = tiny["suite"], copy_of(judged, tmp_path)
    before = score.score(out, suite, ("silu",))
    other = parse_suite(TINY.replace("epochs = 4", "epochs = 4\nbatch_size = 32"), "other.toml")
    from afbench.sweep import execute

    regression = next(w for w in other.workloads if w.name == "regression")
    execute(regression.configs(("silu",), (0, 1, 2)), out, None, device="cpu")
    after = score.score(out, suite, ("silu",))
    w0, w1 = (next(w for w in r.workloads if w.name == "regression") for r in (before, after))
    assert w1.means["silu"] == w0.means["silu"] and w1.seeds["silu"] == 3
    assert any("runs of other settings" in note for note in after.notes)


def test_the_profile_reads_a_higher_is_better_metric_as_its_reciprocal():
    w = score.WorkloadScore("inr", "psnr", True, 0.25, pd.Series({"relu": 20.0, "sine": 25.0}), pd.Series(dtype=float),
                            pd.Series(dtype=float), pd.DataFrame(), pd.DataFrame(), pd.Series(dtype=float))
    costs = score._costs(w)
    assert costs["relu"] / costs.min() == pytest.approx(25.0 / 20.0)  # relu is 1.25x worse than the best


# ---- what the user sees --------------------------------------------------------------------------


def test_the_command_trains_only_the_new_activation_and_writes_the_leaderboard(tiny, tmp_path, capsys):
    out = tmp_path / "cli"
    status = main(["suite", str(tiny["path"]), "--activations", "x*sigmoid(1.5*x)", "--stored", str(tiny["stored"]),
                   "--out", str(out), "--workers", "1", "--threads", "1", "--no-progress"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "suite verdict:" in captured.out and "x*sigmoid(1.5*x): " in captured.out
    assert re.search(r"x\*sigmoid\(1\.5\*x\): .* of 3 workloads.*x relu's step time", captured.out.replace("\n", ""))
    assert "ran 9, skipped 0" in captured.err
    summary = json.loads((out / "suite.json").read_text())
    assert summary["new"] == ["x*sigmoid(1.5*x)"] and {r["activation"] for r in summary["board"]} == \
        {"relu", "tanh", "x*sigmoid(1.5*x)"}
    page = (out / "leaderboard.html").read_text()
    assert "sortBy(" in page and "x*sigmoid(1.5*x)" in page and "<script src" not in page
    assert summary["ranks"]["p"] is None or 0 <= summary["ranks"]["p"] <= 1  # valid JSON: no NaN
    assert (out / "figures" / "suite_profile.png").stat().st_size > 5000


def test_bad_suite_input_is_one_line_with_the_fix(tiny, capsys):
    assert main(["suite", "smal"]) == 2
    assert "unknown suite 'smal'. Did you mean 'small'?" in capsys.readouterr().err
    assert main(["suite", str(tiny["path"]), "--baselines", "local"]) == 2
    assert "give --activations" in capsys.readouterr().err
    assert main(["suite", str(tiny["path"]), "--activations", "silu"]) == 2  # a suite file ships no baselines
    assert "has no stored baselines" in capsys.readouterr().err
    assert main(["suite", str(tiny["path"]), "--activations", "silu", "--baselines", "local", "--stored", "x"]) == 2
    assert "--stored gives stored baselines to pair with" in capsys.readouterr().err
    assert main(["show", "suite", "small"]) == 0
    assert 'name = "small"' in capsys.readouterr().out


def _sweep_interrupted_in_the_second_workload():
    """A stand-in for sweep.execute: the first workload's sweep finishes its runs, the
    second saves 2 and is stopped by Ctrl-C (its Interrupted counts its own runs only)."""
    from afbench.errors import Interrupted
    from afbench.results import RunSummary, Status

    calls = []

    def execute(configs, out, backend, **kwargs):
        calls.append(len(configs))
        store = Store(out)
        try:
            store.enqueue(configs)
            saved = configs if len(calls) == 1 else configs[:2]
            for config in saved:
                store.claim(config)
                store.finish(config.key(), Status.DONE, RunSummary(params=1, epochs_run=1, total_train_s=1.0), {})
        finally:
            store.close()
        if len(calls) == 2:
            raise Interrupted(len(saved), len(configs), 2)
        return afbench.sweep.Outcome({"ran": len(configs), "skipped": 0, "failed": 0}, configs)
    return execute, calls


def test_an_interrupted_suite_counts_the_saved_runs_of_every_workload(tmp_path, monkeypatch):
    """Ctrl-C in the second of three workloads: '8 of 18 runs saved' (6 + 2 of 3 x 6),
    not the second workload's '2 of 6'."""
    from afbench.errors import Interrupted
    from afbench.suite import runner

    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    suite = load_suite(str(path))
    workloads = [w.configs(("relu", "tanh"), suite.seeds) for w in suite.workloads]
    execute, calls = _sweep_interrupted_in_the_second_workload()
    monkeypatch.setattr(runner, "execute", execute)
    with pytest.raises(Interrupted) as stopped:
        runner.execute_plan(runner.Plan(suite, "none", workloads, None, None), tmp_path / "out")
    assert calls == [6, 6]  # the third workload never started
    assert (stopped.value.saved, stopped.value.total, stopped.value.signal_number) == (8, 18, 2)
    assert str(stopped.value) == "interrupted: 8 of 18 runs saved; rerun the same command to resume"


def test_contributions_merge_into_one_leaderboard(tiny, judged, tmp_path, capsys):
    suite = tiny["suite"]
    ours, theirs = judged["out"], tmp_path / "theirs"
    run_suite(suite, ("elu",), theirs, mode="stored", runtime=QUIET, stored=tiny["stored"])
    summary = merge([ours, theirs], tmp_path / "all")
    assert summary["conflicts"] == {"timings": 0, "results": 0}  # the shared stored runs are identical, kept once
    runs = afbench.load(tmp_path / "all")
    assert runs.groupby("activation").size().to_dict() == {"elu": 9, "relu": 9, "silu": 9, "tanh": 9}
    assert main(["suite", str(tiny["path"]), "--stored", str(tmp_path / "all"), "--out", str(tmp_path / "board")]) == 0
    board = json.loads((tmp_path / "board" / "suite.json").read_text())["board"]
    assert {r["activation"] for r in board} == {"elu", "relu", "silu", "tanh"}


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_the_leaderboard_renders_and_sorts_in_headless_chromium(tiny, judged, tmp_path):
    out = copy_of(judged, tmp_path)
    result = score.score(out, tiny["suite"], ("silu",))
    leaderboard.write(out, result)
    probe = ("<script>window.onload=()=>{sortBy(3);const first=document.querySelector('#board tbody tr')"
             ".cells[0].textContent;document.title='imgs='+[...document.images].filter(i=>i.naturalWidth>0).length"
             "+' rows='+document.querySelectorAll('#board tbody tr').length+' first='+first;}</script>")
    done = headless.dump_dom(out / "leaderboard.html", probe, tmp_path)
    title = re.search(r"<title>imgs=(\d+) rows=(\d+) first=([^<]*)</title>", done.stdout)
    assert title, done.stderr[-2000:]
    frame = leaderboard.board(result)
    best = frame.sort_values("digits").iloc[0]["activation"]  # column 3: digits' error, lowest first
    assert int(title.group(1)) >= 1 and int(title.group(2)) == 3 and title.group(3) == best


# ---- the shipped baselines ------------------------------------------------------------------------


def test_the_shipped_baselines_hold_every_run_the_small_suite_pairs_with():
    suite = load_suite("small")
    path = baselines.stored_path(suite)
    assert path is not None and path.stat().st_size < 5_000_000
    made = baselines.made_under(path)
    assert made["suite"] == "small" and made["device"] == ["cpu"] and made["torch"]
    stored = afbench.load(path)
    done = set(stored.loc[stored["status"].isin(["done", "diverged"]), "key"])
    wanted = [c for configs in configs_for(suite, None, "none") for c in configs]
    from afbench.sweep.execute import resolve

    missing = [c for c in resolve(wanted, "cpu") if c.key() not in done]
    assert not missing, f"{len(missing)} stored runs missing, e.g. {missing[0].activation} on {missing[0].dataset}"
    finished = stored[stored["status"] == "done"]
    assert np.isfinite(finished["primary_value"]).all() and len(finished) >= 500


def test_a_sweep_folder_is_refused_as_a_suite_folder_and_left_as_it_was(tiny, tmp_path, capsys):
    """`afbench suite --out` into an `afbench run` folder: its runs would be scored as the suite's."""
    sweep = Path(shutil.copytree(tiny["stored"], tmp_path / "sweep"))
    store = Store(sweep)
    with store.transaction() as db:  # what an `afbench run` folder lacks: the suite's mark
        db.execute("DELETE FROM meta WHERE key = 'suite'")
    runs = len(store.runs())
    store.close()
    before = (sweep / "results.sqlite").read_bytes()
    for extra in (["--activations", "silu"], []):  # judging an activation, and the stored baselines alone
        assert main(["suite", "small", *extra, "--out", str(sweep)]) == 2
        err = " ".join(capsys.readouterr().err.split())  # wrapped at 80 columns
        assert f"holds {runs} runs of a sweep (afbench run), not of a suite" in err and "Give another --out" in err
    assert (sweep / "results.sqlite").read_bytes() == before
