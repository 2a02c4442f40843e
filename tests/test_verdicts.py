"""Issue 14: paired comparisons that hold at any n, marks that say only what the data
says, and a verdict in plain words. References: an exact enumeration written here,
scipy, scikit-learn."""

import itertools
import math
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from afbench.config import RunConfig
from afbench.errors import AfbenchError
from afbench.report import render, tables
from afbench.stats import paired as stats
from afbench.report.verdict import verdict_lines
from afbench.results import EpochRecord, RunSummary, Status
from afbench.store.database import Store


def exact_sign_flip(diff):
    """Independent reference: enumerate every sign pattern with itertools."""
    diff = np.asarray(diff, dtype=float)
    observed = abs(diff.mean())
    hits = sum(abs(np.mean([s * d for s, d in zip(signs, diff)])) >= observed - 1e-12
               for signs in itertools.product((1, -1), repeat=len(diff)))
    return hits / 2 ** len(diff)


# ---- paired_comparison -------------------------------------------------------------------

@pytest.mark.parametrize("diff", [[0.3, -0.1, 0.2, 0.25, 0.05], [1, 1, -1, 2], [0.0, 0.0, 0.5], [2.0, -2.0],
                                  [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, -0.05, 0.7, 0.2, 0.1]])
def test_permutation_p_is_the_exact_enumeration(diff):
    base = np.linspace(1, 2, len(diff))
    result = stats.paired_comparison(base, base + np.asarray(diff))
    assert result.p_permutation == pytest.approx(exact_sign_flip(diff))
    assert result.permutation_draws == 0  # exact


def test_permutation_p_agrees_with_scipy_permutation_test():
    rng = np.random.default_rng(3)
    a = rng.normal(size=9)
    b = a + 0.4 + rng.normal(scale=0.5, size=9)
    reference = sps.permutation_test((b, a), lambda x, y: np.mean(x - y), permutation_type="samples",
                                     n_resamples=np.inf, alternative="two-sided").pvalue
    assert stats.paired_comparison(a, b).p_permutation == pytest.approx(reference)


def test_all_zero_differences_give_p_1_and_equal_ones_give_2_over_2_to_the_n():
    assert stats.paired_comparison([1, 2, 3], [1, 2, 3]).p_permutation == 1.0
    assert stats.paired_comparison([1, 2, 3, 4], [1.5, 2.5, 3.5, 4.5]).p_permutation == pytest.approx(2 / 16)


def test_two_seeds_never_give_p_zero():
    # The audit's case: one more test image of 360 wrong on both seeds.
    base = [0.0250, 0.0306]
    result = stats.paired_comparison(base, [b + 1 / 360 for b in base])
    assert result.p_permutation == pytest.approx(0.5)
    assert math.isnan(result.p_ttest)  # zero variance (up to floating-point noise): no t-test, no mark
    assert result.p_wilcoxon == pytest.approx(sps.wilcoxon([1 / 360, 1 / 360]).pvalue)
    assert "Wilcoxon cannot reach" in result.note


def test_t_test_and_wilcoxon_are_scipys_where_defined():
    a, b = np.array([0.10, 0.12, 0.11, 0.15]), np.array([0.13, 0.16, 0.12, 0.15])
    result = stats.paired_comparison(a, b)
    assert result.p_ttest == pytest.approx(sps.ttest_rel(b, a).pvalue)
    assert result.p_wilcoxon == pytest.approx(sps.wilcoxon(b - a).pvalue)
    assert result.n == 4 and result.n_nonzero == 3  # Wilcoxon drops the zero difference; the note counts 3
    assert "3 non-zero differences < 6" in result.note
    d = b - a
    assert result.effect_size == pytest.approx(d.mean() / d.std(ddof=1))
    half = sps.t.ppf(0.975, 3) * d.std(ddof=1) / 2
    assert (result.ci_low, result.ci_high) == pytest.approx((d.mean() - half, d.mean() + half))


def test_monte_carlo_beyond_sixteen_pairs_says_how_many_draws():
    rng = np.random.default_rng(0)
    a = rng.normal(size=30)
    b = a + rng.normal(scale=1.0, size=30) + 0.2
    result = stats.paired_comparison(a, b, draws=20_000)
    assert result.permutation_draws == 20_000
    reference = sps.permutation_test((b, a), lambda x, y: np.mean(x - y), permutation_type="samples",
                                     n_resamples=20_000, alternative="two-sided", random_state=1).pvalue
    assert result.p_permutation == pytest.approx(reference, abs=0.02)


def test_verdicts_decide_better_worse_equivalent_undecided():
    seeds = range(8)
    rows = []
    for s in seeds:
        base = 0.10 + 0.01 * (s % 3)
        for activation, error in (("relu", base), ("tanh", base + 0.02 + 0.001 * s), ("elu", base - 0.02),
                                  ("gelu", base + 0.0001 * (-1) ** s), ("selu", base + 0.03 * (-1) ** s)):
            rows.append({"dataset": "d", "model": "m", "activation": activation, "seed": s, "status": "done",
                         "error_rate": error})
    out = stats.verdicts(pd.DataFrame(rows), "error_rate", "relu", equivalence=0.001).set_index("activation")
    assert out.loc["tanh", "verdict"] == "worse" and out.loc["elu", "verdict"] == "better"
    assert out.loc["gelu", "verdict"] == "equivalent" and out.loc["selu", "verdict"] == "undecided"
    assert out.loc["tanh", "p_holm"] == pytest.approx(min(1, 4 * 2 / 256))  # 8 equal signs, 4 comparisons


# ---- the report: marks, top group, verdict, every format ----------------------------------

def fake_sweep(folder, errors: dict[str, list[float]], diverged: dict[str, int] | None = None, status=Status.DONE):
    """A database with the given test error per seed (no training: the report's input alone)."""
    store = Store(folder)
    for activation, values in errors.items():
        for seed, error in enumerate(values):
            config = RunConfig(activation=activation, seed=seed, device="cpu")
            store.claim(config)
            store.record_epoch(config.key(), EpochRecord(1, 0.5, 0.8, 1.0, 1.0, train_steps=10, test_loss=0.4,
                                                         test_acc=1 - error))
            failed = (diverged or {}).get(activation, -1) == seed
            summary = RunSummary(params=1000 * (2 if activation == "maxout" else 1), epochs_run=1,
                                 total_train_s=1.0, train_steps=10)
            if not failed and status == Status.DONE:
                summary.accuracy, summary.error_rate, summary.f1 = 1 - error, error, 1 - error
                summary.ms_per_sample = 0.1
            store.finish(config.key(), Status.DIVERGED if failed else status, summary, {"stack_size": 1})
    store.close()
    return folder


def test_significant_differences_are_marked_with_their_direction_in_every_format(tmp_path):
    base = [0.10, 0.12, 0.11, 0.13, 0.10, 0.12, 0.11, 0.14]
    folder = fake_sweep(tmp_path, {"relu": base, "tanh": [b + 0.03 for b in base], "elu": [b - 0.02 for b in base],
                                   "gelu": [b + 0.001 * (-1) ** i for i, b in enumerate(base)]})
    report = render.write(folder, "relu")
    rows = {r["activation"]: r for r in report.comparison()}
    assert rows["tanh"]["error (%)"].endswith(tables.WORSE)
    assert rows["elu"]["error (%)"].strip("*").endswith(tables.BETTER)
    assert rows["gelu"]["vs baseline"] == "equivalent" and tables.WORSE not in rows["gelu"]["error (%)"]
    assert rows["elu"]["error (%)"].startswith("**")  # the top group: elu alone has the lowest error
    assert not rows["relu"]["error (%)"].startswith("**")
    md = (folder / "summary.md").read_text()
    assert md.index("## Verdict") < md.index("## Comparison")
    assert "tanh is worse than relu: test error +3.00 pp" in md and "elu is better than relu" in md
    assert "gelu is practically equivalent to relu" in md
    page = (folder / "report.html").read_text()
    assert re.search(r"<td><strong>[^<]*▼</strong></td>", page) and "▲</td>" in page
    assert "tanh is worse than relu" in page
    tex = (folder / "summary.tex").read_text()
    assert r"\textbf{" in tex and r"$\blacktriangle$" in tex and r"$\blacktriangledown$" in tex
    stats_csv = pd.read_csv(folder / "summary_stats.csv").set_index("activation")
    assert stats_csv.loc["tanh", "verdict"] == "worse (n=8)" and stats_csv.loc["relu", "verdict"] == "baseline"


def test_two_seeds_and_equal_differences_mark_nothing(tmp_path):
    folder = fake_sweep(tmp_path, {"relu": [0.0250, 0.0306], "tanh": [0.0250 + 1 / 360, 0.0306 + 1 / 360]})
    report = render.write(folder, "relu")
    tanh = next(r for r in report.comparison() if r["activation"] == "tanh")
    assert tables.WORSE not in tanh["error (%)"] and tanh["vs baseline"] == "undecided"
    assert "no comparison can reach p < 0.05" in (folder / "summary.md").read_text()


def test_one_seed_cannot_rank_and_nothing_is_bold(tmp_path):
    folder = fake_sweep(tmp_path, {"relu": [0.1], "tanh": [0.3], "maxout": [0.05]})
    report = render.write(folder, "relu")
    rows = report.comparison()
    assert all(r["vs baseline"] == "one seed cannot rank" and "**" not in r["error (%)"] for r in rows)
    assert "one seed cannot separate" in (folder / "summary.md").read_text()
    maxout = next(r for r in rows if r["activation"] == "maxout")
    assert maxout["params"] == "2,000" and "--match-params" in maxout["note"]


def test_identical_values_and_partial_targets_are_never_bold(tmp_path):
    folder = fake_sweep(tmp_path, {"relu": [0.0] * 3, "tanh": [0.0] * 3})
    rows = render.write(folder, "relu").comparison()
    assert all(r["vs baseline"] in ("baseline", "equivalent") for r in rows)
    assert all(tables.WORSE not in r["error (%)"] and tables.BETTER not in r["error (%)"] for r in rows)


def test_markdown_table_parses_with_the_intended_cells(tmp_path):
    from markdown_it import MarkdownIt

    base = [0.10, 0.12, 0.11, 0.13, 0.10, 0.12, 0.11, 0.14]
    folder = fake_sweep(tmp_path, {"relu": base, "x|y": [b + 0.03 for b in base]})
    render.write(folder, "relu")
    tokens = MarkdownIt().enable("table").parse((folder / "summary.md").read_text())
    cells = [t.children[0].content if t.children else "" for t in tokens if t.type == "inline"]
    marked = [c for c in cells if c.endswith(tables.WORSE)]
    assert marked and "****" not in (folder / "summary.md").read_text()
    html = MarkdownIt().enable("table").render((folder / "summary.md").read_text())
    assert "<th>error (%)</th>" in html and "<td>x|y</td>" in html  # the pipe did not split the cell


def _parse_latex(text):
    from pylatexenc.latexwalker import LatexWalker

    nodes, _, _ = LatexWalker(text, tolerant_parsing=False).get_latex_nodes()
    return nodes


def test_summary_tex_is_valid_latex_with_special_names_escaped(tmp_path):
    base = [0.10, 0.12, 0.11, 0.13, 0.10, 0.12, 0.11, 0.14]
    weird = "x_1 % & # $ ^ ~ \\ {}"
    folder = fake_sweep(tmp_path, {"relu": base, weird: [b + 0.03 for b in base], "elu": [b - 0.02 for b in base]})
    render.write(folder, "relu")
    tex = (folder / "summary.tex").read_text()
    _parse_latex(tex)  # raises on unbalanced braces or environments
    assert tex.count(r"\begin{") == tex.count(r"\end{")
    assert r"x\_1 \% \& \# \$ \textasciicircum{} \textasciitilde{} \textbackslash{} \{\}" in tex


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no pdflatex (Debian: texlive-latex-recommended)")
def test_summary_tex_compiles_with_pdflatex(tmp_path):
    base = [0.10, 0.12, 0.11, 0.13, 0.10, 0.12, 0.11, 0.14]
    folder = fake_sweep(tmp_path, {"relu": base, "x_1 % & #": [b + 0.03 for b in base],
                                   "elu": [b - 0.02 for b in base]})
    render.write(folder, "relu")
    out = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "summary.tex"], cwd=folder,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:]
    assert (folder / "summary.pdf").stat().st_size > 1000


# ---- the report for any state of the database -----------------------------------------------

@pytest.mark.parametrize("case", ["empty", "all failed", "all diverged", "one run"])
def test_the_report_is_written_for_any_state(tmp_path, case):
    if case == "empty":
        Store(tmp_path).close()
    elif case == "all failed":
        store = Store(tmp_path)
        for activation in ("relu", "tanh"):
            config = RunConfig(activation=activation)
            store.claim(config)
            store.fail(config.key(), "RuntimeError: boom")
        store.close()
    elif case == "all diverged":
        fake_sweep(tmp_path, {"relu": [0.9, 0.9], "tanh": [0.9, 0.9]}, status=Status.DIVERGED)
    else:
        fake_sweep(tmp_path, {"relu": [0.1]})
    report = render.write(tmp_path, "relu")
    for name in ("summary.md", "report.html", "summary.tex", "summary.csv", "runs.csv"):
        assert (tmp_path / name).exists(), name
    assert "## Verdict" in (tmp_path / "summary.md").read_text()
    assert isinstance(report.comparison(), list)


def test_an_unknown_baseline_is_an_error_and_leaves_no_stale_tests(tmp_path):
    base = [0.10, 0.12, 0.11]
    folder = fake_sweep(tmp_path, {"relu": base, "tanh": [b + 0.01 for b in base]})
    render.write(folder, "ReLU")  # case and aliases are folded
    assert (folder / "tests.csv").exists()
    with pytest.raises(AfbenchError, match="baseline 'nosuch' is not among the activations.*relu, tanh"):
        render.write(folder, "nosuch")
    assert not (folder / "tests.csv").exists()


def test_figure_names_never_collide_or_overflow():
    names = {render._file_name(text) for text in ("imagefolder:/a/b_c-mlp", "imagefolder:/a/b/c-mlp")}
    assert len(names) == 2
    long = render._file_name("imagefolder:/" + "x" * 500)
    assert len(long) <= 80 and render._file_name("accuracy-digits-mlp") == "accuracy-digits-mlp"


def test_the_critical_difference_diagram_needs_friedman_to_reject():
    no = {"average_ranks": {"a": 1.9, "b": 2.0, "c": 2.1}, "p": 0.6, "blocks": 3, "cd": 1.9, "k": 3}
    assert "does not reject" in " ".join(verdict_lines(
        pd.DataFrame([{"dataset": "d", "model": "m", "activation": "a", "done": 1}]), pd.DataFrame(), {}, no, "a",
        0.001))


def test_performance_profile_by_hand():
    scores = pd.DataFrame({"a": [1.0, 2.0], "b": [2.0, 1.0], "c": [1.5, 4.0]})
    profile = stats.performance_profile(scores, [1.0, 1.5, 2.0])
    assert profile["a"].tolist() == [0.5, 0.5, 1.0] and profile["c"].tolist() == [0.0, 0.5, 0.5]


def test_macro_scores_skip_classes_absent_from_targets_and_predictions():
    import torch
    from sklearn.metrics import precision_recall_fscore_support

    from afbench.engine import metrics

    y, p = torch.tensor([0, 0, 1, 1, 2, 2, 3]), torch.tensor([0, 1, 1, 1, 2, 0, 4])
    report = metrics.classification_report(metrics.confusion_matrix(y, p, 10))  # classes 5..9 absent from both
    precision, recall, f1, _ = precision_recall_fscore_support(y, p, average="macro", zero_division=0)
    assert (report["precision"], report["recall"], report["f1"]) == pytest.approx((precision, recall, f1))


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_report_html_shows_the_marks_in_headless_chromium(tmp_path):
    base = [0.10, 0.12, 0.11, 0.13, 0.10, 0.12, 0.11, 0.14]
    folder = fake_sweep(tmp_path, {"relu": base, "tanh": [b + 0.03 for b in base], "elu": [b - 0.02 for b in base]})
    render.write(folder, "relu")
    out = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", (folder / "report.html").as_uri()],
                          capture_output=True, text=True, timeout=120)
    dom = out.stdout
    assert "tanh is worse than relu" in dom and "elu is better than relu" in dom
    assert re.search(r"<td>[0-9.]+ ± [0-9.]+ ▲</td>", dom)  # tanh, marked worse
    assert re.search(r"<td><strong>[0-9.]+ ± [0-9.]+ ▼</strong></td>", dom)  # elu, better and the top group
