"""`afbench report OUT`: everything a reader needs, written from the results store.

Files: summary.md, summary.csv (one row per run), summary_stats.csv (the aggregate
per activation), runs.csv (every column), epochs.csv, summary.tex (booktabs),
figures/*.png and report.html (self-contained: figures embedded as base64).
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from afbench import activations
from afbench.report import figures, stats, tables

# Per-layer diagnostics recorded by the engine (afbench.engine.diagnostics.METRICS);
# named here because the report never imports the engine.
DIAGNOSTICS = ("dead_output", "dead_gradient", "saturation", "act_mean", "act_std", "grad_norm")
from afbench.sweep.store import Store


@dataclass
class Report:
    """The computed content, before it is written anywhere."""

    runs: pd.DataFrame
    kept: pd.DataFrame
    epochs: pd.DataFrame
    aggregate: pd.DataFrame
    tests: pd.DataFrame
    lr_choices: pd.DataFrame
    ranks: dict
    meta: dict
    baseline: str
    figures: dict[str, plt.Figure] = field(default_factory=dict)


def build(store: Store, baseline: str = "relu") -> Report:
    runs = tables.runs_frame(store.runs())
    kept, choices = tables.select_learning_rates(runs)
    epochs = tables.epochs_frame(store.epochs(), runs)
    if len(choices):
        epochs = epochs.merge(kept[["key"]].rename(columns={"key": "run_key"}), on="run_key")
    order = list(dict.fromkeys(runs["activation"])) if len(runs) else []
    aggregate = tables.aggregate(kept, order) if len(kept) else pd.DataFrame()
    tests = tables.significance(kept, baseline) if len(kept) else pd.DataFrame()
    report = Report(runs, kept, epochs, aggregate, tests, choices, _ranks(aggregate), store.meta(), baseline)
    report.figures = _figures(report)
    return report


def _ranks(aggregate: pd.DataFrame) -> dict:
    """Friedman over settings (data set x model), when there are several."""
    if aggregate.empty:
        return {}
    scores = aggregate.pivot_table(index=["dataset", "model"], columns="activation", values="error_rate_mean")
    if len(scores) < 2 or scores.shape[1] < 3:
        return {}
    return stats.friedman(scores, higher_is_better=False)


def _figures(report: Report) -> dict[str, plt.Figure]:
    out = {}
    for (dataset, model), frame in report.epochs.groupby(["dataset", "model"], sort=False):
        tag = _file_name(f"{dataset}-{model}")
        out[f"accuracy-{tag}"] = figures.plot_curves(frame, "test_acc", f"test accuracy, {model} on {dataset}")
        out[f"loss-{tag}"] = figures.plot_curves(frame, "test_loss", f"test loss, {model} on {dataset}")
        out[f"train-loss-{tag}"] = figures.plot_curves(frame, "train_loss", f"training loss, {model} on {dataset}")
        if "dead_output_mean" in frame:
            out[f"dead-{tag}"] = figures.plot_curves(frame, "dead_output_mean",
                                                     f"dead units (mean over layers), {model} on {dataset}")
        for metric in DIAGNOSTICS:
            if f"{metric}_layer1" in frame:
                out[f"{metric}-{tag}"] = figures.plot_layer_heatmaps(frame, metric, f"{metric}, {model} on {dataset}")
    for (dataset, model), frame in report.aggregate.groupby(["dataset", "model"], sort=False):
        if frame["time_to_target_s_mean"].notna().any():
            tag = _file_name(f"{dataset}-{model}")
            out[f"time-to-target-{tag}"] = figures.plot_bars(frame.set_index("activation"), "time_to_target_s",
                                                             f"time to target (95% CI), {model} on {dataset}",
                                                             "seconds")
    if len(report.lr_choices):
        finished = report.runs[report.runs["status"] == "done"]
        for (dataset, model), frame in finished.groupby(["dataset", "model"], sort=False):
            tag = _file_name(f"{dataset}-{model}")
            out[f"lr-sensitivity-{tag}"] = figures.plot_lr_sensitivity(frame, "accuracy")
    registered = [a for a in report.runs["activation"].unique() if _elementwise(a)]
    if registered:
        out["activations"] = figures.plot_activations(registered)
    for dataset, counts in report.meta.get("class_counts", {}).items():
        out[_file_name(f"classes-{dataset}")] = figures.plot_class_histogram(
            counts["counts"], counts["classes"])
    if report.ranks:
        out["critical-difference"] = figures.plot_critical_difference(report.ranks)
    return out


def _file_name(text: str) -> str:
    """A figure name usable as a file name (image-folder data sets carry paths)."""
    return text.replace("/", "_").replace(":", "_")


def _elementwise(name: str) -> bool:
    try:
        return activations.info(name).elementwise
    except KeyError:
        return False  # custom activations have no registry entry


def _markdown(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "_no finished runs yet_\n"
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _latex(rows: list[dict]) -> str:
    if not rows:
        return ""
    columns = list(rows[0])

    def esc(text: str) -> str:
        text = str(text).replace("\\", "\\textbackslash{}")
        for ch in "&%$#_{}":
            text = text.replace(ch, "\\" + ch)
        text = text.replace("±", "$\\pm$")
        while "**" in text:  # **best** -> \textbf{best}
            text = text.replace("**", "\\textbf{", 1).replace("**", "}", 1)
        return text

    body = [" & ".join(esc(r[c]) for c in columns) + r" \\" for r in rows]
    return "\n".join([r"\begin{tabular}{" + "l" * len(columns) + "}", r"\toprule",
                      " & ".join(esc(c) for c in columns) + r" \\", r"\midrule", *body, r"\bottomrule",
                      r"\end{tabular}"]) + "\n"


def _tests_rows(report: Report) -> list[dict]:
    rows = []
    for _, t in report.tests.iterrows():
        rows.append({"setting": f"{t['model']}/{t['dataset']}", "activation": t["activation"],
                     "vs": t["baseline"], "n pairs": t["n"], "mean diff (error)": f"{100 * t['mean_diff']:+.3f} pp",
                     "t-test p (Holm)": f"{t['t_p']:.4g} ({t['t_p_holm']:.4g})",
                     "Wilcoxon p (Holm)": f"{t['wilcoxon_p']:.4g} ({t['wilcoxon_p_holm']:.4g})", "note": t["note"]})
    return rows


def _provenance(report: Report) -> dict[str, str]:
    columns = [c for c in report.runs.columns if c.startswith("provenance.")]
    return {c.split(".", 1)[1]: ", ".join(sorted({str(v) for v in report.runs[c].dropna()})) for c in columns}


def _timing_notes(report: Report) -> str:
    """Say when times are shares of a stack's time (see afbench.engine.stack), and
    how long compiling took where runs were compiled (never in their times)."""
    notes, runs = [], report.runs
    if "provenance.stack_size" in runs and (runs["provenance.stack_size"].fillna(1) > 1).any():
        notes.append("Some runs trained as stacks of seeds (provenance stack_size > 1): their training times are "
                     "the stack's time divided by its size.")
    if "provenance.compile_s" in runs and runs["provenance.compile_s"].notna().any():
        compiled = runs["provenance.compile_s"].dropna()
        notes.append(f"{len(compiled)} of {len(runs)} runs trained through torch.compile; compiling took "
                     f"{compiled.min():.1f}-{compiled.max():.1f} s per run, in the warm-up, outside the training "
                     "times.")
    return " ".join(notes)


def markdown(report: Report) -> str:
    parts = ["# afbench results\n",
             f"Per activation: mean ± sd over seeds; best of each column in bold. Error marked * / ** when the "
             f"Holm-corrected paired t-test against {report.baseline} gives p < 0.05 / 0.01. Times exclude "
             "evaluation; time to target is the training time at the end of the first epoch at or above the "
             f"target test accuracy. {_timing_notes(report)}\n\n",
             _markdown(tables.comparison_rows(report.aggregate, report.tests))]
    if len(report.lr_choices):
        parts += ["\n## Learning rate chosen per activation (best mean validation accuracy)\n",
                  _markdown(report.lr_choices.to_dict("records"))]
    parts += [f"\n## Paired tests against {report.baseline} (test error, runs paired by seed)\n",
              _markdown(_tests_rows(report)) if len(report.tests) else "_needs at least 2 seeds per activation_\n"]
    if report.ranks:
        ranks = ", ".join(f"{a} {r:.2f}" for a, r in report.ranks["average_ranks"].items())
        parts.append(f"\n## Across settings\n\nAverage rank by error (1 = best) over {report.ranks['blocks']} "
                     f"settings: {ranks}. Friedman chi2 = {report.ranks['statistic']:.3f}, "
                     f"p = {report.ranks['p']:.4g}; Nemenyi critical difference (alpha 0.05) = "
                     f"{report.ranks['cd']:.3f}.\n")
    shared, varying = tables.settings(report.runs)
    parts.append("\n## Settings shared by every run\n\n" + ", ".join(f"{k}={v}" for k, v in shared.items())
                 + (f"\n\nVarying: {', '.join(varying)}" if varying else "") + "\n")
    prov = _provenance(report)
    parts.append("\n## Provenance\n\n" + "\n".join(f"- {k}: {v}" for k, v in prov.items()) + "\n")
    return "".join(parts)


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def html_page(report: Report, images: dict[str, bytes]) -> str:
    def table(rows):
        if not rows:
            return "<p><em>nothing yet</em></p>"
        frame = pd.DataFrame(rows)
        return frame.to_html(index=False, escape=True).replace("**", "")  # bold is shown by CSS below

    summary_rows = tables.comparison_rows(report.aggregate, report.tests, bold=("[[", "]]"))
    summary_html = table(summary_rows).replace("[[", "<strong>").replace("]]", "</strong>")
    prov = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in _provenance(report).items())
    shared, varying = tables.settings(report.runs)
    setting_text = html.escape(", ".join(f"{k}={v}" for k, v in shared.items()))
    if varying:
        setting_text += "<br>Varying: " + html.escape(", ".join(varying))
    figs = "".join(f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
                   f'{base64.b64encode(png).decode()}"><figcaption>{html.escape(name)}</figcaption></figure>'
                   for name, png in images.items())
    ranks = ""
    if report.ranks:
        ranks = "<h2>Across settings</h2><p>" + html.escape(
            ", ".join(f"{a}: {r:.2f}" for a, r in report.ranks["average_ranks"].items())) + \
            f"; Friedman p = {report.ranks['p']:.4g}, critical difference {report.ranks['cd']:.3f}</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>afbench report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px}}th{{background:#eee}}figure{{display:inline-block;margin:8px}}
img{{max-width:560px}}</style></head><body>
<h1>afbench report</h1>
<p>Mean ± sd over seeds; best of each column in bold; * / ** on the error: Holm-corrected paired t-test against
{html.escape(report.baseline)} p &lt; 0.05 / 0.01. {html.escape(_timing_notes(report))}</p>
<h2>Comparison</h2>{summary_html}
<h2>Paired tests against {html.escape(report.baseline)}</h2>{table(_tests_rows(report))}
{ranks}
<h2>Figures</h2>{figs}
<h2>Settings shared by every run</h2><p>{setting_text}</p>
<h2>Provenance</h2><ul>{prov}</ul>
</body></html>
"""


def write(folder: str | Path, baseline: str = "relu") -> Report:
    """Compute the report from ``folder``/results.sqlite and write every file."""
    folder = Path(folder)
    if not (folder / "results.sqlite").exists():
        raise FileNotFoundError(f"{folder} holds no results.sqlite: run `afbench run --out {folder}` first")
    store = Store(folder)
    try:
        report = build(store, baseline)
    finally:
        store.close()
    report.runs[tables.RUN_COLUMNS].to_csv(folder / "summary.csv", index=False)
    report.runs.to_csv(folder / "runs.csv", index=False)
    report.epochs.to_csv(folder / "epochs.csv", index=False)
    report.aggregate.to_csv(folder / "summary_stats.csv", index=False)
    if len(report.tests):
        report.tests.to_csv(folder / "tests.csv", index=False)
    (folder / "summary.md").write_text(markdown(report))
    (folder / "summary.tex").write_text(_latex(tables.comparison_rows(report.aggregate, report.tests)))
    images = {}
    (folder / "figures").mkdir(exist_ok=True)
    for name, fig in report.figures.items():
        images[name] = _png(fig)  # rendered once: the same bytes go to the file and into report.html
        (folder / "figures" / f"{name}.png").write_bytes(images[name])
        plt.close(fig)
    (folder / "report.html").write_text(html_page(report, images))
    return report
