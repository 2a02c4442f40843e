"""Issue 25: a report people would rather look at. The main result (each activation's
paired difference from the baseline with its CI) is the first figure; curves are
readable (log-scaled error, legends beside the lines, whole-number epochs); captions
are words; empty sections are left out."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from scipy import stats as sps

from afbench.report import render
from report_sweeps import BASE, fake_sweep

ERRORS = {"relu": BASE, "tanh": [b + 0.03 + 0.002 * (i % 3) for i, b in enumerate(BASE)],
          "elu": [b - 0.02 - 0.001 * i for i, b in enumerate(BASE)],
          "gelu": [b + 0.001 * (-1) ** i for i, b in enumerate(BASE)],
          "sigmoid": [b + 0.2 + 0.01 * (i % 2) for i, b in enumerate(BASE)]}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = fake_sweep(tmp_path_factory.mktemp("readable"), ERRORS, epochs=2)
    report = render.write(folder, "relu")
    return folder, report


def test_the_forest_plot_is_the_first_figure_everywhere(written):
    folder, report = written
    first = next(iter(report.figures))
    assert first == "difference-from-baseline-digits-mlp"
    page = (folder / "report.html").read_text()
    assert page.index("<figure") == page.index('<figure id="difference-from-baseline-digits-mlp"')
    assert page.index("<figure") < page.index("<table")  # before the tables: the main result first
    md = (folder / "summary.md").read_text()
    assert md.index("figures/difference-from-baseline") < md.index("| dataset |")


def test_the_forest_plot_shows_each_paired_difference_and_its_t_interval(written):
    _, report = written
    ax = report.figures["difference-from-baseline-digits-mlp"].draw().axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "tanh ▲" in labels and "elu ▼" in labels and "gelu" in labels and "relu" not in labels
    points = {}
    for line in ax.get_lines():
        x, y = line.get_xdata(), line.get_ydata()
        if len(x) == 2 and y[0] == y[1]:  # the interval of one row
            points.setdefault(labels[int(y[0])].split()[0], {})["ci"] = tuple(x)
        elif len(x) == 1:  # the mean
            points.setdefault(labels[int(y[0])].split()[0], {})["mean"] = x[0]
    for activation in ("tanh", "elu", "gelu", "sigmoid"):
        diff = 100 * (np.array(ERRORS[activation]) - np.array(BASE))  # paired by seed
        low, high = sps.t.interval(0.95, len(diff) - 1, loc=diff.mean(), scale=sps.sem(diff))
        assert points[activation]["mean"] == pytest.approx(diff.mean())
        assert points[activation]["ci"] == pytest.approx((low, high), abs=1e-9)


def test_curves_are_log_scaled_with_whole_epochs_and_a_legend_beside_them(written):
    _, report = written
    figure = report.figures["accuracy-digits-mlp"].draw()
    ax = figure.axes[0]
    figure.canvas.draw()
    assert ax.get_yscale() == "log" and "error" in ax.get_ylabel()
    low, high = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if low <= t <= high]
    assert ticks and all(float(t).is_integer() for t in ticks)  # a 2-epoch run: 1 and 2, no 1.2
    legend, axes_box = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= axes_box.x1  # beside the axes: it covers no line
    sigmoid = next(line for line in ax.get_lines() if line.get_label() == "sigmoid")
    assert sigmoid.get_ydata()[-1] == pytest.approx(100 * np.mean(ERRORS["sigmoid"]))  # the error in %


def test_captions_are_words_not_file_names(written):
    folder, report = written
    page = (folder / "report.html").read_text()
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page)
    assert len(captions) == len(report.figures)
    for caption, name in zip(captions, report.figures):
        assert name not in caption and " " in caption and "mlp on digits" in caption or name == "activations"


def test_empty_sections_are_left_out(tmp_path):
    folder = fake_sweep(tmp_path, {"relu": [0.1], "tanh": [0.2]})  # one seed: no tests, no cost profile
    render.write(folder, "relu")
    page, md = (folder / "report.html").read_text(), (folder / "summary.md").read_text()
    for text in (page, md):
        assert "nothing yet" not in text and "Cost" not in text and "Paired tests" not in text
        assert "Verdict" in text and "one seed cannot separate" in text


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_chromium_shows_the_forest_plot_first(written, tmp_path):
    # What a user sees: Chromium lays the page out; the first image on screen is the
    # main result, above the comparison table, and every image decoded.
    folder, _ = written
    script = ("<script>window.onload=()=>{const imgs=[...document.images];const top=e=>e.getBoundingClientRect()"
              ".top;const first=imgs.sort((a,b)=>top(a)-top(b))[0];document.title='first='+first.parentNode.id+"
              "' above='+(top(first)<top(document.querySelector('table')))+' decoded='+"
              "imgs.filter(i=>i.naturalWidth>0).length+'/'+imgs.length;}</script>")
    checked = tmp_path / "checked.html"
    checked.write_text((folder / "report.html").read_text().replace("</body>", script + "</body>"))
    flags = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--window-size=1200,1600"]
    shot = tmp_path / "shot.png"
    out = subprocess.run([*flags, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
                          f"--screenshot={shot}", "--dump-dom", checked.as_uri()],
                         capture_output=True, text=True, timeout=120)
    title = re.search(r"<title>first=(\S+) above=(\w+) decoded=(\d+)/(\d+)</title>", out.stdout)
    assert title, out.stderr[-2000:]
    assert title.group(1) == "difference-from-baseline-digits-mlp" and title.group(2) == "true"
    assert title.group(3) == title.group(4) != "0"
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one


def test_the_activations_figure_draws_formulas_and_says_what_it_leaves_out():
    import matplotlib.pyplot as plt
    import pandas as pd
    from types import SimpleNamespace

    from afbench.report import gallery

    names = ["relu", "x*sigmoid(1.5*x)", "myacts:Squareplus", "swiglu"]
    report = SimpleNamespace(runs=pd.DataFrame({"activation": names}), meta={})
    figure = next(f for f in gallery._shapes_and_data(report) if f.name == "activations")
    drawn = figure.draw()
    titles = [ax.get_title() for ax in drawn.axes]
    plt.close(drawn)
    assert any(t.startswith("x*sigmoid(1.5*x): f(x)") for t in titles) and any(t.startswith("relu") for t in titles)
    assert not any("Squareplus" in t or "swiglu" in t for t in titles)
    assert "Not drawn: myacts:Squareplus (your own code" in figure.caption
    assert "swiglu (not an elementwise function of x)" in figure.caption
