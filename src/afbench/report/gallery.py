"""Which figures a report shows, in which order, with a caption in words.

First the main result (one forest plot per setting: each activation's paired
difference from the baseline with its CI), then the curves, the diagnostics and the
rest. Each figure gets a file stem safe on any file system (``file_name``) and a
caption a reader understands; the stem is never shown as a caption.
"""

from __future__ import annotations

import hashlib
import re
from functools import partial

import pandas as pd

from afbench import activations
from afbench.activations.custom import FormulaError, compile_formula, looks_like_formula
from afbench.report import document, figures, tables, timing
from afbench.report.model import Figure, display
from afbench.results import DIAGNOSTICS, check_epoch_metric, check_metric

# (stem prefix, epoch column, what it shows, y label); all on a log y axis. The test
# accuracy is drawn as the error in %, under its former stem 'accuracy-...'.
CURVES = (
    ("accuracy", "test_acc", "Test error by epoch", "test error (%, log scale)"),
    ("loss", "test_loss", "Test loss by epoch", "test loss (log scale)"),
    ("train-loss", "train_loss", "Training loss by epoch", "training loss (log scale)"),
)
SEEDS_BAND = "mean over seeds, band ±1 sd"


def file_name(text: str) -> str:
    """A figure name usable as a file name on any system, inside the figures folder:
    letters, digits, '_' and '-' only (no '.', '/', '..'). Any text that had to change,
    or is long, gets a short hash of the original, so 'a/b_c' and 'a/b/c' never share
    a file and no name overflows."""
    text = display(text)
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_-") or "figure"
    if safe == text and len(text) <= 80:
        return text
    return f"{safe[:60]}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def _setting(dataset: str, model: str) -> str:
    return display(f"{model} on {dataset}")


def choose(report) -> list[Figure]:
    """Every figure of ``report`` (an afbench.report.render.Report), in reading order."""
    chosen = _forest(report) + _curves(report) + _targets(report) + _learning_rates(report)
    chosen += _shapes_and_data(report) + _ranks(report) + _learned(report) + _cost(report)
    names = [f.name for f in chosen]
    if len(set(names)) != len(names):  # two settings whose stems collide must not overwrite each other
        raise AssertionError(f"figure names collide: {sorted(n for n in names if names.count(n) > 1)}")
    return chosen


def _settings(frame: pd.DataFrame):
    """(label, file-name tag, rows) per setting: per (data set, model) as before, and
    apart where one (data set, model) holds several settings (they never share a figure)."""
    if frame.empty:
        return
    several = "setting" in frame and frame.groupby(["dataset", "model"])["setting"].nunique().max() > 1
    keys = ["dataset", "model", "setting"] if several else ["dataset", "model"]
    for key, rows in frame.groupby(keys, sort=False):
        dataset, model = key[0], key[1]
        label, tag = _setting(dataset, model), f"{dataset}-{model}"
        if several:
            differs = key[2].split(", ", 1)[1] if ", " in key[2] else ""
            label, tag = f"{label} ({display(differs)})", f"{tag}-{differs}"
        yield label, tag, rows


def _forest(report) -> list[Figure]:
    shown = document.tested(report.tests)
    if shown.empty:
        return []
    out = []
    for setting, tag, tests in _settings(shown):
        title = f"Test error against {report.baseline}, {setting}"
        out.append(Figure(
            file_name(f"difference-from-baseline-{tag}"),
            f"Main result, {setting}: each activation's mean difference in test error from "
            f"{display(report.baseline)} over paired seeds, with its confidence interval (percentage points; "
            "left of 0 is better). Marks as in the tables; the grey band is the equivalence margin.",
            partial(figures.plot_forest, tests, report.baseline, report.equivalence, title)))
    return out


def _curves(report) -> list[Figure]:
    out = []
    for setting, tag, frame in _settings(report.epochs):
        for prefix, metric, what, ylabel in CURVES:
            if not frame[check_epoch_metric(metric)].notna().any():  # diverged runs have no test scores
                continue
            values = frame.dropna(subset=[metric])
            if metric == "test_acc":  # error in %, so that the last epochs' differences show on a log axis
                values = values.assign(test_acc=100 * (1 - values["test_acc"]))
            ceiling = 100.0 if metric == "test_acc" else None  # an error in %
            out.append(Figure(file_name(f"{prefix}-{tag}"), f"{what}, {setting} ({SEEDS_BAND}; log scale).",
                              partial(figures.plot_curves, values, metric, f"{what}, {setting}", ylabel, log=True,
                                      ceiling=ceiling)))
        if "dead_output_mean" in frame:
            out.append(Figure(file_name(f"dead-{tag}"), f"Dead units by epoch (mean over layers), {setting} "
                              f"({SEEDS_BAND}).", partial(figures.plot_curves,
                                  frame, "dead_output_mean", f"Dead units, {setting}", "dead units (fraction)",
                                  ceiling=1.0)))
        for metric in DIAGNOSTICS:
            if f"{metric}_layer1" in frame:
                words = metric.replace("_", " ")
                out.append(Figure(file_name(f"{metric}-{tag}"), f"{words.capitalize()} per hidden layer and "
                                  f"epoch (mean over seeds), {setting}.",
                                  partial(figures.plot_layer_heatmaps, frame, metric, f"{words}, {setting}")))
    return out


def _targets(report) -> list[Figure]:
    if report.aggregate.empty:
        return []
    out = []
    for setting, tag, frame in _settings(report.aggregate):
        if frame["time_to_target_s_mean"].notna().any():
            out.append(Figure(file_name(f"time-to-target-{tag}"),
                              f"Training time until {tables.target_words(frame, report.runs)}, {setting} "
                              "(mean, 95% CI).",
                              partial(figures.plot_bars, frame.set_index("activation"), "time_to_target_s",
                                                f"Time to target, {setting}", "seconds", floor=0.0)))
    return out


def _learning_rates(report) -> list[Figure]:
    if not len(report.lr_choices):
        return []
    finished = report.runs[report.runs["status"] == "done"]
    return [Figure(file_name(f"lr-sensitivity-{dataset}-{model}"),
                   f"Test accuracy against the learning rate, {_setting(dataset, model)} (mean ± sd over seeds).",
                   partial(figures.plot_lr_sensitivity, frame, check_metric("accuracy")))
            for (dataset, model), frame in finished.groupby(["dataset", "model"], sort=False)]


def _not_drawn(name: str) -> str | None:
    """Why the activations figure leaves ``name`` out, or None when it draws it. A
    formula is parsed, never run as code: drawn. A user's module is not imported for
    a report (its code runs only where runs train, in a worker): the caption says how
    to draw it."""
    try:
        return None if activations.info(name).elementwise else "not an elementwise function of x"
    except KeyError:
        if ":" in name or not looks_like_formula(name):
            return "your own code, not run for a report: `afbench plot activations NAME` draws it"
        try:
            compile_formula(name)
        except FormulaError:  # a name stored by other means than `afbench run`
            return "neither a known activation nor a formula"
        return None


def _shapes_and_data(report) -> list[Figure]:
    out = []
    compared = list(report.runs["activation"].unique()) if len(report.runs) else []
    left_out = {name: why for name in compared if (why := _not_drawn(name))}
    drawn = [name for name in compared if name not in left_out]
    if drawn:
        caption = "The activations compared: f(x) and its derivative on [-3, 3]."
        if left_out:
            caption += " Not drawn: " + "; ".join(f"{display(n)} ({why})" for n, why in left_out.items()) + "."
        out.append(Figure("activations", caption, partial(figures.plot_activations, drawn)))
    for dataset, counts in report.meta.get("class_counts", {}).items():
        if not counts.get("classes") or not counts.get("counts"):  # regression, language, PDE data: no classes
            continue
        out.append(Figure(file_name(f"classes-{dataset}"), f"Samples per class and split, {display(dataset)}.",
                          partial(figures.plot_class_histogram, counts["counts"], counts["classes"])))
    return out


def _ranks(report) -> list[Figure]:
    if not report.ranks:
        return []
    out = []
    if report.ranks["p"] < 0.05:  # a CD diagram only when Friedman rejects equal ranks
        out.append(Figure("critical-difference", "Average rank by error across settings (1 = best); "
                          "activations joined by a bar do not differ significantly (Nemenyi).",
                          partial(figures.plot_critical_difference, report.ranks)))
    out.append(Figure("performance-profiles", "Performance profiles: the share of settings where each "
                      "activation's error is within a factor tau of the best.",
                      partial(figures.plot_performance_profile, report.ranks["profile"])))
    return out


def _learned(report) -> list[Figure]:
    """Each learnable activation's learned curves per layer, from its first finished seed."""
    out, seen = [], set()
    for record in report.records:
        curves = record.summary.learned_curves if record.summary else None
        if not curves:
            continue
        config = record.config
        name = file_name(f"learned-{config['activation']}-{config['dataset']}-{config['model']}")
        if name in seen:
            continue
        seen.add(name)
        setting = _setting(config["dataset"], config["model"])
        out.append(Figure(name, f"{display(config['activation'])} as learned (seed {config['seed']}), {setting}: "
                          "initial curve dashed, learned solid.", partial(figures.plot_learned_curves, 
                              curves, f"{config['activation']} learned (seed {config['seed']}), {setting}")))
    return out


def _cost(report) -> list[Figure]:
    points = timing.cost_points(report.aggregate, report.cost)
    if points.empty:
        return []
    out = []
    for (dataset, model), group in points.groupby(["dataset", "model"], sort=False):
        what, ylabel, bounds = "Test error", "test error (%)", (0.0, 100.0)
        own = group["primary_metric"].dropna() if "primary_metric" in group else pd.Series(dtype=object)
        if len(own):  # a workload's own metric (mean, 95% CI over seeds), never an empty error axis
            label = tables.metric_label(str(own.iloc[0]), report.runs)
            what, ylabel, bounds = f"Test {label}", f"test {label}", None
            group = group.assign(error_mean=group[f"{tables.OWN}_mean"], error_ci95=group[f"{tables.OWN}_ci95"])
        if group["error_mean"].isna().all():
            continue
        out.append(Figure(file_name(f"error-vs-cost-{dataset}-{model}"),
                          f"{what} against cost, {_setting(dataset, model)}: step time relative to the baseline "
                          "and memory saved for backward.",
                          partial(figures.plot_error_vs_cost, group, f"{what} against cost, {_setting(dataset, model)}",
                                  ylabel, bounds)))
    return out


