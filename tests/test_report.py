"""Statistics against published values and hand computations; the report's files."""

import math
import re
import shutil
import subprocess

import pandas as pd
import pytest
from scipy import stats as sps

import headless

from afbench.config import RunConfig
from afbench.report import render
from afbench.stats import paired as stats
from afbench.sweep import LocalBackend, Runtime
from afbench.sweep.grid import Grid
from afbench.store.database import Store


def test_describe_gives_the_t_interval():
    values = [1.0, 2.0, 4.0]
    out = stats.describe(values)
    sd = math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2)
    assert out["mean"] == pytest.approx(7 / 3) and out["sd"] == pytest.approx(sd) and out["n"] == 3
    assert out["ci95"] == pytest.approx(4.302653 * sd / math.sqrt(3), rel=1e-5)  # t(0.975, 2) = 4.3027
    assert stats.describe([5.0])["n"] == 1 and math.isnan(stats.describe([5.0])["sd"])


def test_holm_by_hand():
    # p sorted: 0.01 (x3 = 0.03), 0.02 (x2 = 0.04), 0.04 (x1 = 0.04); NaN stays NaN.
    assert stats.holm([0.04, 0.01, float("nan"), 0.02]) == pytest.approx([0.04, 0.03, float("nan"), 0.04],
                                                                         nan_ok=True)
    assert stats.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1, monotone


@pytest.mark.parametrize("k,q", [(3, 2.343), (4, 2.569), (5, 2.728), (6, 2.850), (10, 3.164)])
def test_nemenyi_critical_difference_matches_demsar_table(k, q):
    # Demsar (2006), Table 5(a): q_0.05 for the two-tailed Nemenyi test.
    assert stats.nemenyi_cd(k, 10) == pytest.approx(q * math.sqrt(k * (k + 1) / 60), rel=2e-3)


def test_friedman_ranks_and_test():
    scores = pd.DataFrame({"a": [0.9, 0.8, 0.7, 0.85], "b": [0.8, 0.7, 0.6, 0.75], "c": [0.7, 0.75, 0.5, 0.7]})
    out = stats.friedman(scores)
    assert out["average_ranks"] == pytest.approx({"a": 1.0, "b": 2.25, "c": 2.75})
    assert out["p"] == pytest.approx(sps.friedmanchisquare(scores.a, scores.b, scores.c).pvalue)


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    cells = Grid(RunConfig(epochs=3, batch_size=64, target=0.8), ("relu", "tanh", "relu_softsign"),
                 seeds=(0, 1, 2)).configs()
    store = Store(folder)
    # One worker, no calibration and no cost profile: their ~50 s would test nothing here.
    LocalBackend(Runtime(progress=False, workers=1, stack=1, cost="off")).execute(cells, store)
    store.close()
    render.write(folder)
    return folder


def test_report_files_and_tables(sweep_folder):
    for name in ("summary.md", "summary.csv", "summary_stats.csv", "runs.csv", "epochs.csv", "summary.tex",
                 "report.html", "tests.csv"):
        assert (sweep_folder / name).stat().st_size > 0, name
    summary = pd.read_csv(sweep_folder / "summary.csv")
    assert len(summary) == 9 and list(summary.columns[:6]) == ["setting", "activation", "model", "dataset", "seed", "lr"]
    assert (summary["error_rate"] == 1 - summary["accuracy"]).all()
    assert len(pd.read_csv(sweep_folder / "epochs.csv")) == 27
    md = (sweep_folder / "summary.md").read_text()
    assert md.count("±") >= 18 and "Paired tests against relu" in md and "relu_softsign" in md
    stats_table = pd.read_csv(sweep_folder / "summary_stats.csv")
    relu = stats_table[stats_table.activation == "relu"].iloc[0]
    assert relu["error_rate_mean"] == pytest.approx(100 * summary[summary.activation == "relu"]["error_rate"].mean())
    tex = (sweep_folder / "summary.tex").read_text()
    assert "\\toprule" in tex and "\\bottomrule" in tex and "$\\pm$" in tex


def test_report_html_is_self_contained(sweep_folder):
    page = (sweep_folder / "report.html").read_text()
    figures = sorted((sweep_folder / "figures").glob("*.png"))
    assert len(figures) >= 6
    assert page.count("data:image/png;base64,") == len(figures)
    assert not re.search(r'src="(?!data:)', page)  # nothing fetched from elsewhere
    assert "<table" in page and "relu_softsign" in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_report_renders_in_headless_chromium(sweep_folder, tmp_path):
    # What a user sees: Chromium renders the page offline; the DOM it produced holds the
    # tables and every figure decoded (naturalWidth > 0).
    probe = sweep_folder / "report.html"
    script = ("<script>window.onload=()=>{const imgs=[...document.images];document.title="
              "'imgs='+imgs.length+' decoded='+imgs.filter(i=>i.naturalWidth>0).length+' tables='"
              "+document.querySelectorAll('table').length;}</script>")
    out = headless.dump_dom(probe, script, tmp_path)
    title = re.search(r"<title>imgs=(\d+) decoded=(\d+) tables=(\d+)</title>", out.stdout)
    assert title, out.stderr[-2000:]
    images, decoded, tables = map(int, title.groups())
    assert images == decoded == len(list((sweep_folder / "figures").glob("*.png"))) and tables >= 2
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile2'}", f"--screenshot={shot}", "--window-size=1200,2000",
                    probe.as_uri()], capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
